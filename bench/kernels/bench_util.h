// Shared pieces of the kernel microbenchmarks (bench/kernels/*_bench.cpp, one binary:
// farsee-kernel-bench).
//
// Protocol: every benchmark runs on the GPU only (bench_main.cpp exits before running anything
// when no device is usable), launches its kernel once as a warm-up, then times each benchmark
// iteration with a CUDA-event pair (rt::Timer) around kLaunchesPerIteration back-to-back launches
// and reports the time per launch as Google Benchmark "manual time". Throughput is the kernel's
// compulsory DRAM traffic (each input read once, each output written once) per second:
// SetBytesProcessed, i.e. the bytes_per_second column.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/core/executor.h"
#include "kernels/core/half_convert.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"

namespace farsee::bench {

// One event pair per this many launches keeps the event overhead out of microsecond kernels.
constexpr int kLaunchesPerIteration = 10;

// Benchmarks run on the legacy default stream of the current device.
inline Context cuda_context() {
  return Context{Executor::Cuda, nullptr};
}

inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// fp32 parameters (weights, BN scale and bias) in device memory.
inline rt::Buffer device_floats(const Context& ctx, size_t n, uint32_t seed, float lo = -1.0f,
                                float hi = 1.0f) {
  const std::vector<float> host = random_values(n, seed, lo, hi);
  rt::Buffer b(ctx.executor, n * sizeof(float));
  rt::copy_to_device(ctx, b.data(), host.data(), n * sizeof(float));
  return b;
}

// A dense NHWC device tensor of random values in [-1, 1], fp32 or fp16 storage.
struct DeviceTensor {
  rt::Buffer buffer;
  TensorView view;

  DeviceTensor(const Context& ctx, DType dtype, Shape4 shape, uint32_t seed)
      : buffer(ctx.executor, size_t(shape.elements()) * dtype_size(dtype)) {
    view = make_view(buffer.data(), dtype, shape);
    const std::vector<float> values = random_values(size_t(shape.elements()), seed);
    if (dtype == DType::F32) {
      rt::copy_to_device(ctx, buffer.data(), values.data(), buffer.bytes());
    } else {
      std::vector<uint16_t> halves(values.size());
      for (size_t i = 0; i < values.size(); ++i) halves[i] = float_to_half_bits(values[i]);
      rt::copy_to_device(ctx, buffer.data(), halves.data(), buffer.bytes());
    }
  }
  int64_t bytes() const { return int64_t(buffer.bytes()); }
};

// Warm-up launch, then CUDA-event timing of kLaunchesPerIteration launches per iteration.
template <typename Launch>
void time_launches(benchmark::State& state, const Context& ctx, int64_t bytes_per_launch,
                   Launch&& launch) {
  launch();
  rt::synchronize(ctx);
  rt::Timer timer(ctx.executor);
  for (auto _ : state) {
    timer.record_start(ctx);
    for (int i = 0; i < kLaunchesPerIteration; ++i) launch();
    timer.record_stop(ctx);
    state.SetIterationTime(double(timer.elapsed_ms()) * 1e-3 / kLaunchesPerIteration);
  }
  state.SetBytesProcessed(state.iterations() * bytes_per_launch);
}

// Registers `fn` (void(benchmark::State&)) under `name` with the common settings.
template <typename Fn>
void register_gpu_benchmark(const std::string& name, Fn&& fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn))
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

inline std::string shape_name(const Shape4& s) {
  std::string name = std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c);
  return s.n == 1 ? name : std::to_string(s.n) + "x" + name;
}

}  // namespace farsee::bench
