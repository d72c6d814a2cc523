// Reference ReLU and residual add: hand-worked values (NaN and signed zero included), channel
// slices, in place, fp16 storage, bad arguments. ReLU backward, and fill_zero (the training
// helper of kernels/elementwise.h) through the reference executor.
#include "kernels/reference/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

TEST(Relu, HandWorkedNaNPassesThrough) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {-1.5f, 0.0f, 2.5f, nan, -0.0f, 1e-30f};
  std::vector<float> y(x.size(), 7.0f);
  const Shape4 s{1, 1, 3, 2};
  reference::relu_fwd(make_view(x.data(), DType::F32, s), make_view(y.data(), DType::F32, s));
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 2.5f);
  EXPECT_TRUE(std::isnan(y[3]));  // torch.relu(nan) is nan
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[5], 1e-30f);
}

TEST(Relu, SlicesInPlaceAndFp16) {
  const Shape4 s{3, 5, 3, 7};
  const std::vector<float> x = small_ints(size_t(s.elements()), 11, -4, 4);
  std::vector<float> want = x;
  for (float& v : want) v = v < 0 ? 0 : v;
  for (DType dtype : {DType::F32, DType::F16}) {
    NhwcTestTensor xt(kRef, dtype, s, Placement{2, 12});
    xt.upload(x);
    NhwcTestTensor yt(kRef, dtype, s, Placement{5, 13});
    reference::relu_fwd(xt.view(), yt.view());
    EXPECT_TRUE(all_equal(yt.download(), want));
    EXPECT_TRUE(yt.outside_untouched());
    reference::relu_fwd(xt.view(), xt.view());  // in place
    EXPECT_TRUE(all_equal(xt.download(), want));
    EXPECT_TRUE(xt.outside_untouched());
  }
}

TEST(Add, HandWorked) {
  std::vector<float> a = {1, -2, 0.5f, 3}, b = {0.25f, 2, -4, 1e8f}, y(4);
  const Shape4 s{1, 2, 1, 2};
  reference::add_fwd(make_view(a.data(), DType::F32, s), make_view(b.data(), DType::F32, s),
                     make_view(y.data(), DType::F32, s));
  EXPECT_TRUE(all_equal(y, std::vector<float>{1.25f, 0, -3.5f, 3 + 1e8f}));
}

// Random floats: the fp32 sum is correctly rounded (exact comparison with a + b in fp32); with
// fp16 storage, the fp32 sum of the fp16-rounded inputs rounded to fp16.
TEST(Add, SlicesInPlaceAndFp16) {
  const Shape4 s{2, 7, 5, 9};
  const std::vector<float> a = random_floats(size_t(s.elements()), 3, -4, 4);
  const std::vector<float> b = random_floats(size_t(s.elements()), 4, -4, 4);
  for (DType dtype : {DType::F32, DType::F16}) {
    const std::vector<float> ar = dtype == DType::F16 ? round_to_half(a) : a;
    const std::vector<float> br = dtype == DType::F16 ? round_to_half(b) : b;
    std::vector<float> want(a.size());
    for (size_t i = 0; i < a.size(); ++i) want[i] = ar[i] + br[i];
    if (dtype == DType::F16) want = round_to_half(want);
    NhwcTestTensor at(kRef, dtype, s, Placement{1, 10});
    at.upload(ar);
    NhwcTestTensor bt(kRef, dtype, s, Placement{0, 16});
    bt.upload(br);
    NhwcTestTensor yt(kRef, dtype, s, Placement{3, 12});
    reference::add_fwd(at.view(), bt.view(), yt.view());
    EXPECT_TRUE(all_equal(yt.download(), want));
    EXPECT_TRUE(yt.outside_untouched());
    reference::add_fwd(at.view(), bt.view(), at.view());  // in place (the residual add)
    EXPECT_TRUE(all_equal(at.download(), want));
  }
}

TEST(ElementwiseArgs, BadShapesNameTheTensor) {
  std::vector<float> buf(64);
  const TensorView a = make_view(buf.data(), DType::F32, Shape4{1, 2, 2, 4});
  TensorView b = a;
  b.shape.w = 1;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::add_fwd(a, b, a); }, "add_fwd: b"));
  EXPECT_TRUE(throws_error_mentioning([&] { reference::add_fwd(a, a, b); }, "add_fwd: y"));
  EXPECT_TRUE(throws_error_mentioning([&] { reference::relu_fwd(a, b); }, "relu_fwd: y"));
  TensorView bad_stride = a;
  bad_stride.pixel_stride = 2;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::relu_fwd(bad_stride, a); }, "relu_fwd: x"));
}

// dx = y > 0 ? dy : 0: a closed ReLU (y = 0, -0) gives exactly 0 even for NaN or Inf dy, as
// PyTorch's threshold_backward (a select, not a multiply).
TEST(ReluBwd, HandWorkedSelect) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> y = {0.0f, -0.0f, 2.0f, 1e-30f, 0.0f, 3.0f};
  std::vector<float> dy = {5.0f, nan, -1.5f, 4.0f, inf, 0.25f};
  std::vector<float> dx(6, 7.0f);
  const Shape4 s{1, 3, 1, 2};
  reference::relu_bwd(make_view(y.data(), DType::F32, s), make_view(dy.data(), DType::F32, s),
                      make_view(dx.data(), DType::F32, s));
  EXPECT_TRUE(all_equal(dx, std::vector<float>{0, 0, -1.5f, 4.0f, 0, 0.25f}));
}

TEST(FillZero, ZeroesExactlyTheBytes) {
  std::vector<unsigned char> b(40, 0xAB);
  fill_zero(kRef, b.data() + 3, 33);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], (i >= 3 && i < 36) ? 0 : 0xAB) << i;
  fill_zero(kRef, nullptr, 0);  // nothing to do
  EXPECT_THROW(fill_zero(kRef, nullptr, 4), Error);
}

}  // namespace
}  // namespace farsee::test
