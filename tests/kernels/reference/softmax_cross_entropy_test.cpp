// Reference softmax cross-entropy (ignore label 255, mean): hand-worked two-pixel case, PyTorch
// fixtures (loss and gradient, including logits of magnitude ~100, and the fused upsampling loss
// with class weights), all-ignored, slices, weighted-mean properties, bad arguments.
#include "kernels/reference/softmax_cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "kernels/reference/resize.h"
#include "kernels/softmax_cross_entropy.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/gradient_check.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

// Three pixels, two classes:
//   pixel 0: logits (0, 0), label 0: p = (1/2, 1/2), loss ln 2, grad (p - onehot) / 2 = (-1/4, 1/4)
//   pixel 1: logits (ln 3, 0), label 1: p = (3/4, 1/4), loss ln 4, grad (3/8, -3/8)
//   pixel 2: label 255: ignored, grad 0
// mean over the 2 counted pixels: (ln 2 + ln 4) / 2 = 1.5 ln 2.
TEST(SoftmaxCrossEntropy, HandWorkedTwoPixels) {
  std::vector<float> z = {0, 0, float(std::log(3.0)), 0, 5, -5};
  const std::vector<uint8_t> labels = {0, 1, 255};
  std::vector<float> grad(6, 99.0f);
  const Shape4 s{1, 1, 3, 2};
  const float loss = reference::softmax_cross_entropy(
      make_view(z.data(), DType::F32, s), labels.data(), make_view(grad.data(), DType::F32, s));
  EXPECT_NEAR(loss, 1.5 * std::log(2.0), 1e-7);
  // |error| <= 1 ulp of 0.375 from the rounding of ln 3 to fp32 and the final rounding.
  EXPECT_TRUE(all_close(grad, std::vector<float>{-0.25f, 0.25f, 0.375f, -0.375f, 0, 0}, 6e-8));
  // Without a gradient view the loss is the same.
  EXPECT_EQ(reference::softmax_cross_entropy(make_view(z.data(), DType::F32, s), labels.data()),
            loss);
}

// With every label ignored PyTorch returns NaN (0 / 0) and a zero gradient.
TEST(SoftmaxCrossEntropy, AllIgnoredIsNaNWithZeroGradient) {
  std::vector<float> z = {1, 2, 3, 4};
  const std::vector<uint8_t> labels = {255, 255};
  std::vector<float> grad(4, 99.0f);
  const Shape4 s{1, 1, 2, 2};
  EXPECT_TRUE(std::isnan(reference::softmax_cross_entropy(
      make_view(z.data(), DType::F32, s), labels.data(), make_view(grad.data(), DType::F32, s))));
  EXPECT_TRUE(all_equal(grad, std::vector<float>(4, 0.0f)));
}

class CrossEntropyFixture : public ::testing::TestWithParam<const char*> {};

// The fixture is float64 PyTorch rounded to fp32; ours is double rounded to fp32: one ulp apart
// at most (rtol 1.2e-7; measured: loss and gradient bit-exact). atol 1e-12 for gradient entries
// that are tiny probabilities (exp(-100)-scale values of the large-logit case are ~1e-44 and round
// to denormals or zero in both).
TEST_P(CrossEntropyFixture, MatchesPyTorch) {
  const OpFixture f(GetParam());
  Shape4 s;
  const std::vector<float> z = f.nhwc("logits", &s), want_grad = f.nhwc("grad", &s);
  const NpyArray labels = f.array("labels");
  ASSERT_EQ(labels.shape, (std::vector<int64_t>{s.n, s.h, s.w}));
  const float want_loss = f.floats("loss").at(0);
  // Logits and grad as channel slices of wider buffers.
  NhwcTestTensor zt(kRef, DType::F32, s, Placement{2, s.c + 3});
  zt.upload(z);
  NhwcTestTensor gt(kRef, DType::F32, s, Placement{1, s.c + 1});
  const float loss = reference::softmax_cross_entropy(zt.view(), labels.bytes().data(), gt.view());
  EXPECT_NEAR(loss, want_loss, 1.2e-7 * std::fabs(want_loss));
  EXPECT_TRUE(all_close(gt.download(), want_grad, 1e-12, 1.2e-7));
  EXPECT_TRUE(gt.outside_untouched());
}

INSTANTIATE_TEST_SUITE_P(PyTorch, CrossEntropyFixture,
                         ::testing::Values("ce_ignore", "ce_large_logits"),
                         [](const auto& info) { return std::string(info.param); });

TEST(SoftmaxCrossEntropyArgs, BadArgumentsNameTheTensor) {
  std::vector<float> z(2 * 3), g(2 * 3);
  const Shape4 s{1, 1, 2, 3};
  const TensorView zv = make_view(z.data(), DType::F32, s);
  const std::vector<uint8_t> bad_label = {1, 3};  // 3 classes: 3 is out of range
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::softmax_cross_entropy(zv, bad_label.data()); }, "labels[1] = 3"));
  const std::vector<uint8_t> ok = {1, 255};
  TensorView gv = make_view(g.data(), DType::F32, s);
  gv.shape.c = 2;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::softmax_cross_entropy(zv, ok.data(), gv); },
                                      "softmax_cross_entropy: grad"));
  TensorView z16 = zv;
  z16.dtype = DType::F16;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::softmax_cross_entropy(z16, ok.data()); },
                                      "softmax_cross_entropy: logits"));
  EXPECT_TRUE(
      throws_error_mentioning([&] { reference::softmax_cross_entropy(zv, nullptr); }, "labels"));
}

// ---- softmax_ce_upsample: the loss at label resolution from low-resolution logits ----

struct CeResult {
  float loss = 0;
  int64_t count = -1;
  std::vector<float> grad;  // dense, logits' shape
};

std::vector<uint8_t> random_labels(size_t n, int classes, uint32_t seed, double ignore_fraction) {
  const std::vector<float> u = random_floats(n, seed, 0.0f, 1.0f);
  const std::vector<float> c = random_floats(n, seed + 1, 0.0f, float(classes));
  std::vector<uint8_t> labels(n);
  for (size_t i = 0; i < n; ++i)
    labels[i] = u[i] < ignore_fraction ? 255 : uint8_t(std::min(int(c[i]), classes - 1));
  return labels;
}

CeResult fused_ce(bool ac, Shape4 ls, const std::vector<float>& logits,
                  const std::vector<uint8_t>& labels, int lh, int lw, float grad_scale = 1.0f,
                  DType dtype = DType::F32, Placement zp = {}, Placement gp = {},
                  DType grad_dtype = DType::F32, const float* class_weights = nullptr) {
  NhwcTestTensor zt(kRef, dtype, ls, zp);
  zt.upload(logits);
  NhwcTestTensor gt(kRef, grad_dtype, ls, gp);
  std::vector<float> ws(softmax_ce_workspace_bytes(ls, lh, lw) / 4);
  CeResult r;
  softmax_ce_upsample(kRef, ac, zt.view(), labels.data(), lh, lw, &r.loss, gt.view(), grad_scale,
                      ws.data(), ws.size() * 4, &r.count, class_weights);
  r.grad = gt.download();
  EXPECT_TRUE(gt.outside_untouched());
  return r;
}

// The unfused composition: F.interpolate to the label size (fp32), F.cross_entropy, and the
// resize's transpose for the gradient.
CeResult composed_ce(bool ac, Shape4 ls, const std::vector<float>& logits,
                     const std::vector<uint8_t>& labels, int lh, int lw) {
  std::vector<float> z = logits, full(size_t(ls.n) * lh * lw * ls.c), gfull(full.size());
  const Shape4 fs{ls.n, lh, lw, ls.c};
  reference::resize_bilinear_fwd(ac, make_view(z.data(), DType::F32, ls),
                                 make_view(full.data(), DType::F32, fs));
  CeResult r;
  r.loss = reference::softmax_cross_entropy(make_view(full.data(), DType::F32, fs), labels.data(),
                                            make_view(gfull.data(), DType::F32, fs));
  r.grad.resize(z.size());
  reference::resize_bilinear_bwd(ac, make_view(gfull.data(), DType::F32, fs),
                                 make_view(r.grad.data(), DType::F32, ls));
  return r;
}

// Fused == composed. The composition rounds the upsampled logits and their gradient to fp32 (the
// fused reference keeps both in double): the losses agree to ~1e-7 relative (rtol 1e-6), the
// gradients to a few fp32 ulp of their scale 1/M (atol 8e-6 / M, rtol 1e-5).
TEST(SoftmaxCeUpsample, EqualsInterpolateThenCrossEntropy) {
  struct Case {
    Shape4 logits;
    int lh, lw;
  };
  for (bool ac : {false, true}) {
    for (const Case& k :
         {Case{{2, 5, 7, 19}, 20, 28}, Case{{1, 4, 3, 5}, 32, 24}, Case{{3, 6, 5, 3}, 6, 5},
          Case{{1, 9, 8, 4}, 5, 6}, Case{{1, 3, 4, 2}, 13, 17}}) {
      SCOPED_TRACE(to_string(k.logits) + " -> " + std::to_string(k.lh) + "x" +
                   std::to_string(k.lw) + " align_corners " + std::to_string(ac));
      const std::vector<float> z = random_floats(size_t(k.logits.elements()), 21, -4.0f, 4.0f);
      const std::vector<uint8_t> labels =
          random_labels(size_t(k.logits.n) * k.lh * k.lw, k.logits.c, 22, 0.2);
      const CeResult got = fused_ce(ac, k.logits, z, labels, k.lh, k.lw);
      const CeResult want = composed_ce(ac, k.logits, z, labels, k.lh, k.lw);
      EXPECT_NEAR(got.loss, want.loss, 1e-6 * std::fabs(want.loss));
      const double m =
          double(std::count_if(labels.begin(), labels.end(), [](uint8_t l) { return l != 255; }));
      EXPECT_EQ(got.count, int64_t(m));
      EXPECT_TRUE(all_close(got.grad, want.grad, 8e-6 / m, 1e-5));
    }
  }
}

// Central differences of the fused loss (fp32, its double sum rounded once) with respect to each
// low-resolution logit, unweighted and with class weights (<= 4, mean near 2: the loss and its
// curvature keep their scale). Error budget: the loss's fp32 rounding (~2e-7 absolute at loss ~2)
// over 2h = 6e-3 -> 4e-5 absolute; truncation h^2 / 6 times a third derivative of order 1 / M.
TEST(SoftmaxCeUpsample, FiniteDifferences) {
  struct Case {
    Shape4 logits;
    int lh, lw;
    bool ac;
    std::vector<float> weights;  // empty: unweighted
  };
  for (const Case& k : {Case{{1, 3, 4, 5}, 12, 16, false, {}}, Case{{2, 4, 3, 3}, 13, 11, true, {}},
                        Case{{1, 5, 4, 2}, 5, 4, false, {}},
                        Case{{1, 3, 4, 5}, 12, 16, true, {0.5f, 4.0f, 1.5f, 0.0f, 2.5f}}}) {
    const std::string what = to_string(k.logits) + " -> " + std::to_string(k.lh) + "x" +
                             std::to_string(k.lw) + (k.weights.empty() ? "" : " weighted");
    SCOPED_TRACE(what);
    const std::vector<float> z = random_floats(size_t(k.logits.elements()), 31, -3.0f, 3.0f);
    const std::vector<uint8_t> labels =
        random_labels(size_t(k.logits.n) * k.lh * k.lw, k.logits.c, 32, 0.25);
    auto run = [&](const std::vector<float>& zv) {
      return fused_ce(k.ac, k.logits, zv, labels, k.lh, k.lw, 1.0f, DType::F32, {}, {}, DType::F32,
                      k.weights.empty() ? nullptr : k.weights.data());
    };
    GradientCheck opt;
    opt.h = 3e-3;
    opt.atol = 6e-5;
    opt.rtol = 2e-3;
    double err = 0;
    opt.max_error = &err;
    EXPECT_TRUE(check_gradient([&](const std::vector<float>& zv) { return double(run(zv).loss); },
                               z, run(z).grad, opt));
    std::cout << "[ fd ] softmax_ce_upsample " << what << ": max |fd - grad| " << err << "\n";
  }
}

// grad_scale scales the gradient only; fp16 logits are the fp32 path on the rounded values;
// slices of logits and dlogits change nothing; fp16 dlogits (mixed precision, a loss scale of
// 2^16) are the fp32 ones rounded to fp16.
TEST(SoftmaxCeUpsample, GradScaleSlicesFp16) {
  const Shape4 ls{2, 4, 5, 6};
  const std::vector<float> z = round_to_half(random_floats(size_t(ls.elements()), 41, -3.f, 3.f));
  const std::vector<uint8_t> labels = random_labels(size_t(2) * 16 * 20, 6, 42, 0.1);
  const CeResult base = fused_ce(false, ls, z, labels, 16, 20);
  const CeResult scaled =
      fused_ce(false, ls, z, labels, 16, 20, 128.0f, DType::F16, Placement{1, 9}, Placement{3, 10});
  EXPECT_EQ(scaled.loss, base.loss);
  EXPECT_EQ(scaled.count, base.count);
  std::vector<float> want = base.grad;
  for (float& g : want) g *= 128.0f;  // exact: a power of two
  EXPECT_TRUE(all_equal(scaled.grad, want));
  const CeResult half = fused_ce(false, ls, z, labels, 16, 20, 65536.0f, DType::F16,
                                 Placement{1, 9}, Placement{3, 10}, DType::F16);
  EXPECT_EQ(half.loss, base.loss);
  for (float& g : want) g *= 512.0f;  // 128 * 512 = 65536
  EXPECT_TRUE(all_equal(half.grad, round_to_half(want)));
}

// Class weights against PyTorch (float64 F.cross_entropy(F.interpolate(...), weight=w) rounded to
// fp32; one class weighted 0), both align_corners. Ours interpolates with fp32 tap weights (as the
// kernels; PyTorch's float64 path computes them in double): measured loss equal to 6 digits,
// gradient within 3.7e-9 absolute (1e-7 relative) and 7e-10 on an entry of 1.4e-5; rtol 1e-6
// and atol 2e-6 / S (S ~ 580 here: 3.4e-9) leave ~5x room.
class WeightedCeFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(WeightedCeFixture, MatchesPyTorch) {
  const OpFixture f(GetParam());
  Shape4 s;
  const std::vector<float> z = f.nhwc("logits", &s), want_grad = f.nhwc("grad", &s);
  const std::vector<int32_t> params = f.params();  // align_corners, label h, label w
  const NpyArray labels = f.array("labels");
  ASSERT_EQ(labels.shape, (std::vector<int64_t>{s.n, params[1], params[2]}));
  const std::vector<float> weights = f.floats("weights");
  ASSERT_EQ(int(weights.size()), s.c);
  double weight_sum = 0;
  for (uint8_t l : labels.bytes()) weight_sum += l == 255 ? 0.0 : double(weights[l]);
  const CeResult got = fused_ce(params[0] != 0, s, z, labels.bytes(), params[1], params[2], 1.0f,
                                DType::F32, {}, {}, DType::F32, weights.data());
  const float want_loss = f.floats("loss").at(0);
  EXPECT_NEAR(got.loss, want_loss, 1e-6 * std::fabs(want_loss));
  EXPECT_TRUE(all_close(got.grad, want_grad, 2e-6 / weight_sum, 1e-6));
  double worst = 0;
  for (size_t i = 0; i < got.grad.size(); ++i)
    worst = std::max(worst, double(std::fabs(got.grad[i] - want_grad[i])));
  std::cout << "[ ce ] " << GetParam() << ": loss " << got.loss << " vs " << want_loss
            << ", worst grad error " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(PyTorch, WeightedCeFixture,
                         ::testing::Values("ce_upsample_weighted", "ce_upsample_weighted_ac"),
                         [](const auto& info) { return std::string(info.param); });

// Properties of the weighted mean, bitwise: weights all 1 are the unweighted loss; a one-hot
// weight on class k is the unweighted loss over class k's pixels alone (every other label set to
// 255); weights scaled by 2 (a power of two) change nothing; every counted class weighted 0 is
// 0 / 0: NaN and a zero gradient, as PyTorch.
TEST(SoftmaxCeUpsample, ClassWeightProperties) {
  const Shape4 ls{2, 4, 5, 6};
  const int lh = 16, lw = 20;
  const std::vector<float> z = random_floats(size_t(ls.elements()), 61, -3.f, 3.f);
  const std::vector<uint8_t> labels = random_labels(size_t(2) * lh * lw, 6, 62, 0.1);
  const CeResult plain = fused_ce(false, ls, z, labels, lh, lw);
  const std::vector<float> ones(6, 1.0f);
  const CeResult unit =
      fused_ce(false, ls, z, labels, lh, lw, 1.0f, DType::F32, {}, {}, DType::F32, ones.data());
  EXPECT_EQ(unit.loss, plain.loss);
  EXPECT_EQ(unit.count, plain.count);
  EXPECT_TRUE(all_equal(unit.grad, plain.grad));

  const std::vector<float> w = {0.5f, 2.0f, 1.25f, 3.0f, 0.75f, 4.0f};
  std::vector<float> w2 = w;
  for (float& x : w2) x *= 2.0f;
  const CeResult a =
      fused_ce(false, ls, z, labels, lh, lw, 1.0f, DType::F32, {}, {}, DType::F32, w.data());
  const CeResult b =
      fused_ce(false, ls, z, labels, lh, lw, 1.0f, DType::F32, {}, {}, DType::F32, w2.data());
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_TRUE(all_equal(a.grad, b.grad));
  EXPECT_EQ(a.count, plain.count);  // valid_count stays the number of counted pixels
  EXPECT_NE(a.loss, plain.loss);

  const int k = 3;
  std::vector<float> one_hot(6, 0.0f);
  one_hot[k] = 1.0f;
  std::vector<uint8_t> only_k = labels;
  for (uint8_t& l : only_k) l = l == k ? uint8_t(k) : uint8_t(255);
  const CeResult masked = fused_ce(false, ls, z, only_k, lh, lw);
  const CeResult weighted =
      fused_ce(false, ls, z, labels, lh, lw, 1.0f, DType::F32, {}, {}, DType::F32, one_hot.data());
  EXPECT_EQ(weighted.loss, masked.loss);
  EXPECT_TRUE(all_equal(weighted.grad, masked.grad));

  const std::vector<float> zeros(6, 0.0f);
  const CeResult none =
      fused_ce(false, ls, z, labels, lh, lw, 1.0f, DType::F32, {}, {}, DType::F32, zeros.data());
  EXPECT_TRUE(std::isnan(none.loss));
  EXPECT_EQ(none.count, plain.count);
  EXPECT_TRUE(all_equal(none.grad, std::vector<float>(z.size(), 0.0f)));
}

// Every label ignored: NaN loss, zero gradient, count 0 (PyTorch: 0 / 0).
TEST(SoftmaxCeUpsample, AllIgnoredIsNaNWithZeroGradient) {
  const Shape4 ls{1, 3, 3, 4};
  const std::vector<float> z = random_floats(size_t(ls.elements()), 51);
  const CeResult r = fused_ce(true, ls, z, std::vector<uint8_t>(12 * 12, 255), 12, 12);
  EXPECT_TRUE(std::isnan(r.loss));
  EXPECT_EQ(r.count, 0);
  EXPECT_TRUE(all_equal(r.grad, std::vector<float>(z.size(), 0.0f)));
}

TEST(SoftmaxCeUpsampleArgs, BadArguments) {
  std::vector<float> z(2 * 2 * 3), g(2 * 2 * 3), ws(1000);
  const Shape4 s{1, 2, 2, 3};
  const TensorView zv = make_view(z.data(), DType::F32, s);
  const TensorView gv = make_view(g.data(), DType::F32, s);
  std::vector<uint8_t> labels(16, 1);
  float loss = 0;
  EXPECT_NO_THROW(softmax_ce_upsample(kRef, false, zv, labels.data(), 4, 4, &loss, gv, 1.0f,
                                      ws.data(), ws.size() * 4));
  labels[5] = 3;
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        softmax_ce_upsample(kRef, false, zv, labels.data(), 4, 4, &loss, gv, 1.0f, ws.data(),
                            ws.size() * 4);
      },
      "labels[5] = 3"));
  labels[5] = 0;
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        softmax_ce_upsample(kRef, false, zv, labels.data(), 4, 4, &loss, gv, 1.0f, ws.data(), 8);
      },
      "workspace"));
  const TensorView g_wrong = make_view(g.data(), DType::F32, Shape4{1, 2, 2, 2});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        softmax_ce_upsample(kRef, false, zv, labels.data(), 4, 4, &loss, g_wrong, 1.0f, ws.data(),
                            ws.size() * 4);
      },
      "dlogits"));
}

}  // namespace
}  // namespace farsee::test
