// Microbenchmark of augment_fwd (kernels/augment.h), the training augmentation on the executor, at
// the paper's training shape: batch 8 of decoded 1024x2048 Cityscapes samples -> input 512x1024
// (fp16 and fp32) and labels 1024x2048, every sample with a paper-like draw (zoom 1.3, rotation
// 6 degrees, mirror, shift, colour jitter and noise). Synthetic random bytes: the op's cost does
// not depend on the values.
//   augment/<dtype>/...            cuda, CUDA-event timed (bench_util.h); bytes: the source bytes
//                                  a sample's window covers (its image and labels, read once) plus
//                                  the outputs, written once
//   host/augment/fp32/.../cpu      the cpu executor (OpenMP over output rows), wall clock, batch 2;
//                                  runs without a GPU too (bench_main.cpp); items/s = images/s
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/augment.h"

namespace farsee::bench {
namespace {

constexpr int kSrcH = 1024, kSrcW = 2048, kInH = 512, kInW = 1024, kLabelH = 1024, kLabelW = 2048;

// Output grid (out_h x out_w) -> source map: zoom, rotation about the centre, mirror.
AugmentAffine paper_like_map(int out_h, int out_w) {
  const double zoom = 1.3, t = 6 * 3.14159265358979323846 / 180;
  const double kx = double(kSrcW) / out_w / zoom, ky = double(kSrcH) / out_h / zoom;
  AugmentAffine m;
  m.a = -std::cos(t) * kx;  // mirrored
  m.b = -std::sin(t) * ky;
  m.d = -std::sin(t) * kx;
  m.e = std::cos(t) * ky;
  m.c = kSrcW / 2.0 + 40 - (m.a * out_w / 2.0 + m.b * out_h / 2.0);
  m.f = kSrcH / 2.0 - 25 - (m.d * out_w / 2.0 + m.e * out_h / 2.0);
  return m;
}

// n samples of random bytes in `executor` memory, and their parameters.
struct AugmentInputs {
  rt::Buffer images, labels, samples;
  AugmentBatch batch;
  AugmentInputs(const Context& ctx, int n) {
    const size_t pixels = size_t(kSrcH) * kSrcW;
    std::vector<uint8_t> bytes(pixels * 3 * size_t(n));
    std::mt19937 rng(3);
    for (uint8_t& b : bytes) b = uint8_t(rng());
    std::vector<AugmentSample> params(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      AugmentSample& s = params[size_t(i)];
      s.image_offset = int64_t(i) * int64_t(pixels) * 3;
      s.label_offset = int64_t(i) * int64_t(pixels);
      s.src_h = kSrcH;
      s.src_w = kSrcW;
      s.image_map = paper_like_map(kInH, kInW);
      s.label_map = paper_like_map(kLabelH, kLabelW);
      s.brightness = 1.1f;
      s.contrast = 0.9f;
      s.saturation = 1.2f;
      s.noise = 0.03f;
      s.noise_seed = uint64_t(i) + 1;
    }
    images = rt::Buffer(ctx.executor, bytes.size());
    labels = rt::Buffer(ctx.executor, pixels * size_t(n));
    samples = rt::Buffer(ctx.executor, params.size() * sizeof(AugmentSample));
    rt::copy_to_device(ctx, images.data(), bytes.data(), bytes.size());
    rt::copy_to_device(ctx, labels.data(), bytes.data(), labels.bytes());
    rt::copy_to_device(ctx, samples.data(), params.data(), samples.bytes());
    rt::synchronize(ctx);
    batch.images = images.as<uint8_t>();
    batch.image_bytes = int64_t(images.bytes());
    batch.labels = labels.as<uint8_t>();
    batch.label_bytes = int64_t(labels.bytes());
    batch.samples = samples.as<AugmentSample>();
    batch.normalise = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  }
};

std::string case_name(int n) {
  return std::to_string(n) + "x" + std::to_string(kSrcH) + "x" + std::to_string(kSrcW) + "->" +
         std::to_string(kInH) + "x" + std::to_string(kInW) + "+labels" + std::to_string(kLabelH) +
         "x" + std::to_string(kLabelW);
}

void run_cpu(benchmark::State& state) {
  const Context ctx{Executor::Cpu, nullptr};
  constexpr int kBatch = 2;
  const AugmentInputs in(ctx, kBatch);
  std::vector<float> input(size_t(kBatch) * kInH * kInW * 3);
  std::vector<uint8_t> labels(size_t(kBatch) * kLabelH * kLabelW);
  const TensorView view = make_view(input.data(), DType::F32, Shape4{kBatch, kInH, kInW, 3});
  for (auto _ : state) {
    augment_fwd(ctx, in.batch, view, labels.data(), kLabelH, kLabelW);
    benchmark::DoNotOptimize(input.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

const bool kRegistered = [] {
  constexpr int kBatch = 8;
  for (DType dtype : {DType::F16, DType::F32}) {
    register_gpu_benchmark(
        std::string("augment/") + dtype_name(dtype) + "/" + case_name(kBatch),
        [=](benchmark::State& state) {
          const Context ctx = cuda_context();
          const AugmentInputs in(ctx, kBatch);
          const Shape4 shape{kBatch, kInH, kInW, 3};
          rt::Buffer input(ctx.executor, size_t(shape.elements()) * dtype_size(dtype));
          rt::Buffer labels(ctx.executor, size_t(kBatch) * kLabelH * kLabelW);
          // The window covers 1/zoom^2 of the source (zoom 1.3): its bytes, read once.
          const int64_t source = int64_t(kBatch) * kSrcH * kSrcW * 4 * 100 / 169;
          time_launches(state, ctx, source + int64_t(input.bytes() + labels.bytes()), [&] {
            augment_fwd(ctx, in.batch, make_view(input.data(), dtype, shape), labels.as<uint8_t>(),
                        kLabelH, kLabelW);
          });
          state.SetItemsProcessed(state.iterations() * kBatch);
        });
  }
  benchmark::RegisterBenchmark(("host/augment/fp32/" + case_name(2) + "/cpu").c_str(), run_cpu)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace farsee::bench
