// Reference pixel shuffle (through the public entry with the reference executor): the hand-worked
// index mapping, PyTorch fixtures (exact), slices, fp16, bad arguments.
#include "kernels/pixel_shuffle.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

std::vector<float> shuffle(int r, Shape4 xs, const std::vector<float>& x, DType dtype = DType::F32,
                           Placement xp = {}, Placement yp = {}) {
  NhwcTestTensor xt(kRef, dtype, xs, xp);
  xt.upload(x);
  NhwcTestTensor yt(kRef, dtype, pixel_shuffle_output_shape(r, xs), yp);
  pixel_shuffle_fwd(kRef, r, xt.view(), yt.view());
  EXPECT_TRUE(yt.outside_untouched());
  return yt.download();
}

// r = 2, one input pixel with channels 0..7 -> 2x2 pixels of 2 channels. Channel k = c*4 + i*2 + j
// goes to output pixel (i, j), channel c: (0,0) <- {0, 4}, (0,1) <- {1, 5}, (1,0) <- {2, 6},
// (1,1) <- {3, 7}.
TEST(PixelShuffle, HandWorkedIndexMapping) {
  EXPECT_TRUE(all_equal(shuffle(2, Shape4{1, 1, 1, 8}, {0, 1, 2, 3, 4, 5, 6, 7}),
                        std::vector<float>{0, 4, 1, 5, 2, 6, 3, 7}));
}

// Two input pixels side by side (1x2, 4 channels, r = 2): output is 2x4, pixel (i, 2w + j) takes
// channel i*2 + j of input pixel w. Row 0: a0 a1 b0 b1; row 1: a2 a3 b2 b3.
TEST(PixelShuffle, HandWorkedTwoPixels) {
  EXPECT_TRUE(all_equal(shuffle(2, Shape4{1, 1, 2, 4}, {10, 11, 12, 13, 20, 21, 22, 23}),
                        std::vector<float>{10, 11, 20, 21, 12, 13, 22, 23}));
}

class PixelShuffleFixture : public ::testing::TestWithParam<const char*> {};

// A shuffle copies: exact in fp32 and fp16.
TEST_P(PixelShuffleFixture, MatchesPyTorchExactly) {
  const OpFixture f(GetParam());
  const std::vector<int32_t> p = f.params();
  ASSERT_EQ(p.size(), 1u);
  Shape4 xs, ys;
  const std::vector<float> x = f.nhwc("x", &xs), want = f.nhwc("y", &ys);
  ASSERT_EQ(pixel_shuffle_output_shape(p[0], xs), ys);
  EXPECT_TRUE(all_equal(shuffle(p[0], xs, x), want));
  EXPECT_TRUE(all_equal(
      shuffle(p[0], xs, x, DType::F32, Placement{4, xs.c + 7}, Placement{1, ys.c + 3}), want));
  EXPECT_TRUE(all_equal(shuffle(p[0], xs, round_to_half(x), DType::F16, Placement{1, xs.c + 1},
                                Placement{2, ys.c + 5}),
                        round_to_half(want)));
}

INSTANTIATE_TEST_SUITE_P(PyTorch, PixelShuffleFixture,
                         ::testing::Values("pixel_shuffle_r2", "pixel_shuffle_r4_b3"),
                         [](const auto& info) { return std::string(info.param); });

TEST(PixelShuffleArgs, BadArgumentsNameTheTensor) {
  std::vector<float> xb(2 * 2 * 8), yb(4 * 4 * 2);
  const TensorView x = make_view(xb.data(), DType::F32, Shape4{1, 2, 2, 8});
  TensorView y = make_view(yb.data(), DType::F32, Shape4{1, 4, 4, 2});
  EXPECT_NO_THROW(pixel_shuffle_fwd(kRef, 2, x, y));
  EXPECT_TRUE(throws_error_mentioning([&] { pixel_shuffle_fwd(kRef, 3, x, y); }, "factor"));
  y.shape.c = 4;
  EXPECT_TRUE(
      throws_error_mentioning([&] { pixel_shuffle_fwd(kRef, 2, x, y); }, "pixel_shuffle_fwd: y"));
}

}  // namespace
}  // namespace farsee::test
