// The cuda executor's gradient all-reduce (tools/train/nccl_reducer.h) on one GPU: a world of one
// (net::single_process_collective, no MPI), so the sum over the ranks is the buffer itself, bit for
// bit. It checks that the communicator initialises, that ncclAllReduce runs on the given stream and
// that all_reduce_sum returns once it has landed. A *Cuda* test: tools/scripts/gpu_check.sh runs it
// on a lent GPU; without one (or without NCCL in the build) it skips with the reason.
#include "tools/train/nccl_reducer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/core/runtime.h"
#include "net/distributed.h"
#include "tests/support/executors.h"

namespace farsee::tools {
namespace {

TEST(NcclReducerCuda, WorldOfOneLeavesTheGradientsBitwiseAsTheyAre) {
#if FARSEE_HAVE_NCCL
  FARSEE_PREPARE_EXEC_CASE((test::ExecCase{Executor::Cuda, emu::Schedule::GreedyForward}));
  const int64_t n = (1 << 20) + 3;  // an odd tail after the vectorised part
  std::vector<float> grads(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) grads[size_t(i)] = std::ldexp(float(i % 977) - 488.f, -7);
  std::unique_ptr<net::Collective> world = net::single_process_collective();
  NcclReducer reducer(*world, 60.0);
  Context ctx{Executor::Cuda, rt::stream_create(Executor::Cuda)};
  rt::Buffer device(Executor::Cuda, grads.size() * sizeof(float));
  rt::copy_to_device(ctx, device.data(), grads.data(), device.bytes());
  reducer.all_reduce_sum(device.as<float>(), n, ctx.stream);
  std::vector<float> back(grads.size(), std::nanf(""));
  rt::copy_to_host(ctx, back.data(), device.data(), device.bytes());
  rt::synchronize(ctx);
  rt::stream_destroy(Executor::Cuda, ctx.stream);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(std::memcmp(&back[size_t(i)], &grads[size_t(i)], sizeof(float)), 0)
        << "first mismatch at " << i << ": " << back[size_t(i)] << " vs " << grads[size_t(i)];
  }
#else
  GTEST_SKIP() << "built without NCCL (needs the CUDA toolkit's nccl.h and libnccl)";
#endif
}

}  // namespace
}  // namespace farsee::tools
