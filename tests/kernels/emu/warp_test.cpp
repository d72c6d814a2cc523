// Emulator self-tests: warp collectives, atomics and cp.async follow CUDA semantics.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/launch.h"
#include "kernels/core/ptx.h"

namespace {

struct LaneResults {
  int shfl, up, down, xor_, width8;
  unsigned ballot;
  int any, all;
};

__global__ void collectives(LaneResults* out) {
  int lane = threadIdx.x % 32;
  LaneResults r;
  r.shfl = __shfl_sync(0xffffffffu, lane * 10, 5);
  r.up = __shfl_up_sync(0xffffffffu, lane, 3);
  r.down = __shfl_down_sync(0xffffffffu, lane, 3);
  r.xor_ = __shfl_xor_sync(0xffffffffu, lane, 6);
  r.width8 = __shfl_sync(0xffffffffu, lane, 2, 8);
  r.ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  r.any = __any_sync(0xffffffffu, lane == 17);
  r.all = __all_sync(0xffffffffu, lane < 31);
  __syncwarp();
  out[threadIdx.x] = r;
}

TEST(EmuWarp, CollectivesFollowCudaSemantics) {
  for (auto s :
       {emu::Schedule::GreedyForward, emu::Schedule::GreedyReverse, emu::Schedule::Random}) {
    emu::set_schedule(s, 11);
    std::vector<LaneResults> out(64);
    auto kernel = collectives;
    FARSEE_LAUNCH(kernel, 1, 64, 0, nullptr, out.data());
    unsigned expect_ballot = 0;
    for (int l = 0; l < 32; l += 3) expect_ballot |= 1u << l;
    for (int t = 0; t < 64; ++t) {
      int lane = t % 32;
      SCOPED_TRACE("thread " + std::to_string(t) + " schedule " + emu::schedule_name(s));
      EXPECT_EQ(out[t].shfl, 50);
      EXPECT_EQ(out[t].up, lane >= 3 ? lane - 3 : lane);
      EXPECT_EQ(out[t].down, lane + 3 < 32 ? lane + 3 : lane);
      EXPECT_EQ(out[t].xor_, lane ^ 6);
      EXPECT_EQ(out[t].width8, lane / 8 * 8 + 2);
      EXPECT_EQ(out[t].ballot, expect_ballot);
      EXPECT_EQ(out[t].any, 1);
      EXPECT_EQ(out[t].all, 0);
    }
  }
}

__global__ void half_warps(int* out) {
  // Two disjoint half-warp collectives in flight at once must not mix their data.
  int lane = threadIdx.x;
  int v;
  if (lane < 16) {
    v = __shfl_sync(0x0000ffffu, lane + 100, 0);
  } else {
    v = __shfl_sync(0xffff0000u, lane + 200, 16);
    v = __shfl_sync(0xffff0000u, v + 1, 17);
  }
  out[lane] = v;
}

TEST(EmuWarp, DisjointMasksStaySeparate) {
  for (auto s : {emu::Schedule::GreedyForward, emu::Schedule::GreedyReverse}) {
    emu::set_schedule(s);
    std::vector<int> out(32);
    auto kernel = half_warps;
    FARSEE_LAUNCH(kernel, 1, 32, 0, nullptr, out.data());
    for (int l = 0; l < 16; ++l) EXPECT_EQ(out[l], 100) << l;
    for (int l = 16; l < 32; ++l) EXPECT_EQ(out[l], 217) << l;
  }
}

__global__ void mismatched_ops(int* out) {
  int lane = threadIdx.x;
  out[lane] =
      lane < 16 ? __shfl_xor_sync(0xffffffffu, lane, 1) : __shfl_up_sync(0xffffffffu, lane, 1);
}

TEST(EmuWarp, DifferentOpsUnderOneMaskAreAnError) {
  std::vector<int> out(32);
  auto kernel = mismatched_ops;
  try {
    FARSEE_LAUNCH(kernel, 1, 32, 0, nullptr, out.data());
    FAIL() << "expected an error";
  } catch (const farsee::Error& e) {
    EXPECT_NE(std::string(e.what()).find("divergent warp collective"), std::string::npos)
        << e.what();
  }
}

__global__ void histogram(const int* values, int n, int* bins, float* total) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    atomicAdd(&bins[values[i] % 4], 1);
    atomicAdd(total, 0.5f);
  }
}

TEST(EmuAtomics, AcrossBlocks) {
  std::vector<int> values(1000), bins(4, 0);
  std::iota(values.begin(), values.end(), 0);
  float total = 0;
  auto kernel = histogram;
  FARSEE_LAUNCH(kernel, 8, 128, 0, nullptr, values.data(), 1000, bins.data(), &total);
  for (int b = 0; b < 4; ++b) EXPECT_EQ(bins[b], 250);
  EXPECT_EQ(total, 500.f);
}

template <bool Wait>
__global__ void async_copy(const float* src, float* out, int valid_bytes) {
  FARSEE_SHARED(float, tile, [4]);
  if (threadIdx.x == 0) {
    farsee::ptx::cp_async_16(tile, src, valid_bytes);
    farsee::ptx::cp_async_commit();
    if (Wait) farsee::ptx::cp_async_wait<0>();
    for (int i = 0; i < 4; ++i) out[i] = tile[i];
  }
}

TEST(EmuCpAsync, DataArrivesOnlyAfterWaitAndTailIsZeroFilled) {
  alignas(16) float src[4] = {1, 2, 3, 4};
  std::vector<float> out(4);
  auto with_wait = async_copy<true>;
  FARSEE_LAUNCH(with_wait, 1, 32, 0, nullptr, src, out.data(), 8);
  EXPECT_EQ(out, (std::vector<float>{1, 2, 0, 0}));
  auto without_wait = async_copy<false>;
  FARSEE_LAUNCH(without_wait, 1, 32, 0, nullptr, src, out.data(), 16);
  for (float v : out) EXPECT_TRUE(std::isnan(v)) << "read before wait must see poison";
}

}  // namespace
