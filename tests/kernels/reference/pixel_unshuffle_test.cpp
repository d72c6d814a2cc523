// Reference pixel unshuffle (through the public entry with the reference executor): the
// hand-worked index mapping, and the inverse of pixel_shuffle_fwd both ways (slices, fp16).
#include "kernels/pixel_unshuffle.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/pixel_shuffle.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

// 2x2 pixels of 2 channels, r = 2 -> one pixel of 8 channels: channel c*4 + i*2 + j takes input
// pixel (i, j), channel c (the inverse of PixelShuffle's hand-worked case).
TEST(PixelUnshuffle, HandWorkedIndexMapping) {
  NhwcTestTensor x(kRef, DType::F32, Shape4{1, 2, 2, 2});
  x.upload({0, 4, 1, 5, 2, 6, 3, 7});
  NhwcTestTensor y(kRef, DType::F32, Shape4{1, 1, 1, 8});
  pixel_unshuffle_fwd(kRef, 2, x.view(), y.view());
  EXPECT_TRUE(all_equal(y.download(), std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// unshuffle(shuffle(v)) == v and shuffle(unshuffle(v)) == v, with slices and fp16.
TEST(PixelUnshuffle, InverseOfPixelShuffle) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (int r : {1, 2, 4}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " r " + std::to_string(r));
      const Shape4 small{2, 3, 5, 3 * r * r};
      const Shape4 big = pixel_shuffle_output_shape(r, small);
      const std::vector<float> v = random_floats(size_t(small.elements()), 7u + r);
      NhwcTestTensor a(kRef, dtype, small, Placement{2, small.c + 5});
      a.upload(v);
      NhwcTestTensor b(kRef, dtype, big, Placement{1, big.c + 3});
      NhwcTestTensor c(kRef, dtype, small);
      pixel_shuffle_fwd(kRef, r, a.view(), b.view());
      pixel_unshuffle_fwd(kRef, r, b.view(), c.view());
      EXPECT_TRUE(all_equal(c.download(), a.download()));
      EXPECT_TRUE(b.outside_untouched());
      NhwcTestTensor d(kRef, dtype, big);
      pixel_shuffle_fwd(kRef, r, c.view(), d.view());
      EXPECT_TRUE(all_equal(d.download(), b.download()));
    }
  }
}

}  // namespace
}  // namespace farsee::test
