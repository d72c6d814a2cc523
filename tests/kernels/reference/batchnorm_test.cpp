// Reference BatchNorm: inference, training statistics and running update, folding; hand-worked
// cases, PyTorch fixtures, slices / in place, bad arguments.
#include "kernels/reference/batchnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

// Fixture outputs are float64 PyTorch rounded to fp32; ours are double rounded to fp32: they
// differ by at most one ulp where the double results straddle a rounding boundary (rtol 2^-23;
// measured: bit-exact on both fixtures). atol covers outputs near zero: (x - mean) cancels with a
// double error of ~1e-16 * |x| (|x| < 10 here).
constexpr double kBnRtol = 1.2e-7, kBnAtol = 1e-12;

// eps is chosen so that var + eps is a perfect square (explicit eps argument).
// Channel 0: mean 1, var 3.75, eps 0.25 -> std 2; gamma 2, beta 0.5: y = x - 0.5.
// Channel 1: mean -2, var 0.75 -> std 1; gamma -1, beta 0: y = -(x + 2).
TEST(BatchNorm, HandWorkedInference) {
  std::vector<float> x = {1, 4, 5, -3, -1, 0};  // 3 pixels x 2 channels
  const float gamma[2] = {2, -1}, beta[2] = {0.5f, 0}, mean[2] = {1, -2}, var[2] = {3.75f, 0.75f};
  std::vector<float> y(x.size());
  reference::batchnorm_inference_fwd(make_view(x.data(), DType::F32, Shape4{1, 1, 3, 2}), gamma,
                                     beta, mean, var,
                                     make_view(y.data(), DType::F32, Shape4{1, 1, 3, 2}), 0.25f);
  EXPECT_TRUE(all_equal(y, std::vector<float>{0.5f, -6, 4.5f, 1, -1.5f, -2}));
}

// One channel, x = 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased var 5/3. eps 2.75 makes the
// std 2: y = (x - 2.5) / 2. Running stats (0, 1) move to (0.25, 0.9 + 0.1 * 5/3).
TEST(BatchNorm, HandWorkedTrainingAndRunningUpdate) {
  std::vector<float> x = {1, 2, 3, 4};
  std::vector<float> y(4);
  float mean = 0, var = 0;
  reference::batchnorm_training_fwd(make_view(x.data(), DType::F32, Shape4{1, 2, 2, 1}), nullptr,
                                    nullptr, make_view(y.data(), DType::F32, Shape4{1, 2, 2, 1}),
                                    &mean, &var, 2.75f);
  EXPECT_TRUE(all_equal(y, std::vector<float>{-0.75f, -0.25f, 0.25f, 0.75f}));
  EXPECT_EQ(mean, 2.5f);
  EXPECT_EQ(var, 1.25f);
  float running_mean = 0, running_var = 1;
  reference::batchnorm_update_running(1, 4, &mean, &var, &running_mean, &running_var);
  EXPECT_FLOAT_EQ(running_mean, 0.25f);
  EXPECT_FLOAT_EQ(running_var, float(0.9 + 0.1 * 5.0 / 3.0));
}

// scale = gamma / sqrt(var + eps) = 2 / 2 = 1, bias = beta - mean * scale = 1 - 3 = -2; null
// gamma/beta mean 1/0.
TEST(BatchNorm, HandWorkedFold) {
  const float gamma[2] = {2, 0}, beta[2] = {1, 0}, mean[2] = {3, 1}, var[2] = {3.75f, 0.75f};
  float scale[2], bias[2];
  reference::fold_batchnorm(2, gamma, beta, mean, var, 0.25f, scale, bias);
  EXPECT_EQ(scale[0], 1.0f);
  EXPECT_EQ(bias[0], -2.0f);
  reference::fold_batchnorm(2, nullptr, nullptr, mean, var, 0.25f, scale, bias);
  EXPECT_EQ(scale[1], 1.0f);
  EXPECT_EQ(bias[1], -1.0f);
}

TEST(BatchNorm, InferenceMatchesPyTorch) {
  const OpFixture f("batchnorm_inference");
  Shape4 s;
  const std::vector<float> x = f.nhwc("x", &s), want = f.nhwc("y", &s);
  const std::vector<float> gamma = f.floats("gamma"), beta = f.floats("beta"),
                           mean = f.floats("mean"), var = f.floats("var");
  // Dense, then x and y as channel slices of wider buffers.
  for (Placement xp : {Placement{}, Placement{2, s.c + 3}}) {
    NhwcTestTensor xt(kRef, DType::F32, s, xp);
    xt.upload(x);
    NhwcTestTensor yt(kRef, DType::F32, s, Placement{xp.offset / 2, xp.pixel_stride});
    reference::batchnorm_inference_fwd(xt.view(), gamma.data(), beta.data(), mean.data(),
                                       var.data(), yt.view());
    EXPECT_TRUE(all_close(yt.download(), want, kBnAtol, kBnRtol));
    EXPECT_TRUE(yt.outside_untouched());
  }
  // In place.
  std::vector<float> inplace = x;
  const TensorView v = make_view(inplace.data(), DType::F32, s);
  reference::batchnorm_inference_fwd(v, gamma.data(), beta.data(), mean.data(), var.data(), v);
  EXPECT_TRUE(all_close(inplace, want, kBnAtol, kBnRtol));

  // The folded form: y = scale * x + bias, in fp32 here: the roundings of scale, bias, the product
  // and the sum, each up to half an ulp of terms of magnitude up to ~10 (atol 2e-6, rtol 1e-6;
  // measured max 9.5e-7, one ulp of |y| = 8.4).
  std::vector<float> scale(size_t(s.c)), bias(size_t(s.c));
  reference::fold_batchnorm(s.c, gamma.data(), beta.data(), mean.data(), var.data(),
                            reference::kBatchNormEps, scale.data(), bias.data());
  std::vector<float> folded(x.size());
  for (size_t i = 0; i < x.size(); ++i) folded[i] = x[i] * scale[i % s.c] + bias[i % s.c];
  EXPECT_TRUE(all_close(folded, want, 2e-6, 1e-6));
}

TEST(BatchNorm, TrainingMatchesPyTorch) {
  const OpFixture f("batchnorm_training");
  Shape4 s;
  const std::vector<float> x = f.nhwc("x", &s), want = f.nhwc("y", &s);
  const std::vector<float> gamma = f.floats("gamma"), beta = f.floats("beta");
  NhwcTestTensor xt(kRef, DType::F32, s, Placement{1, s.c + 2});
  xt.upload(x);
  NhwcTestTensor yt(kRef, DType::F32, s, Placement{3, s.c + 4});
  std::vector<float> mean(size_t(s.c)), var(size_t(s.c));
  reference::batchnorm_training_fwd(xt.view(), gamma.data(), beta.data(), yt.view(), mean.data(),
                                    var.data());
  EXPECT_TRUE(all_close(yt.download(), want, kBnAtol, kBnRtol));
  EXPECT_TRUE(yt.outside_untouched());
  EXPECT_TRUE(all_close(mean, f.floats("batch_mean"), kBnAtol, kBnRtol));
  EXPECT_TRUE(all_close(var, f.floats("batch_var"), kBnAtol, kBnRtol));

  // Running update from fp32 batch statistics: the fixture's went through double, ours through
  // the fp32-rounded mean/var, i.e. one more rounding of a term weighted by momentum 0.1
  // (rtol 3e-7: 2.5 ulp; measured: bit-exact).
  std::vector<float> running_mean = f.floats("running_mean_in");
  std::vector<float> running_var = f.floats("running_var_in");
  reference::batchnorm_update_running(s.c, s.pixels(), mean.data(), var.data(), running_mean.data(),
                                      running_var.data());
  EXPECT_TRUE(all_close(running_mean, f.floats("running_mean_out"), kBnAtol, 3e-7));
  EXPECT_TRUE(all_close(running_var, f.floats("running_var_out"), kBnAtol, 3e-7));
}

// fp16 storage of x and y: the same as computing in fp32 on the fp16-rounded x and rounding the
// result to fp16 (one double result, rounded to fp32, then to fp16): exact.
TEST(BatchNorm, Fp16StorageIsRoundedFp32) {
  const OpFixture f("batchnorm_inference");
  Shape4 s;
  const std::vector<float> x16 = round_to_half(f.nhwc("x", &s));
  const std::vector<float> gamma = f.floats("gamma"), beta = f.floats("beta"),
                           mean = f.floats("mean"), var = f.floats("var");
  std::vector<float> want(x16.size());
  reference::batchnorm_inference_fwd(make_view(const_cast<float*>(x16.data()), DType::F32, s),
                                     gamma.data(), beta.data(), mean.data(), var.data(),
                                     make_view(want.data(), DType::F32, s));
  NhwcTestTensor xt(kRef, DType::F16, s, Placement{1, s.c + 1});
  xt.upload(x16);
  NhwcTestTensor yt(kRef, DType::F16, s);
  reference::batchnorm_inference_fwd(xt.view(), gamma.data(), beta.data(), mean.data(), var.data(),
                                     yt.view());
  EXPECT_TRUE(all_equal(yt.download(), round_to_half(want)));
}

TEST(BatchNormArgs, BadArgumentsNameTheTensor) {
  std::vector<float> xb(2 * 3 * 3 * 4), yb(xb.size());
  const float ones[4] = {1, 1, 1, 1};
  const TensorView x = make_view(xb.data(), DType::F32, Shape4{2, 3, 3, 4});
  TensorView y = make_view(yb.data(), DType::F32, Shape4{2, 3, 3, 4});
  y.shape.c = 3;
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::batchnorm_inference_fwd(x, ones, ones, ones, ones, y); },
      "batchnorm_inference_fwd: y"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::batchnorm_training_fwd(x, ones, ones, y, nullptr, nullptr); },
      "batchnorm_training_fwd: y"));
  y.shape.c = 4;
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::batchnorm_inference_fwd(x, ones, ones, nullptr, ones, y); },
      "running_mean"));
  const float negative[4] = {1, -1, 1, 1};
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::batchnorm_inference_fwd(x, ones, ones, ones, negative, y); },
      "running_var[1]"));
  const TensorView one_pixel = make_view(xb.data(), DType::F32, Shape4{1, 1, 1, 4});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        reference::batchnorm_training_fwd(one_pixel, ones, ones, one_pixel, nullptr, nullptr);
      },
      "one value per channel"));
  float r[4] = {};
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::batchnorm_update_running(4, 1, ones, ones, r, r); }, "count"));
  float scale[4], bias[4];
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::fold_batchnorm(4, ones, ones, ones, negative, 1e-5f, scale, bias); },
      "fold_batchnorm: var[1]"));
}

}  // namespace
}  // namespace farsee::test
