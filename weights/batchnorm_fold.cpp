#include "weights/batchnorm_fold.h"

#include "kernels/core/check.h"
#include "kernels/reference/batchnorm.h"

namespace farsee::weights {

FoldedBatchNorm fold_batchnorm(const float* gamma, const float* beta, const float* mean,
                               const float* var, int channels, float eps, const float* conv_bias) {
  FoldedBatchNorm f;
  f.scale.resize(size_t(channels > 0 ? channels : 0));
  f.bias.resize(f.scale.size());
  // The BN arithmetic itself lives in the reference op (one place for the formula).
  reference::fold_batchnorm(channels, gamma, beta, mean, var, eps, f.scale.data(), f.bias.data());
  if (conv_bias) {
    for (int c = 0; c < channels; ++c) {
      f.bias[c] = float(double(f.bias[c]) + double(f.scale[c]) * double(conv_bias[c]));
    }
  }
  return f;
}

void scale_output_rows(std::vector<float>& weights, int rows, const std::vector<float>& scale) {
  FARSEE_REQUIRE(
      rows > 0 && weights.size() % size_t(rows) == 0,
      "scale_output_rows: " << weights.size() << " weights do not split into " << rows << " rows");
  FARSEE_REQUIRE(scale.size() == size_t(rows),
                 "scale_output_rows: " << scale.size() << " scales for " << rows << " rows");
  const size_t row_len = weights.size() / size_t(rows);
  for (int k = 0; k < rows; ++k) {
    for (size_t i = 0; i < row_len; ++i) weights[size_t(k) * row_len + i] *= scale[k];
  }
}

}  // namespace farsee::weights
