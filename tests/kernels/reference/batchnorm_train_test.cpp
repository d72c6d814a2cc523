// Reference BatchNorm training forward/backward (kernels/batchnorm.h, reference executor):
// central-difference gradient checks of the dense double core (with and without ReLU, with a
// residual), the PyTorch training fixture through the public entry point (y, saved statistics,
// running statistics with the unbiased variance), and the view-level semantics (slices, fp16,
// accumulation flags, aliasing dx = dy).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/reference/batchnorm.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

std::vector<double> uniform(size_t n, uint32_t seed, double lo, double hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return v;
}

// One gradient-check problem: L = sum_i w_i * y_i with y = act(BN(x) + residual).
struct GradProblem {
  int64_t pixels;
  int channels;
  bool relu, with_residual;
  std::vector<double> x, gamma, beta, residual, w;

  GradProblem(int64_t p, int c, bool relu_, bool res, uint32_t seed)
      : pixels(p), channels(c), relu(relu_), with_residual(res) {
    const size_t n = size_t(p) * c;
    x = uniform(n, seed, -2.0, 3.0);
    for (size_t i = 0; i < n; ++i) x[i] += 0.5 * double(i % c);  // channel means differ
    gamma = uniform(size_t(c), seed + 1, -1.5, 1.5);
    beta = uniform(size_t(c), seed + 2, -0.5, 0.5);
    residual = uniform(n, seed + 3, -1.0, 1.0);
    w = uniform(n, seed + 4, -1.0, 1.0);
  }
  // Loss and the ReLU mask (y > 0) of the forward at the current values.
  double loss(std::vector<char>* mask = nullptr) const {
    std::vector<double> y(x.size()), mean(static_cast<size_t>(channels)),
        var(static_cast<size_t>(channels));
    reference::batchnorm_train_fwd_dense(pixels, channels, x.data(), gamma.data(), beta.data(),
                                         with_residual ? residual.data() : nullptr, relu, 1e-5,
                                         y.data(), mean.data(), var.data());
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += w[i] * y[i];
    if (mask) {
      mask->resize(y.size());
      for (size_t i = 0; i < y.size(); ++i) (*mask)[i] = y[i] > 0.0;
    }
    return l;
  }
};

struct GradError {
  double worst = 0;
  int checked = 0, skipped = 0;
};

// Central difference of the loss in `value` (a reference into the problem), compared with
// `analytic`; skipped when a ReLU mask flips within +-h (a kink).
void check_derivative(GradProblem& pb, double& value, double analytic, const char* what, size_t i,
                      GradError& e) {
  constexpr double h = 1e-5;
  std::vector<char> base, plus, minus;
  pb.loss(&base);
  const double saved = value;
  value = saved + h;
  const double lp = pb.loss(&plus);
  value = saved - h;
  const double lm = pb.loss(&minus);
  value = saved;
  if (pb.relu && (plus != base || minus != base)) {
    ++e.skipped;
    return;
  }
  const double fd = (lp - lm) / (2 * h);
  const double err = std::fabs(fd - analytic);
  e.worst = std::max(e.worst, err);
  ++e.checked;
  // Truncation h^2 * L''' and rounding 1e-16 * |L| / h, both ~1e-10 here: 1e-7 is generous and
  // still far below any real error (a missing term is O(1e-2)).
  EXPECT_LE(err, 1e-7 * std::max(1.0, std::fabs(fd)))
      << what << "[" << i << "]: fd " << fd << ", analytic " << analytic;
}

void gradient_check(int64_t pixels, int channels, bool relu, bool residual, uint32_t seed) {
  GradProblem pb(pixels, channels, relu, residual, seed);
  const size_t n = pb.x.size();
  std::vector<double> y(n), mean(static_cast<size_t>(channels)), var(static_cast<size_t>(channels)),
      invstd(static_cast<size_t>(channels));
  reference::batchnorm_train_fwd_dense(pixels, channels, pb.x.data(), pb.gamma.data(),
                                       pb.beta.data(), residual ? pb.residual.data() : nullptr,
                                       relu, 1e-5, y.data(), mean.data(), var.data());
  for (int c = 0; c < channels; ++c) invstd[c] = 1.0 / std::sqrt(var[c] + 1e-5);
  std::vector<double> dx(n), dz(n), dgamma(static_cast<size_t>(channels)),
      dbeta(static_cast<size_t>(channels));
  reference::batchnorm_train_bwd_dense(pixels, channels, pb.x.data(), y.data(), relu, pb.w.data(),
                                       mean.data(), invstd.data(), pb.gamma.data(), dx.data(),
                                       dz.data(), dgamma.data(), dbeta.data());
  GradError e;
  for (size_t i = 0; i < n; ++i) check_derivative(pb, pb.x[i], dx[i], "dx", i, e);
  for (int c = 0; c < channels; ++c) {
    check_derivative(pb, pb.gamma[c], dgamma[c], "dgamma", size_t(c), e);
    check_derivative(pb, pb.beta[c], dbeta[c], "dbeta", size_t(c), e);
  }
  if (residual) {
    for (size_t i = 0; i < n; ++i) check_derivative(pb, pb.residual[i], dz[i], "dresidual", i, e);
  }
  EXPECT_GT(e.checked, int(n));  // the kinks are a small minority
  std::printf(
      "[ gradcheck ] pixels %lld C %d relu %d residual %d: %d derivatives, %d skipped "
      "(ReLU kink), max |fd - analytic| = %.3g\n",
      static_cast<long long>(pixels), channels, int(relu), int(residual), e.checked, e.skipped,
      e.worst);
}

TEST(BatchNormTrainGradient, NoReluNoResidual) {
  gradient_check(30, 3, false, false, 1);
}
TEST(BatchNormTrainGradient, ReluWithResidual) {
  gradient_check(30, 3, true, true, 11);
}
TEST(BatchNormTrainGradient, ReluNoResidualTwoPixels) {
  gradient_check(2, 2, true, false, 21);  // the smallest batch PyTorch allows
}
TEST(BatchNormTrainGradient, NoReluWithResidualOneChannel) {
  gradient_check(45, 1, false, true, 31);
}

// The public entry (reference executor) against the PyTorch fixture: y, saved mean and invstd,
// running statistics (momentum 0.1, unbiased variance). Tolerances as tests/kernels/reference/
// batchnorm_test.cpp (double results rounded once; rtol 3e-7 for the running update's roundings).
TEST(BatchNormTrain, FwdMatchesPyTorch) {
  const OpFixture f("batchnorm_training");
  Shape4 s;
  const std::vector<float> x = f.nhwc("x", &s), want = f.nhwc("y", &s);
  const std::vector<float> gamma = f.floats("gamma"), beta = f.floats("beta");
  NhwcTestTensor xt(kRef, DType::F32, s, Placement{1, s.c + 2});
  xt.upload(x);
  NhwcTestTensor yt(kRef, DType::F32, s, Placement{3, s.c + 4});
  std::vector<float> save_mean(size_t(s.c)), save_invstd(size_t(s.c));
  std::vector<float> running_mean = f.floats("running_mean_in");
  std::vector<float> running_var = f.floats("running_var_in");
  std::vector<char> ws(batchnorm_workspace_bytes(s));
  batchnorm_train_fwd(kRef, xt.view(), gamma.data(), beta.data(), TensorView{}, false, yt.view(),
                      save_mean.data(), save_invstd.data(), running_mean.data(), running_var.data(),
                      BatchNormTrainArgs{}, ws.data(), ws.size());
  EXPECT_TRUE(all_close(yt.download(), want, 1e-12, 1.2e-7));
  EXPECT_TRUE(yt.outside_untouched());
  EXPECT_TRUE(all_close(save_mean, f.floats("batch_mean"), 1e-12, 1.2e-7));
  const std::vector<float> var = f.floats("batch_var");
  std::vector<float> want_invstd(var.size());
  for (size_t c = 0; c < var.size(); ++c)
    want_invstd[c] = float(1.0 / std::sqrt(double(var[c]) + 1e-5));
  EXPECT_TRUE(all_close(save_invstd, want_invstd, 0, 3e-7));
  EXPECT_TRUE(all_close(running_mean, f.floats("running_mean_out"), 1e-12, 3e-7));
  EXPECT_TRUE(all_close(running_var, f.floats("running_var_out"), 1e-12, 3e-7));
}

// Hand-worked: one channel x = 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); eps 2.75
// makes invstd 1/2. gamma 2, beta 1, residual -1, 0, 0, 0 and ReLU: pre = x - 2.5 + 1 + r =
// -1.5, 0.5, 1.5, 2.5 -> y = 0, 0.5, 1.5, 2.5. Running stats (0, 1) move to (0.25, 0.9 + 1/6).
TEST(BatchNormTrain, HandWorkedResidualRelu) {
  std::vector<float> x = {1, 2, 3, 4}, r = {-1, 0, 0, 0}, y(4);
  const Shape4 s{1, 2, 2, 1};
  const float gamma = 2, beta = 1;
  float mean = 0, invstd = 0, rm = 0, rv = 1;
  std::vector<char> ws(batchnorm_workspace_bytes(s));
  batchnorm_train_fwd(kRef, make_view(x.data(), DType::F32, s), &gamma, &beta,
                      make_view(r.data(), DType::F32, s), true, make_view(y.data(), DType::F32, s),
                      &mean, &invstd, &rm, &rv, BatchNormTrainArgs{2.75f, 0.1f}, ws.data(),
                      ws.size());
  EXPECT_TRUE(all_equal(y, std::vector<float>{0, 0.5f, 1.5f, 2.5f}));
  EXPECT_EQ(mean, 2.5f);
  EXPECT_EQ(invstd, 0.5f);
  EXPECT_FLOAT_EQ(rm, 0.25f);
  EXPECT_FLOAT_EQ(rv, float(0.9 + 0.1 * 5.0 / 3.0));

  // Backward with dy = 1, 1, 1, 1: dz = 0, 1, 1, 1 (mask); xhat = -0.75, -0.25, 0.25, 0.75;
  // sum dz = 3, sum dz*xhat = 0.75; dx = 2 * 0.5 * (dz - 3/4 - xhat * 0.75/4).
  std::vector<float> dy = {1, 1, 1, 1}, dx(4), dres = {10, 10, 10, 10};
  float dgamma = 1, dbeta = 1;
  batchnorm_train_bwd(kRef, make_view(x.data(), DType::F32, s), make_view(y.data(), DType::F32, s),
                      true, make_view(dy.data(), DType::F32, s), &mean, &invstd, &gamma,
                      make_view(dx.data(), DType::F32, s), make_view(dres.data(), DType::F32, s),
                      true, &dgamma, &dbeta, ws.data(), ws.size());
  const double xhat[4] = {-0.75, -0.25, 0.25, 0.75}, dz[4] = {0, 1, 1, 1};
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(dx[i], float(dz[i] - 0.75 - xhat[i] * 0.1875)) << i;
    EXPECT_EQ(dres[i], float(10 + dz[i])) << i;
  }
  EXPECT_EQ(dgamma, 1.75f);
  EXPECT_EQ(dbeta, 4.0f);
}

// The view-level backward (slices, fp16 storage, in-place dx = dy, accumulate flags) against the
// dense double core on the values the views hold.
TEST(BatchNormTrain, BwdViewsMatchDenseCore) {
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Shape4 s{3, 3, 5, 5};
    const int C = s.c;
    const int64_t P = s.pixels();
    auto rnd = [&](uint32_t seed, float lo, float hi) {
      std::vector<float> v = random_floats(size_t(s.elements()), seed, lo, hi);
      return dtype == DType::F16 ? round_to_half(v) : v;
    };
    const std::vector<float> x = rnd(1, -2, 2), y = rnd(2, -1, 1), dy = rnd(3, -1, 1);
    const std::vector<float> mean = {0.1f, -0.2f, 0.3f, 0.0f, 0.5f};
    const std::vector<float> invstd = {1.1f, 0.9f, 1.3f, 0.7f, 1.0f};
    const std::vector<float> gamma = {0.5f, -1.0f, 1.5f, 2.0f, 1.0f};
    NhwcTestTensor xt(kRef, dtype, s, Placement{2, 9}), yt(kRef, dtype, s, Placement{1, 7});
    NhwcTestTensor dyt(kRef, dtype, s, Placement{3, 8}), drt(kRef, dtype, s, Placement{1, 6});
    xt.upload(x);
    yt.upload(y);
    dyt.upload(dy);
    drt.upload(rnd(4, -1, 1));
    const std::vector<float> dres_in = drt.download();
    std::vector<float> dgamma(size_t(C), 1.0f), dbeta(size_t(C), -1.0f);
    std::vector<char> ws(batchnorm_workspace_bytes(s));
    // dx written in place over dy.
    batchnorm_train_bwd(kRef, xt.view(), yt.view(), true, dyt.view(), mean.data(), invstd.data(),
                        gamma.data(), dyt.view(), drt.view(), true, dgamma.data(), dbeta.data(),
                        ws.data(), ws.size());
    std::vector<double> xd(x.begin(), x.end()), yd(y.begin(), y.end()), dyd(dy.begin(), dy.end());
    std::vector<double> md(mean.begin(), mean.end()), id(invstd.begin(), invstd.end());
    std::vector<double> gd(gamma.begin(), gamma.end());
    std::vector<double> dxd(xd.size()), dzd(xd.size()), sg(static_cast<size_t>(C)),
        sb(static_cast<size_t>(C));
    reference::batchnorm_train_bwd_dense(P, C, xd.data(), yd.data(), true, dyd.data(), md.data(),
                                         id.data(), gd.data(), dxd.data(), dzd.data(), sg.data(),
                                         sb.data());
    std::vector<float> want_dx(dxd.size()), want_dres(dxd.size()), want_g(static_cast<size_t>(C)),
        want_b(static_cast<size_t>(C));
    for (size_t i = 0; i < dxd.size(); ++i) {
      want_dx[i] = float(dxd[i]);
      want_dres[i] = float(double(dres_in[i]) + dzd[i]);
    }
    for (int c = 0; c < C; ++c) {
      want_g[c] = float(1.0 + sg[c]);
      want_b[c] = float(-1.0 + sb[c]);
    }
    if (dtype == DType::F16) {
      want_dx = round_to_half(want_dx);
      want_dres = round_to_half(want_dres);
    }
    EXPECT_TRUE(all_equal(dyt.download(), want_dx));
    EXPECT_TRUE(all_equal(drt.download(), want_dres));
    EXPECT_TRUE(dyt.outside_untouched());
    EXPECT_TRUE(drt.outside_untouched());
    EXPECT_TRUE(all_equal(dgamma, want_g));
    EXPECT_TRUE(all_equal(dbeta, want_b));
  }
}

TEST(BatchNormTrainArgs, BadArgumentsAreRejected) {
  const Shape4 s{2, 3, 3, 4};
  std::vector<float> xb(size_t(s.elements())), yb(xb.size()), stats(16);
  std::vector<char> ws(batchnorm_workspace_bytes(s));
  const TensorView x = make_view(xb.data(), DType::F32, s);
  const TensorView y = make_view(yb.data(), DType::F32, s);
  float* st = stats.data();
  auto fwd = [&](const TensorView& xv, const TensorView& yv, size_t ws_bytes) {
    batchnorm_train_fwd(kRef, xv, nullptr, nullptr, TensorView{}, true, yv, st, st + 4, st + 8,
                        st + 12, BatchNormTrainArgs{}, ws.data(), ws_bytes);
  };
  EXPECT_TRUE(throws_error_mentioning([&] { fwd(x, y, ws.size() - 4); }, "workspace"));
  EXPECT_TRUE(throws_error_mentioning([&] { fwd(x, x, ws.size()); }, "aliases x"));
  TensorView y3 = y;
  y3.shape.c = 3;
  EXPECT_TRUE(throws_error_mentioning([&] { fwd(x, y3, ws.size()); }, "batchnorm_train_fwd: y"));
  const TensorView one = make_view(xb.data(), DType::F32, Shape4{1, 1, 1, 4});
  EXPECT_TRUE(throws_error_mentioning(
      [&] { fwd(one, make_view(yb.data(), DType::F32, one.shape), ws.size()); },
      "more than one value"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        batchnorm_train_bwd(kRef, x, y, true, y, st, st + 4, nullptr, x, TensorView{}, false,
                            nullptr, nullptr, ws.data(), ws.size());
      },
      "dx"));
}

}  // namespace
}  // namespace farsee::test
