// augment_fwd (cpu, emu under two schedules, cuda when present) against the reference: rotated,
// scaled, mirrored and shifted maps reaching outside the source (padding), resize-only samples
// with and without the mirror, colour jitter with and without noise, samples of different sizes in
// one batch, fp32 and fp16 input. The comparison with the host augmentation itself (draw_augment,
// load_sample) is tests/tools/data/augment_op_test.cpp.
#include "kernels/augment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/core/half_convert.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

constexpr AugmentNormalise kNormalise = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};

// A map from an out_h x out_w grid onto a src_h x src_w image: rotation `degrees` about the
// centre, zoom `scale` (> 1: magnified), mirror, then a shift by (dx, dy) source pixels.
AugmentAffine map_of(int src_h, int src_w, int out_h, int out_w, double degrees, double scale,
                     bool flip, double dx, double dy) {
  const double t = degrees * 3.14159265358979323846 / 180, kx = double(src_w) / out_w / scale,
               ky = double(src_h) / out_h / scale;
  const double fx = flip ? -1 : 1, cs = std::cos(t), sn = std::sin(t);
  AugmentAffine m;
  m.a = cs * kx * fx;
  m.b = -sn * ky;
  m.d = sn * kx * fx;
  m.e = cs * ky;
  // The output centre goes to the source centre plus the shift.
  m.c = src_w / 2.0 + dx - (m.a * out_w / 2.0 + m.b * out_h / 2.0);
  m.f = src_h / 2.0 + dy - (m.d * out_w / 2.0 + m.e * out_h / 2.0);
  return m;
}

struct AugmentCase {
  int n, out_h, out_w, label_h, label_w;
  std::vector<AugmentSample> samples;  // offsets filled by make_batch
};

struct HostBatch {
  std::vector<uint8_t> images, labels;
  std::vector<AugmentSample> samples;
};

// Random pixels and labels (trainIds 0..18 and 255) for every sample, packed back to back.
HostBatch make_batch(const AugmentCase& k, uint32_t seed) {
  HostBatch b;
  b.samples = k.samples;
  std::mt19937 rng(seed);
  for (AugmentSample& s : b.samples) {
    const size_t pixels = size_t(s.src_h) * s.src_w;
    s.image_offset = int64_t(b.images.size());
    s.label_offset = int64_t(b.labels.size());
    for (size_t i = 0; i < pixels * 3; ++i) b.images.push_back(uint8_t(rng() & 0xff));
    for (size_t i = 0; i < pixels; ++i) {
      const uint32_t r = rng() % 20;
      b.labels.push_back(uint8_t(r == 19 ? 255 : r));
    }
  }
  return b;
}

struct Result {
  std::vector<float> input;
  std::vector<uint8_t> labels;
};

Result run(const Context& ctx, const AugmentCase& k, const HostBatch& b, DType dtype) {
  const rt::Buffer images = to_executor(ctx, b.images), labels = to_executor(ctx, b.labels);
  const rt::Buffer samples = to_executor(ctx, b.samples);
  const Shape4 shape{k.n, k.out_h, k.out_w, 3};
  const size_t elements = size_t(shape.elements()),
               label_count = size_t(k.n) * k.label_h * k.label_w;
  rt::Buffer input = poisoned_buffer(ctx, elements * dtype_size(dtype));
  rt::Buffer out_labels = poisoned_buffer(ctx, label_count);
  AugmentBatch batch;
  batch.images = images.as<uint8_t>();
  batch.image_bytes = int64_t(b.images.size());
  batch.labels = labels.as<uint8_t>();
  batch.label_bytes = int64_t(b.labels.size());
  batch.samples = samples.as<AugmentSample>();
  batch.normalise = kNormalise;
  augment_fwd(ctx, batch, make_view(input.data(), dtype, shape), out_labels.as<uint8_t>(),
              k.label_h, k.label_w);
  Result r;
  r.labels = to_host<uint8_t>(ctx, out_labels, label_count);
  if (dtype == DType::F32) {
    r.input = to_host<float>(ctx, input, elements);
  } else {
    r.input = from_half_bits(to_host<uint16_t>(ctx, input, elements));
  }
  return r;
}

AugmentSample colour_sample(int h, int w, float noise) {
  AugmentSample s;
  s.src_h = h;
  s.src_w = w;
  s.brightness = 1.2f;
  s.contrast = 0.8f;
  s.saturation = 1.25f;
  s.gain[0] = 0.95f;
  s.gain[1] = 1.1f;
  s.gain[2] = 1.0f;
  s.noise = noise;
  s.noise_seed = 0x5eed1234abcdull;
  return s;
}

std::vector<AugmentCase> cases() {
  std::vector<AugmentCase> out;
  // Paper-like draws: rotation, zoom in and out, mirror, shifts past the edge (padding), colour
  // with noise; the input grid at half the label grid (the paper's 512x1024 vs 1024x2048).
  AugmentCase paper{3, 6, 10, 12, 20, {}};
  const double draws[3][5] = {{8, 1.6, 1, 2, -1}, {-10, 0.6, 0, -3, 2}, {3, 1.0, 1, 7, 0}};
  const int sizes[3][2] = {{13, 17}, {9, 21}, {16, 16}};
  for (int i = 0; i < 3; ++i) {
    AugmentSample s = colour_sample(sizes[i][0], sizes[i][1], i == 1 ? 0.0f : 0.03f);
    const double* d = draws[i];
    s.image_map =
        map_of(s.src_h, s.src_w, paper.out_h, paper.out_w, d[0], d[1], d[2] != 0, d[3], d[4]);
    s.label_map =
        map_of(s.src_h, s.src_w, paper.label_h, paper.label_w, d[0], d[1], d[2] != 0, d[3], d[4]);
    paper.samples.push_back(s);
  }
  out.push_back(paper);
  // Resize-only (flips-only training): downscale, upscale, identity, with and without the
  // mirror; colour identity (skipped) on one.
  AugmentCase resize{3, 8, 12, 8, 12, {}};
  const int rsizes[3][2] = {{16, 24}, {5, 7}, {8, 12}};
  for (int i = 0; i < 3; ++i) {
    AugmentSample s = i == 2 ? AugmentSample{} : colour_sample(rsizes[i][0], rsizes[i][1], 0.03f);
    s.src_h = rsizes[i][0];
    s.src_w = rsizes[i][1];
    s.resize_only = 1;
    s.flip = i != 1;
    resize.samples.push_back(s);
  }
  out.push_back(resize);
  return out;
}

class AugmentKernel : public ::testing::TestWithParam<ExecCase> {};

// Every executor evaluates the host augmentation's operations in its order, uncontracted
// (kernels/core/augment_math.h): input and labels must equal the reference bit for bit
// (tolerance 0; measured: 0 on every case).
TEST_P(AugmentKernel, MatchesReferenceBitwise) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  uint32_t seed = 1;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const AugmentCase& k : cases()) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " case with input " + std::to_string(k.out_h) +
                   "x" + std::to_string(k.out_w));
      const HostBatch b = make_batch(k, seed++);
      const Result got = run(exec_context(GetParam()), k, b, dtype);
      const Result want = run(reference_context(), k, b, dtype);
      EXPECT_TRUE(all_close(got.input, want.input, 0.0));
      EXPECT_TRUE(all_equal(got.labels, want.labels));
      // The case exercises the padding: some labels are 255 from outside the source.
      EXPECT_GT(std::count(want.labels.begin(), want.labels.end(), uint8_t(255)), 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, AugmentKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

TEST(AugmentArguments, RejectsBadArguments) {
  const Context ctx{Executor::Cpu, nullptr};
  std::vector<uint8_t> images(5 * 7 * 3), labels(5 * 7), out_labels(4 * 6);
  std::vector<float> input(4 * 6 * 3);
  AugmentSample s;
  s.src_h = 5;
  s.src_w = 7;
  AugmentBatch b;
  b.images = images.data();
  b.image_bytes = int64_t(images.size());
  b.labels = labels.data();
  b.label_bytes = int64_t(labels.size());
  b.samples = &s;
  const TensorView view = make_view(input.data(), DType::F32, Shape4{1, 4, 6, 3});
  EXPECT_NO_THROW(augment_fwd(ctx, b, view, out_labels.data(), 4, 6));
  EXPECT_THROW(augment_fwd(ctx, b, view, out_labels.data(), 0, 6), Error);
  EXPECT_THROW(augment_fwd(ctx, b, make_view(input.data(), DType::F32, Shape4{1, 4, 2, 9}),
                           out_labels.data(), 4, 6),
               Error);
  s.image_offset = 1;  // the image then ends one byte past the buffer
  EXPECT_THROW(augment_fwd(ctx, b, view, out_labels.data(), 4, 6), Error);
}

}  // namespace
}  // namespace farsee::test
