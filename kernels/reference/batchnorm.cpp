#include "kernels/reference/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/index.h"

namespace farsee::reference {
namespace {

void require_channel_array(const float* a, const char* what) {
  FARSEE_REQUIRE(a != nullptr, what << " is null");
}

// Channels per OpenMP work item of the statistics: each channel's sums run over the pixels in
// order on one thread, so the result does not depend on the thread count.
constexpr int kStatChannelBlock = 16;

// mean[c] and biased var[c] of x over all pixels, two passes in double.
void channel_statistics(const TensorView& x, std::vector<double>& mean, std::vector<double>& var) {
  const int C = x.c();
  const int64_t pixels = x.shape.pixels();
  mean.assign(size_t(C), 0.0);
  var.assign(size_t(C), 0.0);
  const int blocks = (C + kStatChannelBlock - 1) / kStatChannelBlock;
#pragma omp parallel for schedule(static) if (worth_parallel(2 * pixels * C))
  for (int b = 0; b < blocks; ++b) {
    const int c0 = b * kStatChannelBlock;
    const int cn = std::min(kStatChannelBlock, C - c0);
    double row[kStatChannelBlock];
    double sum[kStatChannelBlock] = {};
    for (int64_t p = 0; p < pixels; ++p) {
      load_row(x, pixel_offset(x, p) + c0, cn, row);
      for (int i = 0; i < cn; ++i) sum[i] += row[i];
    }
    double m[kStatChannelBlock];
    for (int i = 0; i < cn; ++i) m[i] = sum[i] / double(pixels);
    double sq[kStatChannelBlock] = {};
    for (int64_t p = 0; p < pixels; ++p) {
      load_row(x, pixel_offset(x, p) + c0, cn, row);
      for (int i = 0; i < cn; ++i) sq[i] += (row[i] - m[i]) * (row[i] - m[i]);
    }
    for (int i = 0; i < cn; ++i) {
      mean[c0 + i] = m[i];
      var[c0 + i] = sq[i] / double(pixels);
    }
  }
}

// y = (x - mean) * inv_std * gamma + beta per channel, in double.
void normalize(const TensorView& x, const std::vector<double>& mean,
               const std::vector<double>& inv_std, const float* gamma, const float* beta,
               const TensorView& y) {
  const int C = x.c();
  parallel_pixels(
      x.shape.pixels(),
      [&](int64_t p) {
        const int64_t xo = pixel_offset(x, p), yo = pixel_offset(y, p);
        for (int c = 0; c < C; ++c) {
          const double g = gamma ? double(gamma[c]) : 1.0;
          const double b = beta ? double(beta[c]) : 0.0;
          const double v = (double(load(x, xo + c)) - mean[c]) * inv_std[c] * g + b;
          store(y, yo + c, float(v));
        }
      },
      C);
}

std::vector<double> inverse_std(const std::vector<double>& var, float eps) {
  std::vector<double> r(var.size());
  for (size_t c = 0; c < var.size(); ++c) r[c] = 1.0 / std::sqrt(var[c] + double(eps));
  return r;
}

}  // namespace

void batchnorm_inference_fwd(const TensorView& x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var,
                             const TensorView& y, float eps) {
  require_shape(x, "batchnorm_inference_fwd: x", x.shape);
  require_shape(y, "batchnorm_inference_fwd: y", x.shape);
  require_channel_array(running_mean, "batchnorm_inference_fwd: running_mean");
  require_channel_array(running_var, "batchnorm_inference_fwd: running_var");
  FARSEE_REQUIRE(eps > 0.0f, "batchnorm_inference_fwd: eps = " << eps << " must be positive");
  std::vector<double> mean(running_mean, running_mean + x.c());
  std::vector<double> var(running_var, running_var + x.c());
  for (int c = 0; c < x.c(); ++c) {
    FARSEE_REQUIRE(var[c] >= 0.0, "batchnorm_inference_fwd: running_var[" << c << "] = " << var[c]
                                                                          << " is negative");
  }
  normalize(x, mean, inverse_std(var, eps), gamma, beta, y);
}

void batchnorm_training_fwd(const TensorView& x, const float* gamma, const float* beta,
                            const TensorView& y, float* batch_mean, float* batch_var, float eps) {
  require_shape(x, "batchnorm_training_fwd: x", x.shape);
  require_shape(y, "batchnorm_training_fwd: y", x.shape);
  FARSEE_REQUIRE(eps > 0.0f, "batchnorm_training_fwd: eps = " << eps << " must be positive");
  FARSEE_REQUIRE(x.shape.pixels() > 1, "batchnorm_training_fwd: x " << to_string(x.shape)
                                                                    << " has one value per "
                                                                       "channel; training needs "
                                                                       "more (as PyTorch)");
  std::vector<double> mean, var;
  channel_statistics(x, mean, var);
  normalize(x, mean, inverse_std(var, eps), gamma, beta, y);
  for (int c = 0; c < x.c(); ++c) {
    if (batch_mean) batch_mean[c] = float(mean[c]);
    if (batch_var) batch_var[c] = float(var[c]);
  }
}

void batchnorm_update_running(int channels, int64_t count, const float* batch_mean,
                              const float* batch_var, float* running_mean, float* running_var,
                              float momentum) {
  FARSEE_REQUIRE(count > 1, "batchnorm_update_running: count = "
                                << count << "; the unbiased variance needs more than one value");
  require_channel_array(batch_mean, "batchnorm_update_running: batch_mean");
  require_channel_array(batch_var, "batchnorm_update_running: batch_var");
  require_channel_array(running_mean, "batchnorm_update_running: running_mean");
  require_channel_array(running_var, "batchnorm_update_running: running_var");
  const double m = momentum;
  const double unbias = double(count) / double(count - 1);
  for (int c = 0; c < channels; ++c) {
    running_mean[c] = float((1.0 - m) * running_mean[c] + m * batch_mean[c]);
    running_var[c] = float((1.0 - m) * running_var[c] + m * batch_var[c] * unbias);
  }
}

void fold_batchnorm(int channels, const float* gamma, const float* beta, const float* mean,
                    const float* var, float eps, float* scale_out, float* bias_out) {
  FARSEE_REQUIRE(channels >= 0, "fold_batchnorm: channels = " << channels);
  FARSEE_REQUIRE(eps > 0.0f, "fold_batchnorm: eps = " << eps << " must be positive");
  require_channel_array(mean, "fold_batchnorm: mean");
  require_channel_array(var, "fold_batchnorm: var");
  require_channel_array(scale_out, "fold_batchnorm: scale_out");
  require_channel_array(bias_out, "fold_batchnorm: bias_out");
  for (int c = 0; c < channels; ++c) {
    FARSEE_REQUIRE(var[c] >= 0.0f,
                   "fold_batchnorm: var[" << c << "] = " << var[c] << " is negative");
    const double scale = (gamma ? double(gamma[c]) : 1.0) / std::sqrt(double(var[c]) + eps);
    scale_out[c] = float(scale);
    bias_out[c] = float((beta ? double(beta[c]) : 0.0) - double(mean[c]) * scale);
  }
}

}  // namespace farsee::reference
