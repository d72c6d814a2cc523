// Emulator performance counters (kernels/emu/emu_counters.h) on small kernels whose counts are
// known by hand: coalescing of global accesses, shared-memory bank conflicts, access widths,
// barriers, MMAs, launches; off by default, and counting leaves results unchanged.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernels/core/launch.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/ptx.h"
#include "kernels/core/vec.h"

namespace {

using farsee::ld;
using farsee::st;

constexpr int kThreads = 64;  // two warps

// out[t] = in[t * stride]: stride 1 is a coalesced copy, stride 32 touches one sector per lane.
__global__ void strided_copy(const float* in, float* out, int stride) {
  const int t = threadIdx.x;
  st(&out[t], ld(&in[t * stride]));
}

// Lane l writes word l * stride of a shared array, then reads word 0 (a broadcast).
__global__ void shared_pattern(float* out, int stride) {
  FARSEE_SHARED(float, words, [kThreads * 32]);
  const int t = threadIdx.x;
  st(&words[t * stride], float(t));
  __syncthreads();
  st(&out[t], ld(&words[0]));
}

// Four floats per thread, one 16-byte store each.
__global__ void vector_store(float* out) {
  const float v[4] = {1.f, 2.f, 3.f, 4.f};
  farsee::store_from_float<4>(out + 4 * threadIdx.x, v);
}

// Three barriers per block; warp 0 issues two MMAs.
__global__ void barriers_and_mma(float* out) {
  __syncthreads();
  __syncthreads();
  if (threadIdx.x < 32) {
    const uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float d[4] = {0, 0, 0, 0};
    farsee::ptx::mma_m16n8k16_f16f32(d, a, b, d);
    farsee::ptx::mma_m16n8k16_f16f32(d, a, b, d);
    out[threadIdx.x] = d[0];
  }
  __syncthreads();
}

// `n` floats of `value` starting at a 128-byte boundary (sector counts depend on alignment; a
// std::vector's data is only 16-byte aligned).
class AlignedFloats {
 public:
  AlignedFloats(size_t n, float value) : storage_(n + 32, value) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = storage_.data() + (128 - a % 128) % 128 / sizeof(float);
  }
  float* data() { return data_; }
  float& operator[](size_t i) { return data_[i]; }

 private:
  std::vector<float> storage_;
  float* data_;
};

// Counting on for one test, the recorded launches cleared before and after.
class EmuCounters : public ::testing::Test {
 protected:
  void SetUp() override {
    emu::reset_counters();
    emu::set_counting(true);
  }
  void TearDown() override {
    emu::set_counting(false);
    emu::reset_counters();
  }
  // The single launch recorded since SetUp.
  static emu::LaunchCounters only_launch() {
    std::vector<emu::LaunchCounters> all = emu::take_launch_counters();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? emu::LaunchCounters{} : all[0];
  }
};

TEST_F(EmuCounters, CoalescedCopyIsFullyEfficient) {
  AlignedFloats in(kThreads * 32, 1.f), out(kThreads, 0.f);
  FARSEE_LAUNCH(strided_copy, 1, kThreads, 0, nullptr, in.data(), out.data(), 1);
  const emu::LaunchCounters c = only_launch();
  EXPECT_EQ(c.launches, 1);
  EXPECT_EQ(c.global_load.requests, 2);  // one per warp
  EXPECT_EQ(c.global_load.bytes_by_width[2], kThreads * 4);
  EXPECT_EQ(c.global_load.bytes(), kThreads * 4);
  EXPECT_DOUBLE_EQ(c.global_load.efficiency(), 1.0);
  EXPECT_EQ(c.global_store.bytes_by_width[2], kThreads * 4);
  EXPECT_DOUBLE_EQ(c.global_store.efficiency(), 1.0);
  EXPECT_EQ(c.shared_requests, 0);
}

TEST_F(EmuCounters, StrideThirtyTwoCopyIsOneEighthEfficient) {
  AlignedFloats in(kThreads * 32, 1.f), out(kThreads, 0.f);
  FARSEE_LAUNCH(strided_copy, 1, kThreads, 0, nullptr, in.data(), out.data(), 32);
  const emu::LaunchCounters c = only_launch();
  // Each lane's 4 bytes sit in their own 32-byte sector: 4 / 32 = 12.5 %.
  EXPECT_EQ(c.global_load.sectors, kThreads);
  EXPECT_DOUBLE_EQ(c.global_load.efficiency(), 0.125);
  EXPECT_DOUBLE_EQ(c.global_store.efficiency(), 1.0);
}

TEST_F(EmuCounters, BankConflicts) {
  AlignedFloats out(kThreads, 0.f);
  FARSEE_LAUNCH(shared_pattern, 1, kThreads, 0, nullptr, out.data(), 32);
  emu::LaunchCounters c = only_launch();
  // Stores: all 32 lanes in bank 0, 32 distinct words: 32-way, 2 warps. Loads: one word
  // broadcast: conflict free. (2 * 32 + 2 * 1) wavefronts over 4 phases.
  EXPECT_EQ(c.shared_requests, 4);
  EXPECT_EQ(c.shared_max_ways, 32);
  EXPECT_EQ(c.shared_wavefronts, 2 * 32 + 2);
  EXPECT_DOUBLE_EQ(c.bank_conflict_ways(), (2 * 32 + 2) / 4.0);
  EXPECT_EQ(c.barriers, 1);
  EXPECT_EQ(out[5], 0.f) << "counting changed the result";

  FARSEE_LAUNCH(shared_pattern, 1, kThreads, 0, nullptr, out.data(), 1);
  c = only_launch();
  EXPECT_EQ(c.shared_max_ways, 1);
  EXPECT_DOUBLE_EQ(c.bank_conflict_ways(), 1.0);
}

TEST_F(EmuCounters, SixteenByteVectorStore) {
  AlignedFloats out(4 * kThreads, 0.f);
  FARSEE_LAUNCH(vector_store, 1, kThreads, 0, nullptr, out.data());
  const emu::LaunchCounters c = only_launch();
  EXPECT_EQ(c.global_store.bytes_by_width[4], kThreads * 16);
  EXPECT_EQ(c.global_store.bytes(), kThreads * 16);
  EXPECT_EQ(c.global_store.requests, 2);
  EXPECT_EQ(c.global_store.sectors, 2 * 16);  // 512 contiguous bytes per warp
  EXPECT_DOUBLE_EQ(c.global_store.efficiency(), 1.0);
  EXPECT_EQ(out[4 * 7 + 3], 4.f);
}

TEST_F(EmuCounters, BarriersAndMmas) {
  std::vector<float> out(kThreads, -1.f);
  FARSEE_LAUNCH(barriers_and_mma, 2, kThreads, 0, nullptr, out.data());
  const emu::LaunchCounters c = only_launch();
  EXPECT_EQ(c.barriers, 2 * 3);  // 2 blocks x 3
  EXPECT_EQ(c.mma, 2 * 2);       // 2 blocks x one warp x 2
  EXPECT_EQ(c.kernel.rfind("barriers_and_mma@counters_test.cpp:", 0), 0u) << c.kernel;
}

TEST_F(EmuCounters, LaunchesAreRecordedInOrder) {
  AlignedFloats in(kThreads * 32, 1.f), out(4 * kThreads, 0.f);
  FARSEE_LAUNCH(strided_copy, 1, kThreads, 0, nullptr, in.data(), out.data(), 1);
  emu::counters_marker();
  FARSEE_LAUNCH(vector_store, 1, kThreads, 0, nullptr, out.data());
  const std::vector<emu::LaunchCounters> all = emu::take_launch_counters();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].kernel.rfind("strided_copy@", 0), 0u) << all[0].kernel;
  EXPECT_EQ(all[0].marker, 0);
  EXPECT_EQ(all[1].kernel.rfind("vector_store@", 0), 0u) << all[1].kernel;
  EXPECT_EQ(all[1].marker, 1);
  emu::LaunchCounters sum = all[0];
  sum.add(all[1]);
  EXPECT_EQ(sum.launches, 2);
  EXPECT_EQ(sum.global_store.bytes(), kThreads * 4 + kThreads * 16);
}

TEST(EmuCountersOff, NothingIsRecordedByDefault) {
  if (std::getenv("FARSEE_EMU_COUNTERS") != nullptr) GTEST_SKIP() << "FARSEE_EMU_COUNTERS is set";
  emu::reset_counters();
  AlignedFloats in(kThreads * 32, 1.f), out(kThreads, 0.f);
  FARSEE_LAUNCH(strided_copy, 1, kThreads, 0, nullptr, in.data(), out.data(), 1);
  EXPECT_TRUE(emu::take_launch_counters().empty());
  EXPECT_EQ(out[3], 1.f);
}

}  // namespace
