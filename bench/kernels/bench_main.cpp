// main() of farsee-kernel-bench: the benchmarks of every bench/kernels/*_bench.cpp (registered at
// static initialisation) run only when a CUDA device is usable; otherwise the program says why and
// exits 0, so CI (nvcc, no GPU) can build and run it (--benchmark_list_tests works without a GPU).
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

// Named benchmark sets: --benchmark_filter=@NAME stands for the regex below.
//   @telling  ~30 cases that answer the main questions in a short GPU lease: fp16 and fp32 at
//             512x1024 for the stem, one 3x3 conv per ResNet stage (with residual), the merged
//             F-ASPP 1x1s, both sub-pixel convs and rtseg's 3x3 head, each beside cuDNN; one
//             depthwise, the pool and the fused resize+argmax.
constexpr const char* kTellingFilter =
    "^conv/fp(16|32)/(stem|layer1\\.conv1|layer[234]\\.conv2\\+residual|paper\\+rtseg\\.aspp1"
    "\\.merged1x1|paper\\.up1\\.subpixel|paper\\.up2\\.logits|rtseg\\.head\\.conv3x3)/"
    "(512x1024x3|256x512x3|128x256x64|64x128x128|32x64x256|16x32x512|16x32x256|64x128x128|"
    "32x64x512)"
    "/[^/]+(/shuffle[0-9])?/(farsee|cudnn)/manual_time$|^depthwise_atrous/fp16/64x128x128/rate12/"
    "|^max_pool/fp16|^resize_argmax/fp16";

//   @training every training kernel: conv dgrad/wgrad on the net's convs, BatchNorm training
//             forward/backward, depthwise/pool backward, the fused softmax-CE (and its resize
//             backward), SGD.
constexpr const char* kTrainingFilter =
    "^(conv_bwd_data|conv_bwd_weight|batchnorm_train_fwd|batchnorm_train_bwd|depthwise_bwd_data|"
    "depthwise_bwd_weight|max_pool_bwd|softmax_ce_upsample|sgd_step)/";

// Replaces --benchmark_filter=@NAME[+NAME...] by the sets' regex.
void expand_named_filter(int argc, char** argv, std::string& storage) {
  const std::string flag = "--benchmark_filter=@";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(flag, 0) != 0) continue;
    const std::string name = arg.substr(flag.size());
    // One set, or several joined by '+' (@telling+training).
    std::string regex, rest = name;
    while (!rest.empty()) {
      const size_t plus = rest.find('+');
      const std::string set = rest.substr(0, plus);
      rest = plus == std::string::npos ? "" : rest.substr(plus + 1);
      FARSEE_REQUIRE(set == "telling" || set == "training",
                     "--benchmark_filter=@" << name << ": unknown benchmark set '" << set
                                            << "' (known: @telling, @training)");
      regex += (regex.empty() ? "" : "|") + std::string("(") +
               (set == "telling" ? kTellingFilter : kTrainingFilter) + ")";
    }
    storage = "--benchmark_filter=" + regex;
    argv[i] = storage.data();
  }
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
  std::string filter_storage;
  try {
    expand_named_filter(argc, argv, filter_storage);
  } catch (const farsee::Error& e) {
    std::fprintf(stderr, "farsee-kernel-bench: %s\n", e.what());
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (listing) {
    benchmark::RunSpecifiedBenchmarks();
    return 0;
  }
  const std::string why = farsee::cuda_unavailable_reason();
  if (!why.empty()) {
    // The host benchmarks (named host/..., the cpu executor) run anyway, under the filter if it
    // names them (^host/...).
    std::printf("no CUDA device: %s; skipping GPU benchmarks, running host/ ones\n", why.c_str());
    const std::string filter = benchmark::GetBenchmarkFilter();
    try {
      benchmark::RunSpecifiedBenchmarks(filter.rfind("^host/", 0) == 0 ? filter : "^host/");
    } catch (const farsee::Error& e) {
      std::fprintf(stderr, "farsee-kernel-bench: %s\n", e.what());
      return 1;
    }
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
