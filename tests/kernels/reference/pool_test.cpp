// Reference max pool (through the public entry with the reference executor): hand-worked maxima,
// -inf padding, NaN propagation, PyTorch fixtures (exact), slices, fp16, bad arguments.
#include "kernels/pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
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

std::vector<float> pool(const MaxPoolParams& p, Shape4 xs, const std::vector<float>& x,
                        DType dtype = DType::F32, Placement xp = {}, Placement yp = {}) {
  NhwcTestTensor xt(kRef, dtype, xs, xp);
  xt.upload(x);
  NhwcTestTensor yt(kRef, dtype, max_pool_output_shape(p, xs), yp);
  max_pool_fwd(kRef, p, xt.view(), yt.view());
  EXPECT_TRUE(yt.outside_untouched());
  return yt.download();
}

// clang-format off
const std::vector<float> kGrid = {
    1,  5, 2,  0,
    3,  4, 9,  1,
    7,  0, 6,  8,
    2, 11, 3, 10};
// clang-format on

// 3x3 / stride 2 / pad 1 on 4x4 -> 2x2. Windows (rows x cols, -1 = padding):
// (0,0): rows -1..1, cols -1..1 -> {1,5,3,4} = 5;    (0,1): rows -1..1, cols 1..3 -> 9
// (1,0): rows 1..3, cols -1..1 -> {3,4,7,0,2,11} = 11; (1,1): rows 1..3, cols 1..3 -> 11
TEST(MaxPool, HandWorked3x3Stride2Pad1) {
  EXPECT_TRUE(all_equal(pool(MaxPoolParams{3, 2, 1}, Shape4{1, 4, 4, 1}, kGrid),
                        std::vector<float>{5, 9, 11, 11}));
}

TEST(MaxPool, HandWorked2x2Stride2) {
  EXPECT_TRUE(all_equal(pool(MaxPoolParams{2, 2, 0}, Shape4{1, 4, 4, 1}, kGrid),
                        std::vector<float>{5, 9, 11, 10}));
}

// All negative: the padding must not win (it is -inf, not 0). x = -(grid) - 1, so each window's
// max is -(its min) - 1: (0,0) {1,5,3,4} -> -2, (0,1) {5,2,0,4,9,1} -> -1, (1,0) -> -1, (1,1) ->
// -1.
TEST(MaxPool, PaddingIsMinusInfinity) {
  std::vector<float> neg;
  for (float v : kGrid) neg.push_back(-v - 1);
  EXPECT_TRUE(all_equal(pool(MaxPoolParams{3, 2, 1}, Shape4{1, 4, 4, 1}, neg),
                        std::vector<float>{-2, -1, -1, -1}));
}

// PyTorch propagates NaN: a window containing one has a NaN maximum.
TEST(MaxPool, NaNPropagates) {
  std::vector<float> x = kGrid;
  x[0] = std::numeric_limits<float>::quiet_NaN();  // only in window (0,0)
  const std::vector<float> y = pool(MaxPoolParams{2, 2, 0}, Shape4{1, 4, 4, 1}, x);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 9.0f);
  EXPECT_EQ(y[2], 11.0f);
  EXPECT_EQ(y[3], 10.0f);
}

class MaxPoolFixture : public ::testing::TestWithParam<const char*> {};

// A max is one of its inputs: exact in fp32, and in fp16 (rounding is monotone, so the max of
// the rounded inputs is the rounded max).
TEST_P(MaxPoolFixture, MatchesPyTorchExactly) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  ASSERT_EQ(p.size(), 3u);
  const MaxPoolParams params{p[0], p[1], p[2]};
  Shape4 xs, ys;
  const std::vector<float> x = f.nhwc("x", &xs), want = f.nhwc("y", &ys);
  ASSERT_EQ(max_pool_output_shape(params, xs), ys);
  EXPECT_TRUE(all_equal(pool(params, xs, x), want));
  EXPECT_TRUE(
      all_equal(pool(params, xs, x, DType::F32, Placement{2, xs.c + 3}, Placement{1, 9}), want));
  EXPECT_TRUE(all_equal(pool(params, xs, round_to_half(x), DType::F16, Placement{1, xs.c + 1},
                             Placement{2, ys.c + 2}),
                        round_to_half(want)));
}

INSTANTIATE_TEST_SUITE_P(PyTorch, MaxPoolFixture,
                         ::testing::Values("pool_3x3_s2_p1_odd", "pool_3x3_s2_p1_b3",
                                           "pool_2x2_s2_p0", "pool_3x3_s1_p1"),
                         [](const auto& info) { return std::string(info.param); });

std::vector<float> pool_bwd(const MaxPoolParams& p, Shape4 xs, const std::vector<float>& x,
                            const std::vector<float>& dy, DType dtype = DType::F32,
                            Placement xp = {}, Placement dyp = {}, Placement dxp = {}) {
  NhwcTestTensor xt(kRef, dtype, xs, xp);
  xt.upload(x);
  NhwcTestTensor dyt(kRef, dtype, max_pool_output_shape(p, xs), dyp);
  dyt.upload(dy);
  NhwcTestTensor dxt(kRef, dtype, xs, dxp);
  max_pool_bwd(kRef, p, xt.view(), dyt.view(), dxt.view());
  EXPECT_TRUE(dxt.outside_untouched());
  return dxt.download();
}

// kGrid, 3x3 / stride 2 / pad 1, dy = (1, 2, 3, 4) for windows (0,0), (0,1), (1,0), (1,1):
// maxima at 5 (index 1), 9 (index 6), 11 (index 13) twice -> dx[1] = 1, dx[6] = 2, dx[13] = 7.
TEST(MaxPoolBackward, HandWorked3x3Stride2Pad1) {
  std::vector<float> want(16, 0.0f);
  want[1] = 1;
  want[6] = 2;
  want[13] = 3 + 4;
  EXPECT_TRUE(
      all_equal(pool_bwd(MaxPoolParams{3, 2, 1}, Shape4{1, 4, 4, 1}, kGrid, {1, 2, 3, 4}), want));
}

// Ties go to the first maximum in row-major window order (PyTorch: first strictly greater wins):
// on a constant image each 3x3 / s2 / p1 window picks its first in-image element: windows
// (0,0) -> (0,0), (0,1) -> (0,1), (1,0) -> (1,0), (1,1) -> (1,1) of the 4x4 grid.
TEST(MaxPoolBackward, TiesGoToTheFirstInScanOrder) {
  std::vector<float> want(16, 0.0f);
  want[0] = 1;
  want[1] = 2;
  want[4] = 3;
  want[5] = 4;
  EXPECT_TRUE(all_equal(pool_bwd(MaxPoolParams{3, 2, 1}, Shape4{1, 4, 4, 1},
                                 std::vector<float>(16, 7.0f), {1, 2, 3, 4}),
                        want));
  // fp16 storage, slices: the same.
  EXPECT_TRUE(all_equal(
      pool_bwd(MaxPoolParams{3, 2, 1}, Shape4{1, 4, 4, 1}, std::vector<float>(16, -7.0f),
               {1, 2, 3, 4}, DType::F16, Placement{1, 3}, Placement{2, 4}, Placement{1, 2}),
      want));
}

// NaN and -inf windows, as PyTorch 1.13 (checked with torch.nn.functional.max_pool2d backward):
// a NaN replaces the running maximum each time, so a window holding two NaNs sends its gradient to
// the LAST one; a window of -inf only sends it to its first in-image input.
TEST(MaxPoolBackward, NaNAndMinusInfinityWindowsAsPyTorch) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(16, 0.0f);
  x[0] = 1;
  x[1] = nan;
  x[2] = 2;
  x[3] = nan;
  std::vector<float> want(16, 0.0f);
  want[1] = 1;  // window (0,0): cols -1..1 -> the NaN at col 1
  want[3] = 2;  // window (0,1): cols 1..3 -> the last NaN, col 3
  want[4] = 3;  // windows (1,0), (1,1): rows 1..3 of zeros -> their first input
  want[5] = 4;
  EXPECT_TRUE(
      all_equal(pool_bwd(MaxPoolParams{3, 2, 1}, Shape4{1, 4, 4, 1}, x, {1, 2, 3, 4}), want));
  std::vector<float> ones_want(9, 0.0f);
  ones_want[0] = ones_want[1] = ones_want[3] = ones_want[4] = 1;
  EXPECT_TRUE(all_equal(pool_bwd(MaxPoolParams{3, 2, 1}, Shape4{1, 3, 3, 1},
                                 std::vector<float>(9, -inf), {1, 1, 1, 1}),
                        ones_want));
}

// Central differences of L(x) = sum dy * maxpool(x) in double. Inputs are distinct multiples of
// 1/16 (a shuffled ramp), steps 1/64: no window changes its argmax, so L is linear along each
// step and the difference quotient is exact up to the double rounding of L; dx is a sum of up to
// four fp32 dy values rounded once to fp32: rtol 1.2e-7 (one ulp).
TEST(MaxPoolBackward, FiniteDifferences) {
  for (const auto& [xs, params] : {std::pair{Shape4{3, 9, 11, 5}, MaxPoolParams{3, 2, 1}},
                                   std::pair{Shape4{1, 8, 7, 3}, MaxPoolParams{2, 2, 0}},
                                   std::pair{Shape4{1, 7, 6, 2}, MaxPoolParams{3, 1, 1}}}) {
    SCOPED_TRACE(to_string(xs));
    const Shape4 ys = max_pool_output_shape(params, xs);
    std::vector<float> x(size_t(xs.elements()));
    const std::vector<float> order = random_floats(x.size(), 5);
    std::vector<size_t> idx(x.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return order[a] < order[b]; });
    for (size_t k = 0; k < idx.size(); ++k) x[idx[k]] = float(k) / 16.0f - 8.0f;
    const std::vector<float> dy = random_floats(size_t(ys.elements()), 6);
    auto loss = [&](const std::vector<float>& xv) {
      const std::vector<float> y = pool(params, xs, xv);
      double l = 0.0;
      for (size_t i = 0; i < y.size(); ++i) l += double(dy[i]) * y[i];
      return l;
    };
    GradientCheck opt;
    opt.h = 1.0 / 64;
    opt.atol = 1e-12;
    opt.rtol = 1.2e-7;
    EXPECT_TRUE(check_gradient(loss, x, pool_bwd(params, xs, x, dy), opt));
  }
}

// dx as a slice, x and dy as slices, fp16: the same gradient (values exact in fp16: sums of at
// most 4 small integers).
TEST(MaxPoolBackward, SlicesAndFp16) {
  const Shape4 xs{3, 9, 13, 5};
  const MaxPoolParams p{3, 2, 1};
  const std::vector<float> x = small_ints(size_t(xs.elements()), 3, -3, 3);
  const std::vector<float> dy =
      small_ints(size_t(max_pool_output_shape(p, xs).elements()), 4, -3, 3);
  const std::vector<float> want = pool_bwd(p, xs, x, dy);
  EXPECT_TRUE(all_equal(
      pool_bwd(p, xs, x, dy, DType::F32, Placement{2, 9}, Placement{1, 6}, Placement{3, 8}), want));
  EXPECT_TRUE(all_equal(
      pool_bwd(p, xs, x, dy, DType::F16, Placement{2, 9}, Placement{1, 6}, Placement{3, 8}), want));
}

TEST(MaxPoolArgs, BadArgumentsNameTheTensor) {
  std::vector<float> xb(5 * 5 * 2), yb(3 * 3 * 2);
  const TensorView x = make_view(xb.data(), DType::F32, Shape4{1, 5, 5, 2});
  TensorView y = make_view(yb.data(), DType::F32, Shape4{1, 3, 3, 2});
  EXPECT_NO_THROW(max_pool_fwd(kRef, MaxPoolParams{}, x, y));
  y.shape.w = 2;
  EXPECT_TRUE(throws_error_mentioning([&] { max_pool_fwd(kRef, MaxPoolParams{}, x, y); },
                                      "max_pool_fwd: y"));
  y.shape.w = 3;
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        max_pool_fwd(kRef, MaxPoolParams{3, 2, 2}, x, y);
      },
      "pad"));
}

}  // namespace
}  // namespace farsee::test
