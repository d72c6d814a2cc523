// main() of farsee-kernel-bench: the benchmarks of every bench/*_bench.cpp (registered at static
// initialisation) run only when a CUDA device is usable; otherwise the program says why and exits
// 0, so CI (nvcc, no GPU) can build and run it (--benchmark_list_tests works without a GPU).
// Errors (farsee::Error) exit 1 with the message.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "kernels/core/check.h"
#include "kernels/core/executor.h"

#if FARSEE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

// GPU name and CUDA versions in the benchmark context block (RESULTS.md entries need them).
void add_gpu_context() {
#if FARSEE_HAVE_CUDA
  int device = 0;
  FARSEE_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  FARSEE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int driver = 0, runtime = 0;
  FARSEE_CUDA_CHECK(cudaDriverGetVersion(&driver));
  FARSEE_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  benchmark::AddCustomContext("gpu", prop.name);
  benchmark::AddCustomContext("gpu_sms", std::to_string(prop.multiProcessorCount));
  benchmark::AddCustomContext("cuda_driver", std::to_string(driver));
  benchmark::AddCustomContext("cuda_runtime", std::to_string(runtime));
#endif
}

// --benchmark_list_tests only prints the names: allowed without a GPU.
bool only_listing(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--benchmark_list_tests" || arg == "--benchmark_list_tests=true") return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const bool listing = only_listing(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (listing) {
    benchmark::RunSpecifiedBenchmarks();
    return 0;
  }
  const std::string why = farsee::cuda_unavailable_reason();
  if (!why.empty()) {
    std::printf("no CUDA device: %s; skipping GPU benchmarks\n", why.c_str());
    return 0;
  }
  try {
    add_gpu_context();
    benchmark::RunSpecifiedBenchmarks();
  } catch (const farsee::Error& e) {
    std::fprintf(stderr, "farsee-kernel-bench: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
