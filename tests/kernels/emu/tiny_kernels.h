// One-line kernels and a mode-restoring fixture shared by the emulator's GPU-behaviour tests
// (gpu_modes_test.cpp, gpu_streams_test.cpp): the tests are about what the runtime does with a
// launch (ordering, errors, capture), so the kernels only need to be small and recognisable.
#pragma once

#include <gtest/gtest.h>

#include "kernels/core/launch.h"
#include "kernels/emu/emu_stream.h"

namespace farsee::emu_test {
// Unnamed: each test file gets its own copy of the kernels (no ODR clash between test files).
namespace {

constexpr int kN = 64;  // threads of every test launch (one block)

__global__ void copy_kernel(const float* in, float* out) {
  out[threadIdx.x] = in[threadIdx.x];
}
__global__ void add_kernel(float* x, float v) {
  x[threadIdx.x] += v;
}
// A fault that emu detects while the kernel runs, as a GPU detects an illegal address: the
// threads of the block wait at different barriers.
__global__ void faulting_kernel(float* x) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  x[threadIdx.x] = 1.f;
}

// Every test leaves the environment's modes (asynchronous streams, synchronised launches) as it
// found them, whatever it sets.
class EmuModeGuard : public ::testing::Test {
 protected:
  void SetUp() override {
    was_async_ = emu::async_enabled();
    was_sync_launches_ = emu::sync_launches_enabled();
  }
  void TearDown() override {
    emu::set_sync_launches(was_sync_launches_);
    emu::set_async(was_async_);
  }

 private:
  bool was_async_ = false, was_sync_launches_ = false;
};

}  // namespace
}  // namespace farsee::emu_test
