// softmax_ce_upsample kernels (cpu, emu under two schedules, cuda when present) against the
// reference: label sizes x4, x8, equal and odd, both align_corners, ignore pixels, all-ignored
// images, fp16 logits, slices, C = 19 / 3 / 2, batch 1 and 3; bitwise run-to-run reproducibility;
// fp16 dlogits (mixed-precision training: grad_scale = the loss scale, the fp32 value rounded
// once), the scale read from executor memory (a CUDA-graph replay) bitwise the value argument;
// class weights.
#include "kernels/softmax_cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct CeCase {
  Shape4 logits;
  int label_h, label_w;
  bool align_corners;
  double ignore_fraction = 0.2;
  Placement logits_placement = {};
  Placement grad_placement = {};
};

std::string describe(DType dtype, const CeCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " logits " << to_string(k.logits) << " labels " << k.label_h << "x"
    << k.label_w << " align_corners " << k.align_corners << " ignore " << k.ignore_fraction;
  return s.str();
}

std::vector<uint8_t> make_labels(const CeCase& k, uint32_t seed) {
  const size_t n = size_t(k.logits.n) * k.label_h * k.label_w;
  const std::vector<float> u = random_floats(n, seed, 0.0f, 1.0f);
  const std::vector<float> c = random_floats(n, seed + 1, 0.0f, float(k.logits.c));
  std::vector<uint8_t> labels(n);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = u[i] < k.ignore_fraction ? 255 : uint8_t(std::min(int(c[i]), k.logits.c - 1));
  }
  return labels;
}

struct CeOut {
  float loss = 0;
  int64_t count = -1;
  std::vector<float> grad;
};

CeOut run(const Context& ctx, DType dtype, const CeCase& k, const std::vector<float>& z,
          const std::vector<uint8_t>& labels, Placement zp, Placement gp, float grad_scale = 1.0f,
          DType grad_dtype = DType::F32, const std::vector<float>* class_weights = nullptr,
          bool scale_in_memory = false) {
  NhwcTestTensor zt(ctx, dtype, k.logits, zp);
  zt.upload(z);
  NhwcTestTensor gt(ctx, grad_dtype, k.logits, gp);
  rt::Buffer lb = to_executor(ctx, labels);
  rt::Buffer wb = class_weights ? to_executor(ctx, *class_weights) : rt::Buffer();
  const size_t ws_bytes = softmax_ce_workspace_bytes(k.logits, k.label_h, k.label_w);
  rt::Buffer ws = poisoned_buffer(ctx, ws_bytes);
  rt::Buffer loss = poisoned_buffer(ctx, sizeof(float));
  rt::Buffer count = poisoned_buffer(ctx, sizeof(int64_t));
  rt::Buffer scale = to_executor(ctx, std::vector<float>{grad_scale});
  // In memory: the value argument is a decoy (3) that must not be used.
  softmax_ce_upsample(ctx, k.align_corners, zt.view(), lb.as<uint8_t>(), k.label_h, k.label_w,
                      loss.as<float>(), gt.view(), scale_in_memory ? 3.0f : grad_scale, ws.data(),
                      ws_bytes, count.as<int64_t>(), class_weights ? wb.as<float>() : nullptr,
                      scale_in_memory ? scale.as<float>() : nullptr);
  CeOut o;
  o.loss = to_host<float>(ctx, loss, 1)[0];
  o.count = to_host<int64_t>(ctx, count, 1)[0];
  o.grad = gt.download();
  EXPECT_TRUE(gt.outside_untouched());
  return o;
}

// Tolerances. Loss: the kernels interpolate and take logsumexp in fp32 (expf/logf, a few ulp),
// sum per block in fp32 and across blocks in double; the reference is all double: relative error
// ~1e-6 (rtol 1e-5). Gradient: each dlogits element is (1 / M) times a sum of up to (2 scale)^2
// fp32 terms of magnitude <= 1 (softmax - onehot times weights <= 1); fp32 rounding of those
// terms and of the sum: absolute ~1e-6 * (number of terms) / M -> atol 2e-6 * scale^2 * 4 / M
// (measured worst errors are reported by the test), rtol 1e-4.
void expect_matches(const ExecCase& ec, const std::vector<CeCase>& cases, uint32_t seed) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const CeCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const std::vector<float> z = random_floats(size_t(k.logits.elements()), seed++, -4.f, 4.f);
      const std::vector<uint8_t> labels = make_labels(k, seed++);
      const CeOut got =
          run(exec_context(ec), dtype, k, z, labels, k.logits_placement, k.grad_placement);
      const CeOut want = run(reference_context(), dtype, k, z, labels, Placement{}, Placement{});
      EXPECT_EQ(got.count, want.count);
      if (want.count == 0) {
        EXPECT_TRUE(std::isnan(got.loss));
        EXPECT_TRUE(all_equal(got.grad, std::vector<float>(got.grad.size(), 0.0f)));
        continue;
      }
      EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::fabs(want.loss));
      const double scale = std::max(1.0, double(k.label_h) / k.logits.h) *
                           std::max(1.0, double(k.label_w) / k.logits.w);
      const double atol = 8e-6 * scale / double(want.count);
      EXPECT_TRUE(all_close(got.grad, want.grad, atol, 1e-4));
      double worst = 0;
      for (size_t i = 0; i < got.grad.size(); ++i)
        worst = std::max(worst, double(std::fabs(got.grad[i] - want.grad[i])));
      std::cout << "[ ce ] " << describe(dtype, k) << ": loss error "
                << std::fabs(got.loss - want.loss) << ", worst grad error " << worst
                << " (x M = " << worst * double(want.count) << ")\n";
    }
  }
}

class SoftmaxCeUpsampleKernel : public ::testing::TestWithParam<ExecCase> {};

TEST_P(SoftmaxCeUpsampleKernel, LabelSizesAndAlignCorners) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<CeCase> cases;
  for (bool ac : {false, true}) {
    cases.push_back({Shape4{2, 5, 7, 19}, 20, 28, ac});  // x4, C = 19 (the net's)
    cases.push_back({Shape4{1, 3, 4, 3}, 24, 32, ac});   // x8
    cases.push_back({Shape4{3, 6, 5, 2}, 6, 5, ac});     // equal, batch 3
    cases.push_back({Shape4{1, 5, 9, 4}, 17, 35, ac});   // odd sizes, > 1 column tile
  }
  expect_matches(GetParam(), cases, 10);
}

// The gradient pass's tiling: several column tiles (w = 37 > 32) and row tiles with a partial
// last one (h = 6, tiles of 4 rows), and 200 classes, for which the host falls back to 1 x 16 tiles
// (the 4 x 32 staging would not fit in 48 KiB).
TEST_P(SoftmaxCeUpsampleKernel, GradientTilings) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches(GetParam(),
                 {{Shape4{1, 6, 37, 3}, 24, 148, false}, {Shape4{1, 2, 9, 200}, 8, 36, true}}, 90);
}

// Many ignore pixels, an image whose labels are all ignored (its gradient must be 0 while the
// other image's is not), every pixel ignored (NaN loss, zero gradient, count 0), slices.
TEST_P(SoftmaxCeUpsampleKernel, IgnoreLabelsAndSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches(GetParam(),
                 {{Shape4{1, 4, 5, 6}, 16, 20, false, 0.8},
                  {Shape4{1, 4, 5, 6}, 16, 20, true, 1.0},
                  {Shape4{1, 4, 5, 8}, 16, 20, false, 0.2, Placement{8, 24}, Placement{3, 13}},
                  {Shape4{1, 3, 3, 5}, 12, 12, true, 0.3, Placement{1, 7}, Placement{2, 9}}},
                 40);
  // Image 1 of 2 entirely ignored.
  const CeCase k{Shape4{2, 3, 4, 5}, 12, 16, false};
  std::vector<uint8_t> labels = make_labels(k, 60);
  std::fill(labels.begin() + 12 * 16, labels.end(), 255);
  const std::vector<float> z = random_floats(size_t(k.logits.elements()), 61);
  const CeOut got = run(exec_context(GetParam()), DType::F32, k, z, labels, {}, {});
  const CeOut want = run(reference_context(), DType::F32, k, z, labels, {}, {});
  EXPECT_EQ(got.count, want.count);
  EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::fabs(want.loss));
  const size_t half = got.grad.size() / 2;
  EXPECT_TRUE(all_equal(std::vector<float>(got.grad.begin() + half, got.grad.end()),
                        std::vector<float>(half, 0.0f)));
  EXPECT_TRUE(all_close(got.grad, want.grad, 8e-6 * 16 / double(want.count), 1e-4));
}

// Same inputs twice: loss, count and gradient bitwise identical (no atomics, fixed reduction
// order); grad_scale 256 multiplies the gradient by exactly 256 (a power of two).
TEST_P(SoftmaxCeUpsampleKernel, BitwiseReproducibleAndGradScale) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const CeCase k{Shape4{2, 9, 10, 19}, 36, 40, false};
  const std::vector<float> z = random_floats(size_t(k.logits.elements()), 70, -4.f, 4.f);
  const std::vector<uint8_t> labels = make_labels(k, 71);
  const CeOut a = run(exec_context(GetParam()), DType::F32, k, z, labels, {}, {});
  const CeOut b = run(exec_context(GetParam()), DType::F32, k, z, labels, {}, {});
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.count, b.count);
  EXPECT_TRUE(all_equal(a.grad, b.grad));
  const CeOut s = run(exec_context(GetParam()), DType::F32, k, z, labels, {}, {}, 256.0f);
  EXPECT_EQ(s.loss, a.loss);
  std::vector<float> want = a.grad;
  for (float& g : want) g *= 256.0f;
  EXPECT_TRUE(all_equal(s.grad, want));
}

// fp16 dlogits with a loss scale of 2^16 (fp32 and fp16 logits, a slice): on the executor, bitwise
// the fp32 gradient of the same call rounded to fp16 (only the store differs); against the
// reference's fp16 gradient (double, rounded to fp32 then fp16) within one fp16 ulp of the value
// (rtol 1e-3 > 2^-10) plus the fp32 bound of expect_matches times the scale.
TEST_P(SoftmaxCeUpsampleKernel, Fp16GradientWithLossScale) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const CeCase k{Shape4{2, 5, 7, 19}, 20, 28, false};
  const float scale = 65536.0f;
  const std::vector<uint8_t> labels = make_labels(k, 90);
  const std::vector<float> z = random_floats(size_t(k.logits.elements()), 91, -4.f, 4.f);
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(describe(dtype, k));
    const Context ctx = exec_context(GetParam());
    const CeOut h = run(ctx, dtype, k, z, labels, {}, Placement{3, 24}, scale, DType::F16);
    const CeOut f = run(ctx, dtype, k, z, labels, {}, {}, scale, DType::F32);
    EXPECT_EQ(h.loss, f.loss);
    EXPECT_TRUE(all_equal(h.grad, round_to_half(f.grad)));
    const CeOut r = run(reference_context(), dtype, k, z, labels, {}, {}, scale, DType::F16);
    EXPECT_NEAR(h.loss, r.loss, 1e-5 * std::fabs(r.loss));
    EXPECT_TRUE(all_close(h.grad, r.grad, 8e-6 * 16 * scale / double(r.count), 1e-3));
    double biggest = 0;
    for (float g : h.grad) biggest = std::max(biggest, double(std::fabs(g)));
    EXPECT_GT(biggest, 1.0) << "the scale must reach the gradient";
  }
}

// The loss scale read from executor memory (what a replayed CUDA graph reads after a scale
// change): loss, count and gradient bitwise those of the same scale passed by value, fp32 and fp16
// logits and dlogits, with class weights, on the executor and on the reference.
TEST_P(SoftmaxCeUpsampleKernel, GradScaleFromMemory) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const CeCase k{Shape4{2, 5, 7, 19}, 20, 28, false};
  const std::vector<uint8_t> labels = make_labels(k, 95);
  const std::vector<float> z = random_floats(size_t(k.logits.elements()), 96, -4.f, 4.f);
  const std::vector<float> w = random_floats(size_t(k.logits.c), 97, 0.2f, 5.0f);
  for (const Context& ctx : {exec_context(GetParam()), reference_context()}) {
    for (DType dtype : {DType::F32, DType::F16}) {
      for (const std::vector<float>* weights :
           {static_cast<const std::vector<float>*>(nullptr), &w}) {
        SCOPED_TRACE(describe(dtype, k) + " on " + executor_name(ctx.executor) +
                     (weights ? " weighted" : ""));
        const DType gd = dtype;  // fp16 dlogits with fp16 logits (the trainer's case)
        const CeOut v = run(ctx, dtype, k, z, labels, {}, {}, 65536.0f, gd, weights);
        const CeOut m = run(ctx, dtype, k, z, labels, {}, {}, 65536.0f, gd, weights, true);
        EXPECT_EQ(m.loss, v.loss);
        EXPECT_EQ(m.count, v.count);
        EXPECT_TRUE(all_equal(m.grad, v.grad));
        const CeOut unscaled = run(ctx, dtype, k, z, labels, {}, {}, 1.0f, gd, weights);
        EXPECT_FALSE(all_equal(m.grad, unscaled.grad)) << "the scale must reach the gradient";
      }
    }
  }
}

// Class weights (F.cross_entropy's weight=) against the reference: random weights in [0.2, 5]
// with one class 0, C = 19 and 5, fp32 and fp16 logits, both align_corners. The loss tolerance of
// expect_matches; the gradient's terms are scaled by w <= 5 and the sum by 1 / S instead of 1 / M:
// atol 8e-6 * scale * 5 / S. Then bitwise properties on the executor itself: weights all 1 are the
// unweighted call, and a one-hot weight on class k is the unweighted loss over class k's pixels
// (other labels 255), since the other pixels add exact zeros.
TEST_P(SoftmaxCeUpsampleKernel, ClassWeights) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const Context ctx = exec_context(GetParam());
  uint32_t seed = 100;
  for (const CeCase& k : {CeCase{Shape4{2, 5, 7, 19}, 20, 28, false, 0.2},
                          CeCase{Shape4{1, 6, 37, 5}, 24, 148, true, 0.3, Placement{2, 9}}}) {
    std::vector<float> w = random_floats(size_t(k.logits.c), seed++, 0.2f, 5.0f);
    w[1] = 0.0f;
    for (DType dtype : {DType::F32, DType::F16}) {
      SCOPED_TRACE(describe(dtype, k) + " weighted");
      const std::vector<float> z = random_floats(size_t(k.logits.elements()), seed++, -4.f, 4.f);
      const std::vector<uint8_t> labels = make_labels(k, seed++);
      double weight_sum = 0;
      for (uint8_t l : labels) weight_sum += l == 255 ? 0.0 : double(w[l]);
      const CeOut got = run(ctx, dtype, k, z, labels, k.logits_placement, {}, 1.0f, DType::F32, &w);
      const CeOut want =
          run(reference_context(), dtype, k, z, labels, {}, {}, 1.0f, DType::F32, &w);
      EXPECT_EQ(got.count, want.count);
      EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::fabs(want.loss));
      const double scale = std::max(1.0, double(k.label_h) / k.logits.h) *
                           std::max(1.0, double(k.label_w) / k.logits.w);
      EXPECT_TRUE(all_close(got.grad, want.grad, 8e-6 * scale * 5.0 / weight_sum, 1e-4));
    }
  }
  const CeCase k{Shape4{2, 5, 7, 6}, 20, 28, false};
  const std::vector<float> z = random_floats(size_t(k.logits.elements()), seed++, -4.f, 4.f);
  const std::vector<uint8_t> labels = make_labels(k, seed++);
  const CeOut plain = run(ctx, DType::F32, k, z, labels, {}, {});
  const std::vector<float> ones(6, 1.0f);
  const CeOut unit = run(ctx, DType::F32, k, z, labels, {}, {}, 1.0f, DType::F32, &ones);
  EXPECT_EQ(unit.loss, plain.loss);
  EXPECT_EQ(unit.count, plain.count);
  EXPECT_TRUE(all_equal(unit.grad, plain.grad));
  std::vector<float> one_hot(6, 0.0f);
  one_hot[4] = 1.0f;
  std::vector<uint8_t> only4 = labels;
  for (uint8_t& l : only4) l = l == 4 ? uint8_t(4) : uint8_t(255);
  const CeOut masked = run(ctx, DType::F32, k, z, only4, {}, {});
  const CeOut weighted = run(ctx, DType::F32, k, z, labels, {}, {}, 1.0f, DType::F32, &one_hot);
  EXPECT_EQ(weighted.loss, masked.loss);
  EXPECT_TRUE(all_equal(weighted.grad, masked.grad));
  EXPECT_EQ(weighted.count, plain.count);
}

// A label >= C that is not 255 cannot raise inside a kernel: the loss is NaN (the reference
// executor throws instead), never an out-of-bounds read.
TEST_P(SoftmaxCeUpsampleKernel, InvalidLabelMakesTheLossNaN) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const CeCase k{Shape4{1, 3, 4, 5}, 12, 16, false};
  std::vector<uint8_t> labels = make_labels(k, 80);
  labels[37] = 7;
  const std::vector<float> z = random_floats(size_t(k.logits.elements()), 81);
  if (GetParam().executor == Executor::Cpu) {
    // The cpu executor runs on the host and can raise: it rejects the label like the reference.
    EXPECT_THROW(run(exec_context(GetParam()), DType::F32, k, z, labels, {}, {}), Error);
    return;
  }
  const CeOut got = run(exec_context(GetParam()), DType::F32, k, z, labels, {}, {});
  EXPECT_TRUE(std::isnan(got.loss));
}

INSTANTIATE_TEST_SUITE_P(Executors, SoftmaxCeUpsampleKernel,
                         ::testing::ValuesIn(kernel_exec_cases()), ExecCaseName());

}  // namespace
}  // namespace farsee::test
