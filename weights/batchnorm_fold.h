// Inference-time BatchNorm folding for weight loading:
//
//   BN(z) = gamma * (z - mean) / sqrt(var + eps) + beta = scale * z + shift
//   scale = gamma / sqrt(var + eps),  shift = beta - mean * scale
//
// The formula itself is reference::fold_batchnorm (kernels/reference/batchnorm.h: double
// precision, rounded once); this adds what loading a conv needs: a conv bias b before the BN
// (BN(conv(x) + b) = scale * conv(x) + shift + scale * b) and scaling the conv's output rows, so
// y = conv'(x) + bias. eps defaults to PyTorch's BatchNorm2d eps (1e-5).
#pragma once

#include <vector>

#include "kernels/reference/batchnorm.h"

namespace farsee::weights {

constexpr float kBatchNormEps = reference::kBatchNormEps;

struct FoldedBatchNorm {
  std::vector<float> scale;  // [C]
  std::vector<float> bias;   // [C]: shift (+ scale * conv bias)
};

// gamma, beta, mean, var: [channels] (gamma null = 1, beta null = 0); conv_bias: [channels] or
// null. Throws farsee::Error on a negative variance or eps <= 0.
FoldedBatchNorm fold_batchnorm(const float* gamma, const float* beta, const float* mean,
                               const float* var, int channels, float eps = kBatchNormEps,
                               const float* conv_bias = nullptr);

// Multiplies every output row k of a KRSC (or depthwise [C][R][S]) weight tensor, `rows` rows of
// equal length, by scale[k].
void scale_output_rows(std::vector<float>& weights, int rows, const std::vector<float>& scale);

}  // namespace farsee::weights
