// Reference softmax cross-entropy (ignore label 255, mean): hand-worked two-pixel case, PyTorch
// fixtures (loss and gradient, including logits of magnitude ~100), all-ignored, slices, bad
// arguments.
#include "kernels/reference/softmax_cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/reference/test_util.h"
#include "tests/support/compare.h"

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

}  // namespace
}  // namespace farsee::test
