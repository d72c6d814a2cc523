// Reference max pool (through the public entry with the reference executor): hand-worked maxima,
// -inf padding, NaN propagation, PyTorch fixtures (exact), slices, fp16, bad arguments.
#include "kernels/pool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/reference/test_util.h"
#include "tests/support/compare.h"

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
