// Emulator self-tests: __syncthreads misuse is caught, not silently tolerated.
//   - a missing barrier gives a wrong answer under a greedy schedule (and the poisoned shared
//     memory makes the wrong answer a NaN, not a plausible number);
//   - a divergent barrier, an early exit while others wait, and a warp collective that can never
//     complete each raise farsee::Error naming the file:line.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/launch.h"
#include "tests/support/error_of.h"

namespace {

constexpr int kThreads = 64;

// Each thread publishes its value, then reads its right neighbour's.
template <bool WithBarrier>
__global__ void rotate_left(const float* in, float* out) {
  FARSEE_SHARED(float, values, [kThreads]);
  int t = threadIdx.x;
  values[t] = in[t];
  if (WithBarrier) __syncthreads();
  out[t] = values[(t + 1) % kThreads];
}

std::vector<float> run_rotate(bool with_barrier, emu::Schedule schedule) {
  emu::set_schedule(schedule, 3);
  std::vector<float> in(kThreads), out(kThreads, -1.f);
  for (int i = 0; i < kThreads; ++i) in[i] = float(i);
  if (with_barrier) {
    auto kernel = rotate_left<true>;
    FARSEE_LAUNCH(kernel, 1, kThreads, 0, nullptr, in.data(), out.data());
  } else {
    auto kernel = rotate_left<false>;
    FARSEE_LAUNCH(kernel, 1, kThreads, 0, nullptr, in.data(), out.data());
  }
  return out;
}

int count_correct(const std::vector<float>& out) {
  int ok = 0;
  for (int i = 0; i < kThreads; ++i) ok += out[i] == float((i + 1) % kThreads);
  return ok;
}

TEST(EmuBarrier, WithBarrierCorrectUnderEverySchedule) {
  for (auto s : {emu::Schedule::RoundRobin, emu::Schedule::GreedyForward,
                 emu::Schedule::GreedyReverse, emu::Schedule::Random}) {
    EXPECT_EQ(count_correct(run_rotate(true, s)), kThreads) << emu::schedule_name(s);
  }
}

TEST(EmuBarrier, MissingBarrierIsWrongUnderGreedyForward) {
  // Thread t runs to completion before t+1 writes: it reads poison (NaN).
  std::vector<float> out = run_rotate(false, emu::Schedule::GreedyForward);
  EXPECT_EQ(count_correct(out), 1) << "only the last thread's neighbour (thread 0) was written";
  EXPECT_TRUE(std::isnan(out[0])) << "unwritten shared memory must read as NaN";
}

TEST(EmuBarrier, MissingBarrierIsWrongUnderGreedyReverse) {
  std::vector<float> out = run_rotate(false, emu::Schedule::GreedyReverse);
  EXPECT_LT(count_correct(out), kThreads);
}

__global__ void divergent_barrier(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

TEST(EmuBarrier, DivergentBarrierIsAnError) {
  std::vector<int> out(kThreads);
  auto kernel = divergent_barrier;
  std::string e = error_of([&] { FARSEE_LAUNCH(kernel, 1, kThreads, 0, nullptr, out.data()); });
  EXPECT_NE(e.find("divergent __syncthreads()"), std::string::npos) << e;
  EXPECT_NE(e.find("barrier_test.cpp:"), std::string::npos) << "names the call sites: " << e;
  EXPECT_NE(e.find("launched at"), std::string::npos) << "names the launch site: " << e;
}

__global__ void early_exit(const int* n, int* out) {
  if (int(threadIdx.x) >= *n) return;
  out[threadIdx.x] = 1;
  __syncthreads();
  out[threadIdx.x] = 2;
}

TEST(EmuBarrier, EarlyExitWhileOthersWaitIsAnError) {
  std::vector<int> out(kThreads);
  int n = 40;
  auto kernel = early_exit;
  std::string e = error_of([&] { FARSEE_LAUNCH(kernel, 1, kThreads, 0, nullptr, &n, out.data()); });
  EXPECT_NE(e.find("exited while"), std::string::npos) << e;
  EXPECT_NE(e.find("barrier_test.cpp:"), std::string::npos) << e;
  // With every thread inside the guard, the same kernel is fine.
  n = kThreads;
  EXPECT_EQ(error_of([&] { FARSEE_LAUNCH(kernel, 1, kThreads, 0, nullptr, &n, out.data()); }), "");
  EXPECT_EQ(out[kThreads - 1], 2);
}

__global__ void shuffle_then_barrier(int* out) {
  // Lane 0 of warp 0 goes to a barrier while its warp mates wait in a full-warp shuffle.
  int v = threadIdx.x;
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    v = __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
  }
  out[threadIdx.x] = v;
}

TEST(EmuBarrier, DeadlockIsAnError) {
  std::vector<int> out(kThreads);
  auto kernel = shuffle_then_barrier;
  std::string e = error_of([&] { FARSEE_LAUNCH(kernel, 1, kThreads, 0, nullptr, out.data()); });
  EXPECT_NE(e.find("deadlock"), std::string::npos) << e;
  EXPECT_NE(e.find("__shfl_xor_sync"), std::string::npos) << e;
}

__global__ void dynamic_smem_reader(float* out) {
  float* buffer = farsee::dynamic_smem<float>();
  out[threadIdx.x] = buffer[threadIdx.x];  // never written: must read poison
}

TEST(EmuSharedMemory, DynamicSharedMemoryIsPoisoned) {
  std::vector<float> out(32, 0.f);
  auto kernel = dynamic_smem_reader;
  FARSEE_LAUNCH(kernel, 1, 32, 32 * sizeof(float), nullptr, out.data());
  for (float v : out) EXPECT_TRUE(std::isnan(v));
}

TEST(EmuSharedMemory, DynamicLimitsAreEnforced) {
  std::vector<float> out(32);
  auto kernel = dynamic_smem_reader;
  std::string e = error_of([&] { FARSEE_LAUNCH(kernel, 1, 32, 64 * 1024, nullptr, out.data()); });
  EXPECT_NE(e.find("dynamic shared memory"), std::string::npos) << e;
  FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, 64 * 1024);
  EXPECT_EQ(error_of([&] { FARSEE_LAUNCH(kernel, 1, 32, 64 * 1024, nullptr, out.data()); }), "");
  EXPECT_NE(error_of([&] { FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, 300 * 1024); }), "");
}

TEST(EmuLaunch, BadBlockShapeIsAnError) {
  std::vector<float> out(32);
  auto kernel = dynamic_smem_reader;
  std::string e = error_of([&] { FARSEE_LAUNCH(kernel, 1, 2048, 0, nullptr, out.data()); });
  EXPECT_NE(e.find("1..1024"), std::string::npos) << e;
}

}  // namespace
