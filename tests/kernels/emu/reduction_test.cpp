// Emulator self-test: a block reduction through shared memory, __syncthreads and __shfl_xor_sync.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "kernels/core/launch.h"

namespace {

__global__ void block_sum(const int* in, int* out, int n) {
  FARSEE_SHARED(int, warp_sums, [32]);
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  int v = i < n ? in[i] : 0;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    int w = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0;
    for (int offset = 16; offset > 0; offset /= 2) w += __shfl_xor_sync(0xffffffffu, w, offset);
    if (threadIdx.x == 0) out[blockIdx.x] = w;
  }
}

class EmuReduction : public ::testing::TestWithParam<emu::Schedule> {};

TEST_P(EmuReduction, BlockSumMatchesCpu) {
  emu::set_schedule(GetParam(), 7);
  const int n = 1000, threads = 256, blocks = (n + threads - 1) / threads;
  std::vector<int> in(n), out(blocks, -1);
  std::iota(in.begin(), in.end(), -300);
  auto kernel = block_sum;
  FARSEE_LAUNCH(kernel, blocks, threads, 0, nullptr, in.data(), out.data(), n);
  for (int b = 0; b < blocks; ++b) {
    int expect = 0;
    for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) expect += in[i];
    EXPECT_EQ(out[b], expect) << "block " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Schedules, EmuReduction,
                         ::testing::Values(emu::Schedule::RoundRobin, emu::Schedule::GreedyForward,
                                           emu::Schedule::GreedyReverse, emu::Schedule::Random),
                         [](const auto& info) {
                           std::string s = emu::schedule_name(info.param);
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
