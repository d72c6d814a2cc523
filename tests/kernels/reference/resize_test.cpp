// Reference bilinear resize, channel argmax and their composition resize_argmax: hand-worked
// ramps, ties and NaN, PyTorch fixtures, slices, fp16, bad arguments.
#include "kernels/reference/resize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "kernels/resize_argmax.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/gradient_check.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

std::vector<float> resize(bool align_corners, Shape4 xs, const std::vector<float>& x, int out_h,
                          int out_w, DType dtype = DType::F32, Placement xp = {},
                          Placement yp = {}) {
  NhwcTestTensor xt(kRef, dtype, xs, xp);
  xt.upload(x);
  NhwcTestTensor yt(kRef, dtype, Shape4{xs.n, out_h, out_w, xs.c}, yp);
  reference::resize_bilinear_fwd(align_corners, xt.view(), yt.view());
  EXPECT_TRUE(yt.outside_untouched());
  return yt.download();
}

// The ramp v(y, x) = x + 2y on 2x2. Bilinear interpolation reproduces a linear function, so the
// output is fx + 2 fy at the source coordinates:
//   align_corners=false, 2 -> 4: src = (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75,
//     1.25 (i0 = 1 = last: weight on v[1] only) -> f = 0, 0.25, 0.75, 1
//   align_corners=true, 2 -> 3: src = d * (1 / 2) -> f = 0, 0.5, 1
TEST(ResizeBilinear, HandWorkedRampAlignCornersFalse) {
  const std::vector<float> f = {0, 0.25f, 0.75f, 1};
  std::vector<float> want;
  for (float fy : f)
    for (float fx : f) want.push_back(fx + 2 * fy);
  EXPECT_TRUE(all_equal(resize(false, Shape4{1, 2, 2, 1}, {0, 1, 2, 3}, 4, 4), want));
}

TEST(ResizeBilinear, HandWorkedRampAlignCornersTrue) {
  const std::vector<float> f = {0, 0.5f, 1};
  std::vector<float> want;
  for (float fy : f)
    for (float fx : f) want.push_back(fx + 2 * fy);
  EXPECT_TRUE(all_equal(resize(true, Shape4{1, 2, 2, 1}, {0, 1, 2, 3}, 3, 3), want));
}

// Downsampling 1x4 -> 1x2 with align_corners=false: scale 2, src = 2 (d + 0.5) - 0.5 = 0.5, 2.5:
// the means of neighbours (0, 1) and (2, 3). The height (1 -> 1) is an identity axis.
// With align_corners=true: scale 3, src = 0, 3: the end samples.
TEST(ResizeBilinear, HandWorkedDownsample) {
  EXPECT_TRUE(all_equal(resize(false, Shape4{1, 1, 4, 1}, {0, 10, 20, 30}, 1, 2),
                        std::vector<float>{5, 25}));
  EXPECT_TRUE(all_equal(resize(true, Shape4{1, 1, 4, 1}, {0, 10, 20, 30}, 1, 2),
                        std::vector<float>{0, 30}));
}

class ResizeFixture : public ::testing::TestWithParam<const char*> {};

// The fixture is PyTorch's own fp32 op; our indices and weights are computed with its fp32
// expressions (identical), the blend in double and rounded once, PyTorch's in fp32 (two roundings
// per lerp, maybe fused): they differ by a few ulp of the inputs' magnitude, however small the
// output (|x| < 5 here, 1 ulp of 4 = 4.8e-7). atol 2e-6 (measured max: 9.5e-7, at an output of
// 0.22 interpolated from inputs of ~3), rtol 0.
TEST_P(ResizeFixture, MatchesPyTorch) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  ASSERT_EQ(p.size(), 3u);
  Shape4 xs, ys;
  const std::vector<float> x = f.nhwc("x", &xs), want = f.nhwc("y", &ys);
  ASSERT_EQ(ys, (Shape4{xs.n, p[1], p[2], xs.c}));
  EXPECT_TRUE(all_close(resize(p[0] != 0, xs, x, p[1], p[2]), want, 2e-6));
  EXPECT_TRUE(all_close(resize(p[0] != 0, xs, x, p[1], p[2], DType::F32, Placement{2, xs.c + 3},
                               Placement{1, ys.c + 1}),
                        want, 2e-6));
}

// fp16 storage: the fp32 computation on fp16-rounded inputs, rounded to fp16: exact.
TEST_P(ResizeFixture, Fp16StorageIsRoundedFp32) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  Shape4 xs;
  const std::vector<float> x16 = round_to_half(f.nhwc("x", &xs));
  const std::vector<float> want = round_to_half(resize(p[0] != 0, xs, x16, p[1], p[2]));
  EXPECT_TRUE(all_equal(resize(p[0] != 0, xs, x16, p[1], p[2], DType::F16, Placement{1, xs.c + 1},
                               Placement{0, xs.c + 2}),
                        want));
}

INSTANTIATE_TEST_SUITE_P(PyTorch, ResizeFixture,
                         ::testing::Values("resize_up_false", "resize_down_false", "resize_up_true",
                                           "resize_down_true", "resize_mixed_false",
                                           "resize_mixed_true", "resize_x4_false",
                                           "resize_same_true"),
                         [](const auto& info) { return std::string(info.param); });

// One-hot inputs (image i is 1 at pixel i): each output is a product of two interpolation
// weights, l_y * l_x, which our double blend computes with one rounding, like PyTorch's float
// blend (every other term is zero). Exact: PyTorch's sampling indices and weights bit for bit.
class ResizeTapsFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(ResizeTapsFixture, WeightsMatchPyTorchExactly) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  ASSERT_EQ(p.size(), 3u);
  Shape4 xs, ys;
  const std::vector<float> x = f.nhwc("x", &xs), want = f.nhwc("y", &ys);
  EXPECT_TRUE(all_equal(resize(p[0] != 0, xs, x, p[1], p[2]), want));
}

INSTANTIATE_TEST_SUITE_P(PyTorch, ResizeTapsFixture,
                         ::testing::Values("resize_taps_false", "resize_taps_true",
                                           "resize_taps_odd_false", "resize_taps_odd_true"),
                         [](const auto& info) { return std::string(info.param); });

// ---- argmax ----

std::vector<uint8_t> argmax(Shape4 s, const std::vector<float>& x, DType dtype = DType::F32,
                            Placement xp = {}) {
  NhwcTestTensor xt(kRef, dtype, s, xp);
  xt.upload(x);
  std::vector<uint8_t> labels(size_t(s.pixels()), 0xEE);
  reference::argmax_channels(xt.view(), labels.data());
  return labels;
}

// Pixels: a clear maximum, a tie (lowest index wins), all equal, a NaN (counts as the maximum,
// the first NaN wins), -inf everywhere but one.
TEST(ArgmaxChannels, HandWorkedTiesAndNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = INFINITY;
  // clang-format off
  const std::vector<float> x = {
      0, 3, 1, 2,
      5, 1, 5, 0,
      7, 7, 7, 7,
      1, nan, 9, nan,
      -inf, -inf, -inf, -1};
  // clang-format on
  EXPECT_TRUE(all_equal(argmax(Shape4{1, 1, 5, 4}, x), std::vector<uint8_t>{1, 0, 0, 1, 3}));
}

TEST(ArgmaxChannels, MatchesPyTorchTies) {
  const OpFixture f("argmax_ties");
  Shape4 s;
  const std::vector<float> x = f.nhwc("x", &s);
  const NpyArray labels = f.array("labels");
  ASSERT_EQ(labels.shape, (std::vector<int64_t>{s.n, s.h, s.w}));
  EXPECT_TRUE(all_equal(argmax(s, x), labels.bytes()));
  EXPECT_TRUE(all_equal(argmax(s, x, DType::F16, Placement{3, s.c + 5}), labels.bytes()));
}

// Two classes on a 1x2 image: class 0 = (1, 0), class 1 = (0, 1).
//   align_corners=false to 1x4: class 0 = (1, .75, .25, 0), class 1 = (0, .25, .75, 1) -> 0 0 1 1
//   align_corners=true to 1x3: class 0 = (1, .5, 0), class 1 = (0, .5, 1): the middle is a tie,
//   which goes to the lower class -> 0 0 1
TEST(ResizeArgmax, HandWorked) {
  std::vector<float> logits = {1, 0, 0, 1};
  const TensorView v = make_view(logits.data(), DType::F32, Shape4{1, 1, 2, 2});
  std::vector<uint8_t> labels(4, 0xEE);
  resize_argmax_fwd(kRef, false, v, 1, 4, labels.data());
  EXPECT_TRUE(all_equal(labels, std::vector<uint8_t>{0, 0, 1, 1}));
  labels.assign(3, 0xEE);
  resize_argmax_fwd(kRef, true, v, 1, 3, labels.data());
  EXPECT_TRUE(all_equal(labels, std::vector<uint8_t>{0, 0, 1}));
}

// resize_argmax (public entry, reference executor) on the fixtures, whose logits were drawn so
// that no output pixel's top two classes are within 1e-3: labels must match exactly.
TEST(ResizeArgmax, MatchesPyTorch) {
  for (const char* name : {"resize_argmax_false", "resize_argmax_true"}) {
    SCOPED_TRACE(name);
    const OpFixture f(name);
    const std::vector<int32_t> p = f.params();
    ASSERT_EQ(p.size(), 3u);
    Shape4 xs;
    const std::vector<float> x = f.nhwc("x", &xs);
    const NpyArray labels = f.array("labels");
    ASSERT_EQ(labels.shape, (std::vector<int64_t>{xs.n, p[1], p[2]}));
    auto run = [&](DType dtype, const std::vector<float>& logits) {
      NhwcTestTensor xt(kRef, dtype, xs, Placement{1, xs.c + 2});
      xt.upload(logits);
      std::vector<uint8_t> got(labels.data.size(), 0xEE);
      resize_argmax_fwd(kRef, p[0] != 0, xt.view(), p[1], p[2], got.data());
      return got;
    };
    EXPECT_TRUE(all_equal(run(DType::F32, x), labels.bytes()));
    // fp16 logits are interpolated in fp32 like fp32 logits holding the same (rounded) values.
    const std::vector<float> x16 = round_to_half(x);
    EXPECT_TRUE(all_equal(run(DType::F16, x16), run(DType::F32, x16)));
  }
}

TEST(ResizeArgs, BadArgumentsNameTheTensor) {
  std::vector<float> xb(2 * 3 * 3 * 4), yb(2 * 5 * 5 * 4);
  const TensorView x = make_view(xb.data(), DType::F32, Shape4{2, 3, 3, 4});
  TensorView y = make_view(yb.data(), DType::F32, Shape4{2, 5, 5, 4});
  EXPECT_NO_THROW(reference::resize_bilinear_fwd(false, x, y));
  y.shape.n = 1;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::resize_bilinear_fwd(false, x, y); },
                                      "resize_bilinear_fwd: y"));
  y.shape.n = 2;
  y.shape.c = 3;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::resize_bilinear_fwd(true, x, y); },
                                      "resize_bilinear_fwd: y"));
  std::vector<float> wide(300);
  std::vector<uint8_t> labels(1);
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        reference::argmax_channels(make_view(wide.data(), DType::F32, Shape4{1, 1, 1, 300}),
                                   labels.data());
      },
      "argmax_channels: x has 300 channels"));
  EXPECT_TRUE(throws_error_mentioning([&] { reference::argmax_channels(x, nullptr); }, "labels"));
}

std::vector<float> resize_bwd(bool align_corners, Shape4 xs, int out_h, int out_w,
                              const std::vector<float>& dy, DType dtype = DType::F32,
                              Placement dyp = {}, Placement dxp = {}) {
  NhwcTestTensor dyt(kRef, dtype, Shape4{xs.n, out_h, out_w, xs.c}, dyp);
  dyt.upload(dy);
  NhwcTestTensor dxt(kRef, dtype, xs, dxp);
  reference::resize_bilinear_bwd(align_corners, dyt.view(), dxt.view());
  EXPECT_TRUE(dxt.outside_untouched());
  return dxt.download();
}

// The transpose of HandWorkedRampAlignCornersFalse's 1-D axis (2 -> 4): src = 0 (clamped),
// 0.25, 0.75, 1.25 -> clamp to i0 = 1: weights on (v0, v1) = (1, 0), (0.75, 0.25), (0.25, 0.75),
// (0, 1). dy = (1, 2, 4, 8): dx0 = 1 + 1.5 + 1 = 3.5, dx1 = 0.5 + 3 + 8 = 11.5.
// align_corners=true, 2 -> 3: weights (1, 0), (0.5, 0.5), (0, 1): dy = (1, 2, 4) -> (2, 5).
TEST(ResizeBilinearBackward, HandWorked1D) {
  EXPECT_TRUE(all_equal(resize_bwd(false, Shape4{1, 1, 2, 1}, 1, 4, {1, 2, 4, 8}),
                        std::vector<float>{3.5f, 11.5f}));
  EXPECT_TRUE(
      all_equal(resize_bwd(true, Shape4{1, 2, 1, 1}, 3, 1, {1, 2, 4}), std::vector<float>{2, 5}));
}

// Central differences of L = sum dy * resize(x) in double: L is linear in x (no truncation
// error); the forward output is rounded to fp32 (6e-8 relative, |y| <= 1, a few hundred outputs):
// |error of L| <= ~1e-5, over 2h = 0.1: atol 1e-4 bounds it (measured ~1e-6).
TEST(ResizeBilinearBackward, FiniteDifferences) {
  struct Case {
    Shape4 x;
    int out_h, out_w;
  };
  for (bool ac : {false, true}) {
    for (const Case& k :
         {Case{{3, 5, 4, 2}, 20, 16}, Case{{1, 3, 5, 3}, 24, 40}, Case{{1, 7, 6, 2}, 7, 6},
          Case{{1, 9, 11, 1}, 4, 5}, Case{{1, 1, 4, 2}, 3, 1}}) {
      SCOPED_TRACE(to_string(k.x) + " -> " + std::to_string(k.out_h) + "x" +
                   std::to_string(k.out_w) + " align_corners " + std::to_string(ac));
      const std::vector<float> x = random_floats(size_t(k.x.elements()), 11);
      const std::vector<float> dy = random_floats(size_t(k.x.n) * k.out_h * k.out_w * k.x.c, 12);
      auto loss = [&](const std::vector<float>& xv) {
        const std::vector<float> y = resize(ac, k.x, xv, k.out_h, k.out_w);
        double l = 0.0;
        for (size_t i = 0; i < y.size(); ++i) l += double(dy[i]) * y[i];
        return l;
      };
      GradientCheck opt;
      opt.h = 0.05;
      opt.atol = 1e-4;
      opt.rtol = 1e-5;
      double err = 0;
      opt.max_error = &err;
      EXPECT_TRUE(check_gradient(loss, x, resize_bwd(ac, k.x, k.out_h, k.out_w, dy), opt));
      std::cout << "[ fd ] resize " << to_string(k.x) << " -> " << k.out_h << "x" << k.out_w
                << " ac " << ac << ": max |fd - grad| " << err << "\n";
    }
  }
}

// Slices and fp16 storage (dy of small integers and x4 weights k/8: exact in fp16 and fp32).
TEST(ResizeBilinearBackward, SlicesAndFp16) {
  const Shape4 xs{3, 4, 5, 3};
  const std::vector<float> dy = small_ints(size_t(3) * 16 * 20 * 3, 5, -3, 3);
  for (bool ac : {false, true}) {
    const std::vector<float> want = resize_bwd(ac, xs, 16, 20, dy);
    EXPECT_TRUE(all_equal(
        resize_bwd(ac, xs, 16, 20, dy, DType::F32, Placement{1, 5}, Placement{2, 6}), want));
    if (!ac) {  // align_corners=false x4: weights are multiples of 1/8
      EXPECT_TRUE(all_equal(
          resize_bwd(ac, xs, 16, 20, dy, DType::F16, Placement{1, 5}, Placement{2, 6}), want));
    }
  }
}

TEST(ResizeBilinearBackwardArgs, BadArguments) {
  std::vector<float> dyb(4 * 4 * 2), dxb(2 * 2 * 2);
  const TensorView dx = make_view(dxb.data(), DType::F32, Shape4{1, 2, 2, 2});
  TensorView dy = make_view(dyb.data(), DType::F32, Shape4{1, 4, 4, 2});
  EXPECT_NO_THROW(reference::resize_bilinear_bwd(false, dy, dx));
  dy.shape.c = 1;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::resize_bilinear_bwd(false, dy, dx); },
                                      "resize_bilinear_bwd: dy"));
}

}  // namespace
}  // namespace farsee::test
