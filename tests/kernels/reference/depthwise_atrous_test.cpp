// Reference depthwise atrous conv (through the public entry with the reference executor):
// hand-worked BN + ReLU epilogue, the depthwise conv fixtures of PyTorch, slices, fp16, bad
// arguments.
#include "kernels/depthwise_atrous.h"

#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/gradient_check.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

std::vector<float> depthwise(const DepthwiseParams& p, Shape4 xs, const std::vector<float>& x,
                             const std::vector<float>& w, const float* scale, const float* bias,
                             DType dtype = DType::F32, Placement xp = {}, Placement yp = {}) {
  NhwcTestTensor xt(kRef, dtype, xs, xp);
  xt.upload(x);
  NhwcTestTensor yt(kRef, dtype, depthwise_atrous_output_shape(p, xs), yp);
  depthwise_atrous_fwd(kRef, p, xt.view(), w.data(), scale, bias, yt.view());
  EXPECT_TRUE(yt.outside_untouched());
  return yt.download();
}

// One channel, x = 1..9 (3x3), all-ones kernel, dilation 1: the 3x3 neighbourhood sums
// 12 21 16 / 27 45 33 / 24 39 28; then 2 * sum - 30 and ReLU.
TEST(DepthwiseAtrous, HandWorkedScaleBiasRelu) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> w(9, 1.0f);
  const float scale = 2, bias = -30;
  EXPECT_TRUE(
      all_equal(depthwise(DepthwiseParams{1, 1, true}, Shape4{1, 3, 3, 1}, x, w, &scale, &bias),
                std::vector<float>{0, 12, 2, 24, 60, 36, 18, 48, 26}));
  EXPECT_TRUE(
      all_equal(depthwise(DepthwiseParams{1, 1, false}, Shape4{1, 3, 3, 1}, x, w, &scale, &bias),
                std::vector<float>{-6, 12, 2, 24, 60, 36, 18, 48, 26}));
}

// Two channels, dilation 3 on 3x3: only the centre tap is inside the image (the others are 3
// pixels away), so y = w_centre * x; channel 1 has centre weight -1 and scale null, bias null.
TEST(DepthwiseAtrous, HandWorkedDilationReachesOnlyPadding) {
  std::vector<float> x;
  for (int i = 0; i < 9; ++i) {
    x.push_back(float(i + 1));
    x.push_back(float(-(i + 1)));
  }
  std::vector<float> w(18, 5.0f);  // non-centre taps only ever see padding
  w[4] = 3;
  w[9 + 4] = -1;
  std::vector<float> want;
  for (int i = 0; i < 9; ++i) {
    want.push_back(3.0f * float(i + 1));
    want.push_back(float(i + 1));
  }
  EXPECT_TRUE(all_equal(
      depthwise(DepthwiseParams{1, 3, false}, Shape4{1, 3, 3, 2}, x, w, nullptr, nullptr), want));
}

// The PyTorch depthwise conv fixtures (3x3, groups = C, padding = dilation): with scale 1 and the
// conv's bias, ours is the fixture's y; with a scale s and bias b and ReLU: relu(s*(y - bias) + b)
// from the fixture's y, in double. Tolerances: the fixture rounds conv + bias once; we round the
// conv sum to fp32 first (as the kernels do: fp32 accumulator, then the epilogue), half an ulp of
// |conv| < 8, i.e. 2.4e-7 absolute, which cancellation against the bias does not shrink. Plain:
// atol 5e-7 + 1 ulp relative (measured max 2.4e-7). With |s| < 2 and the final rounding:
// atol 1e-6 + rtol 4e-7 (measured max 2.4e-7).
class DepthwiseFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(DepthwiseFixture, MatchesPyTorch) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  ASSERT_EQ(p.size(), 8u);
  // [stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, has_bias]
  ASSERT_TRUE(p[0] == p[1] && p[2] == p[4] && p[3] == p[5] && p[2] == p[3]) << "not square/atrous";
  const DepthwiseParams params{p[0], p[4], false};
  Shape4 xs, ws, ys;
  const std::vector<float> x = f.nhwc("x", &xs), y = f.nhwc("y", &ys), w = f.nhwc("w", &ws);
  ASSERT_EQ(p[6], xs.c);
  ASSERT_EQ(ws, (Shape4{xs.c, 3, 3, 1}));  // OIHW [C][1][3][3] = [C][3][3]
  ASSERT_EQ(depthwise_atrous_output_shape(params, xs), ys);
  std::vector<float> conv_bias(size_t(xs.c), 0.0f);
  if (p[7]) conv_bias = f.floats("bias");
  const std::vector<float> ones(size_t(xs.c), 1.0f);

  EXPECT_TRUE(
      all_close(depthwise(params, xs, x, w, ones.data(), conv_bias.data()), y, 5e-7, 1.2e-7));

  const std::vector<float> scale = random_floats(size_t(xs.c), 5, -2, 2);
  const std::vector<float> bias = random_floats(size_t(xs.c), 6, -3, 3);
  std::vector<float> want(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    const int c = int(i % size_t(xs.c));
    const double v = double(scale[c]) * (double(y[i]) - conv_bias[c]) + bias[c];
    want[i] = float(v < 0 ? 0 : v);
  }
  const DepthwiseParams with_relu{params.stride, params.dilation, true};
  EXPECT_TRUE(all_close(depthwise(with_relu, xs, x, w, scale.data(), bias.data(), DType::F32,
                                  Placement{1, xs.c + 2}, Placement{3, ys.c + 4}),
                        want, 1e-6, 4e-7));
}

// fp16 storage: the fp32 computation on fp16-rounded inputs, rounded to fp16: exact.
TEST_P(DepthwiseFixture, Fp16StorageIsRoundedFp32) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  const DepthwiseParams params{p[0], p[4], true};
  Shape4 xs, ws;
  const std::vector<float> x16 = round_to_half(f.nhwc("x", &xs)), w = f.nhwc("w", &ws);
  const std::vector<float> scale = random_floats(size_t(xs.c), 7, -2, 2);
  const std::vector<float> bias = random_floats(size_t(xs.c), 8, -1, 1);
  const std::vector<float> want =
      round_to_half(depthwise(params, xs, x16, w, scale.data(), bias.data()));
  EXPECT_TRUE(all_equal(depthwise(params, xs, x16, w, scale.data(), bias.data(), DType::F16,
                                  Placement{2, xs.c + 2}, Placement{0, xs.c + 1}),
                        want));
}

INSTANTIATE_TEST_SUITE_P(PyTorch, DepthwiseFixture,
                         ::testing::Values("conv_depthwise_d2_b3", "conv_depthwise_s2"),
                         [](const auto& info) { return std::string(info.param); });

TEST(DepthwiseAtrousArgs, BadArgumentsNameTheTensor) {
  std::vector<float> xb(4 * 4 * 3), yb(4 * 4 * 3), w(27);
  const TensorView x = make_view(xb.data(), DType::F32, Shape4{1, 4, 4, 3});
  TensorView y = make_view(yb.data(), DType::F32, Shape4{1, 4, 4, 3});
  EXPECT_NO_THROW(depthwise_atrous_fwd(kRef, DepthwiseParams{}, x, w.data(), nullptr, nullptr, y));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { depthwise_atrous_fwd(kRef, DepthwiseParams{}, x, nullptr, nullptr, nullptr, y); },
      "weight"));
  y.shape.h = 2;
  EXPECT_TRUE(throws_error_mentioning(
      [&] { depthwise_atrous_fwd(kRef, DepthwiseParams{}, x, w.data(), nullptr, nullptr, y); },
      "depthwise_atrous_fwd: y"));
}

std::vector<float> bwd_data(const DepthwiseParams& p, Shape4 xs, const std::vector<float>& dy,
                            const std::vector<float>& w, DType dtype = DType::F32,
                            Placement dyp = {}, Placement dxp = {},
                            const std::vector<float>* dx_initial = nullptr) {
  NhwcTestTensor dyt(kRef, dtype, depthwise_atrous_output_shape(p, xs), dyp);
  dyt.upload(dy);
  NhwcTestTensor dxt(kRef, dtype, xs, dxp);
  if (dx_initial) dxt.upload(*dx_initial);
  depthwise_atrous_bwd_data(kRef, p, dyt.view(), w.data(), dxt.view(), dx_initial != nullptr);
  EXPECT_TRUE(dxt.outside_untouched());
  return dxt.download();
}

std::vector<float> bwd_weight(const DepthwiseParams& p, Shape4 xs, const std::vector<float>& x,
                              const std::vector<float>& dy, std::vector<float> dw,
                              DType dtype = DType::F32, Placement xp = {}, Placement dyp = {}) {
  NhwcTestTensor xt(kRef, dtype, xs, xp);
  xt.upload(x);
  NhwcTestTensor dyt(kRef, dtype, depthwise_atrous_output_shape(p, xs), dyp);
  dyt.upload(dy);
  std::vector<float> ws(depthwise_atrous_bwd_weight_workspace_bytes(p, xs) / sizeof(float));
  depthwise_atrous_bwd_weight(kRef, p, xt.view(), dyt.view(), dw.data(), ws.data(),
                              ws.size() * sizeof(float));
  return dw;
}

// One channel, 3x3 image, dilation 1, stride 1, dy = 1 everywhere: dx[i] = the sum of the
// weights whose taps reach pixel i from some output. With w = 1..9 (row-major), the corner
// (0,0) is read by outputs (0,0),(0,1),(1,0),(1,1) through taps (1,1),(1,0),(0,1),(0,0):
// 5 + 4 + 2 + 1 = 12; the centre by all 9 taps: 45. dw[r][s] = sum of the x the tap reads: with
// x = 1 everywhere, the number of outputs whose tap (r, s) is inside the image (4 corners,
// 6 edges, 9 centre).
TEST(DepthwiseAtrousBackward, HandWorked) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> dx =
      bwd_data(DepthwiseParams{1, 1, false}, Shape4{1, 3, 3, 1}, std::vector<float>(9, 1.0f), w);
  EXPECT_EQ(dx[0], 12.0f);
  EXPECT_EQ(dx[4], 45.0f);
  const std::vector<float> dw =
      bwd_weight(DepthwiseParams{1, 1, false}, Shape4{1, 3, 3, 1}, std::vector<float>(9, 1.0f),
                 std::vector<float>(9, 1.0f), std::vector<float>(9, 0.5f));
  EXPECT_TRUE(all_equal(dw, std::vector<float>{4.5f, 6.5f, 4.5f, 6.5f, 9.5f, 6.5f, 4.5f, 6.5f,
                                               4.5f}));  // += onto 0.5
}

// Central differences of L = sum dy * conv(x; w) in double, with respect to x and to w. L is
// bilinear, so the quotient has no truncation error; the forward output is rounded to fp32
// (relative 6e-8 per element, |y| <= ~3, up to ~450 elements): |error of L| <~ 1e-4 worst case,
// divided by 2h = 0.1 -> atol 2e-4 would be the bound; measured errors are ~1e-6.
TEST(DepthwiseAtrousBackward, FiniteDifferences) {
  struct Case {
    Shape4 x;
    DepthwiseParams p;
  };
  for (const Case& k : {Case{{3, 7, 9, 3}, {1, 1, false}}, Case{{1, 9, 8, 2}, {2, 1, false}},
                        Case{{1, 13, 11, 2}, {1, 6, false}}, Case{{1, 10, 9, 2}, {2, 2, false}},
                        Case{{1, 15, 14, 1}, {1, 12, false}}}) {
    SCOPED_TRACE(to_string(k.x) + " stride " + std::to_string(k.p.stride) + " dilation " +
                 std::to_string(k.p.dilation));
    const Shape4 ys = depthwise_atrous_output_shape(k.p, k.x);
    const std::vector<float> x = random_floats(size_t(k.x.elements()), 7);
    const std::vector<float> w = random_floats(size_t(k.x.c) * 9, 8);
    const std::vector<float> dy = random_floats(size_t(ys.elements()), 9);
    auto loss = [&](const std::vector<float>& xv, const std::vector<float>& wv) {
      const std::vector<float> y = depthwise(k.p, k.x, xv, wv, nullptr, nullptr);
      double l = 0.0;
      for (size_t i = 0; i < y.size(); ++i) l += double(dy[i]) * y[i];
      return l;
    };
    GradientCheck opt;
    opt.h = 0.05;
    opt.atol = 2e-5;
    opt.rtol = 1e-5;
    double err_x = 0, err_w = 0;
    opt.max_error = &err_x;
    EXPECT_TRUE(check_gradient([&](const std::vector<float>& xv) { return loss(xv, w); }, x,
                               bwd_data(k.p, k.x, dy, w), opt));
    opt.max_error = &err_w;
    EXPECT_TRUE(check_gradient([&](const std::vector<float>& wv) { return loss(x, wv); }, w,
                               bwd_weight(k.p, k.x, x, dy, std::vector<float>(w.size(), 0.0f)),
                               opt));
    std::cout << "[ fd ] depthwise " << to_string(k.x) << " s" << k.p.stride << " d" << k.p.dilation
              << ": max |fd - grad| dx " << err_x << ", dw " << err_w << "\n";
  }
}

// accumulate adds onto dx; slices and fp16 give the same result (small integers: exact).
TEST(DepthwiseAtrousBackward, AccumulateSlicesFp16) {
  const Shape4 xs{3, 7, 6, 5};
  const DepthwiseParams p{2, 2, false};
  const Shape4 ys = depthwise_atrous_output_shape(p, xs);
  const std::vector<float> dy = small_ints(size_t(ys.elements()), 1, -3, 3);
  const std::vector<float> w = small_ints(size_t(xs.c) * 9, 2, -2, 2);
  const std::vector<float> x = small_ints(size_t(xs.elements()), 3, -3, 3);
  const std::vector<float> base = small_ints(size_t(xs.elements()), 4, -3, 3);
  const std::vector<float> plain = bwd_data(p, xs, dy, w);
  std::vector<float> want = plain;
  for (size_t i = 0; i < want.size(); ++i) want[i] += base[i];
  EXPECT_TRUE(all_equal(bwd_data(p, xs, dy, w, DType::F32, Placement{}, Placement{}, &base), want));
  EXPECT_TRUE(
      all_equal(bwd_data(p, xs, dy, w, DType::F16, Placement{1, 7}, Placement{2, 9}, &base), want));
  const std::vector<float> dw = bwd_weight(p, xs, x, dy, std::vector<float>(45, 0.0f));
  EXPECT_TRUE(all_equal(bwd_weight(p, xs, x, dy, std::vector<float>(45, 0.0f), DType::F16,
                                   Placement{3, 8}, Placement{1, 6}),
                        dw));
}

TEST(DepthwiseAtrousBackwardArgs, BadArguments) {
  std::vector<float> dyb(3 * 3 * 2), dxb(5 * 5 * 2), w(18), ws(1024 * 18);
  const TensorView dx = make_view(dxb.data(), DType::F32, Shape4{1, 5, 5, 2});
  TensorView dy = make_view(dyb.data(), DType::F32, Shape4{1, 3, 3, 2});
  EXPECT_NO_THROW(
      depthwise_atrous_bwd_data(kRef, DepthwiseParams{2, 1, false}, dy, w.data(), dx, false));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        depthwise_atrous_bwd_data(kRef, DepthwiseParams{1, 1, false}, dy, w.data(), dx, false);
      },
      "depthwise_atrous_bwd_data: dy"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        depthwise_atrous_bwd_weight(kRef, DepthwiseParams{2, 1, false}, dx, dy, w.data(), ws.data(),
                                    4);
      },
      "workspace"));
}

}  // namespace
}  // namespace farsee::test
