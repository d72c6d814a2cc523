// OIHW -> KRSC weight layout conversion and BatchNorm folding.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/core/check.h"
#include "weights/batchnorm_fold.h"
#include "weights/conv_layout.h"

namespace farsee::weights {
namespace {

// Value at OIHW index (k, c, r, s): a small integer encoding of the index, so every element is
// distinct and exactly representable.
float code(int k, int c, int r, int s) {
  return float(k * 1000 + c * 100 + r * 10 + s);
}

TEST(ConvLayout, OihwToKrscMovesEveryElement) {
  // Awkward sizes: C not a multiple of anything, non-square kernel.
  const int K = 5, C = 7, R = 3, S = 2;
  std::vector<float> oihw(size_t(K) * C * R * S);
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r)
        for (int s = 0; s < S; ++s) oihw[((size_t(k) * C + c) * R + r) * S + s] = code(k, c, r, s);
  const std::vector<float> krsc = oihw_to_krsc(oihw, {K, C, R, S}, "w");
  ASSERT_EQ(krsc.size(), oihw.size());
  for (int k = 0; k < K; ++k)
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s)
        for (int c = 0; c < C; ++c)
          ASSERT_EQ(krsc[((size_t(k) * R + r) * S + s) * C + c], code(k, c, r, s))
              << "k=" << k << " r=" << r << " s=" << s << " c=" << c;
}

TEST(ConvLayout, OneByOneIsUnchanged) {
  std::vector<float> w(6 * 4);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i);
  EXPECT_EQ(oihw_to_krsc(w, {6, 4, 1, 1}, "pw"), w);
}

TEST(ConvLayout, RejectsBadShapes) {
  try {
    oihw_to_krsc(std::vector<float>(10), {10}, "head.low.bn.weight");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'head.low.bn.weight' has shape [10], expected 4-D"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(oihw_to_krsc(std::vector<float>(10), {2, 2, 1, 1}, "w"), Error);
}

TEST(BatchNormFold, MatchesTheBatchNormFormula) {
  const int C = 6;
  const std::vector<float> gamma{0.5f, 1.0f, 1.5f, -0.7f, 2.0f, 1.25f};
  const std::vector<float> beta{0.1f, -0.2f, 0.0f, 0.3f, -0.05f, 1.0f};
  const std::vector<float> mean{0.0f, 0.5f, -1.0f, 2.0f, 0.25f, -0.3f};
  const std::vector<float> var{1.0f, 0.5f, 2.0f, 0.0f, 1e-6f, 3.0f};  // var 0: eps alone
  const std::vector<float> conv_bias{0.2f, -1.0f, 0.0f, 0.5f, 0.1f, -0.4f};
  const FoldedBatchNorm plain =
      fold_batchnorm(gamma.data(), beta.data(), mean.data(), var.data(), C);
  const FoldedBatchNorm with_bias = fold_batchnorm(gamma.data(), beta.data(), mean.data(),
                                                   var.data(), C, kBatchNormEps, conv_bias.data());
  for (int c = 0; c < C; ++c) {
    const double scale = double(gamma[c]) / std::sqrt(double(var[c]) + double(kBatchNormEps));
    // Folded values are the double-precision formula rounded once to float.
    EXPECT_EQ(plain.scale[c], float(scale)) << c;
    EXPECT_EQ(plain.bias[c], float(double(beta[c]) - double(mean[c]) * scale)) << c;
    // The conv bias is added to the folded shift in double: one more float rounding.
    EXPECT_EQ(with_bias.bias[c],
              float(double(plain.bias[c]) + double(plain.scale[c]) * double(conv_bias[c])))
        << c;
    // And BN(z + b) == scale * z + bias for a few z (float evaluation of both sides).
    for (float z : {-2.0f, 0.0f, 0.75f, 3.5f}) {
      const double bn = double(gamma[c]) * (double(z) + conv_bias[c] - mean[c]) /
                            std::sqrt(double(var[c]) + double(kBatchNormEps)) +
                        beta[c];
      const double folded = double(with_bias.scale[c]) * z + with_bias.bias[c];
      // Two float roundings (scale, bias) of values up to |scale * z| ~ 2e3 (channel 4):
      // relative 2^-24 each.
      EXPECT_NEAR(folded, bn, 1e-6 * (1.0 + std::fabs(bn) + std::fabs(scale * z))) << c;
    }
  }
}

TEST(BatchNormFold, RejectsNegativeVariance) {
  const float g = 1, b = 0, m = 0, v = -1;
  EXPECT_THROW(fold_batchnorm(&g, &b, &m, &v, 1), Error);
}

TEST(BatchNormFold, ScaleOutputRowsScalesWholeRows) {
  std::vector<float> w{1, 2, 3, 4, 5, 6};  // 2 rows of 3 (e.g. KRSC with R*S*C = 3)
  scale_output_rows(w, 2, {2.0f, -0.5f});
  EXPECT_EQ(w, (std::vector<float>{2, 4, 6, -2, -2.5f, -3}));
  EXPECT_THROW(scale_output_rows(w, 4, {1, 1, 1, 1}), Error);
  EXPECT_THROW(scale_output_rows(w, 2, {1}), Error);
}

}  // namespace
}  // namespace farsee::weights
