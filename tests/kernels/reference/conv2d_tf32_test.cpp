// TF32 rounding (round_to_tf32, kernels/core/dtype.h: what cvt.rna.tf32.f32 does) on hand-computed
// values, and the reference's tf32 mode (tf32_rounded_copy, then the double-sum convolution) on a
// hand-worked 1x1 conv.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/reference/conv2d.h"

namespace farsee::test {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// TF32 keeps 10 explicit mantissa bits: the ulp at 1 is 2^-10, so 2^-11 is half an ulp.
TEST(Tf32Rounding, HandComputedValues) {
  const float half_ulp = std::ldexp(1.0f, -11), quarter_ulp = std::ldexp(1.0f, -12);
  EXPECT_EQ(round_to_tf32(1.0f), 1.0f);
  // A tie rounds away from zero (nearest-even would give 1): 1 + 2^-11 -> 1 + 2^-10.
  EXPECT_EQ(round_to_tf32(1.0f + half_ulp), 1.0f + std::ldexp(1.0f, -10));
  EXPECT_EQ(round_to_tf32(-1.0f - half_ulp), -1.0f - std::ldexp(1.0f, -10));
  // Below half an ulp rounds down, above it up.
  EXPECT_EQ(round_to_tf32(1.0f + quarter_ulp), 1.0f);
  EXPECT_EQ(round_to_tf32(1.0f + half_ulp + quarter_ulp), 1.0f + std::ldexp(1.0f, -10));
  EXPECT_EQ(round_to_tf32(1.0f + half_ulp - std::ldexp(1.0f, -23)), 1.0f);
  // The carry runs into the exponent: 2 - 2^-11 (the largest fp32 below 2 rounding up) -> 2.
  EXPECT_EQ(round_to_tf32(2.0f - half_ulp), 2.0f);
  // 3.14159274 = 0x40490FDB -> 0x40490000 (low 13 bits 0xFDB < 0x1000: down).
  EXPECT_EQ(bits(round_to_tf32(3.14159274f)), 0x40490000u);
  // Overflow: the largest fp32 is above the largest TF32 by more than half an ulp -> infinity.
  EXPECT_EQ(round_to_tf32(std::numeric_limits<float>::max()),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(round_to_tf32(-std::numeric_limits<float>::infinity()),
            -std::numeric_limits<float>::infinity());
  // A NaN whose payload lies only in the cut bits stays a NaN.
  EXPECT_TRUE(std::isnan(round_to_tf32(from_bits(0x7f800001u))));
  EXPECT_TRUE(std::isnan(round_to_tf32(std::numeric_limits<float>::quiet_NaN())));
  // Subnormals: the same bit rule (a tie at bit 12 rounds up, below it to zero).
  EXPECT_EQ(bits(round_to_tf32(from_bits(0x00001000u))), 0x00002000u);
  EXPECT_EQ(bits(round_to_tf32(from_bits(0x00000fffu))), 0u);
  EXPECT_EQ(bits(round_to_tf32(from_bits(0x80000fffu))), 0x80000000u);  // -0 keeps its sign
}

// 1x1 conv, one pixel, C = 2, K = 1: y = x0*w0 + x1*w1 with x = (1 + 2^-11, 3), w = (1 + 2^-12,
// 0.1). tf32: x0 -> 1 + 2^-10, w0 -> 1, w1 = 0.1 = 0x3DCCCCCD -> 0x3DCCC000 (cut bits 0xCCD below
// the half ulp 0x1000: down), so y = (1 + 2^-10) + 3 * 0x3DCCC000, computed in double and rounded
// once to fp32.
TEST(Tf32Reference, RoundsBothOperandsThenSumsInDouble) {
  std::vector<float> x = {1.0f + std::ldexp(1.0f, -11), 3.0f};
  std::vector<float> w = {1.0f + std::ldexp(1.0f, -12), 0.1f};
  const TensorView xv = make_view(x.data(), DType::F32, Shape4{1, 1, 1, 2});
  const TensorView wv = make_view(w.data(), DType::F32, Shape4{1, 1, 1, 2});
  std::vector<float> xs, ws;
  const TensorView xr = reference::tf32_rounded_copy(xv, xs);
  const TensorView wr = reference::tf32_rounded_copy(wv, ws);
  ASSERT_EQ(xs.size(), 2u);
  EXPECT_EQ(xs[0], 1.0f + std::ldexp(1.0f, -10));
  EXPECT_EQ(xs[1], 3.0f);
  EXPECT_EQ(ws[0], 1.0f);
  EXPECT_EQ(bits(ws[1]), 0x3dccc000u);
  float y = 0.0f;
  const ConvShape conv{};
  reference::conv2d_fwd(conv, xr, wr, nullptr, make_view(&y, DType::F32, Shape4{1, 1, 1, 1}));
  const double want = (1.0 + std::ldexp(1.0, -10)) + 3.0 * double(from_bits(0x3dccc000u));
  EXPECT_EQ(y, float(want));
  // Strict fp32 differs: (1 + 2^-11)(1 + 2^-12) + 3 * 0.1f is below the tf32 value by 1.708e-4.
  float strict = 0.0f;
  reference::conv2d_fwd(conv, xv, wv, nullptr, make_view(&strict, DType::F32, Shape4{1, 1, 1, 1}));
  EXPECT_NEAR(y - strict, 1.708e-4, 1e-6);
}

// A channel slice is copied densely (the slice's channels only), rounded.
TEST(Tf32Reference, RoundedCopyOfASlice) {
  std::vector<float> wide = {9.0f, 1.0f + std::ldexp(1.0f, -11), 2.0f, 9.0f,
                             9.0f, 1.0f + std::ldexp(1.0f, -12), 5.0f, 9.0f};
  TensorView v = make_view(wide.data(), DType::F32, Shape4{1, 1, 2, 4});
  v.data = wide.data() + 1;
  v.shape.c = 2;  // channels 1..2 of 4
  std::vector<float> s;
  const TensorView r = reference::tf32_rounded_copy(v, s);
  EXPECT_EQ(r.pixel_stride, 2);
  EXPECT_EQ(s, (std::vector<float>{1.0f + std::ldexp(1.0f, -10), 2.0f, 1.0f, 5.0f}));
}

}  // namespace
}  // namespace farsee::test
