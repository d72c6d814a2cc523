#include "kernels/reference/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/batchnorm.h"
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

// ---- training: dense double core ----

void batchnorm_train_fwd_dense(int64_t pixels, int channels, const double* x, const double* gamma,
                               const double* beta, const double* residual, bool relu, double eps,
                               double* y, double* mean, double* var) {
  const int C = channels;
  std::vector<double> sum(size_t(C), 0.0), sq(size_t(C), 0.0);
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < C; ++c) sum[c] += x[p * C + c];
  }
  for (int c = 0; c < C; ++c) mean[c] = sum[c] / double(pixels);
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < C; ++c) sq[c] += (x[p * C + c] - mean[c]) * (x[p * C + c] - mean[c]);
  }
  std::vector<double> scale(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) {
    var[c] = sq[c] / double(pixels);
    scale[c] = (gamma ? gamma[c] : 1.0) / std::sqrt(var[c] + eps);
  }
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < C; ++c) {
      double v = (x[p * C + c] - mean[c]) * scale[c] + (beta ? beta[c] : 0.0);
      if (residual) v += residual[p * C + c];
      y[p * C + c] = (relu && v <= 0.0) ? 0.0 : v;  // NaN passes through the ReLU, as torch.relu
    }
  }
}

void batchnorm_train_bwd_dense(int64_t pixels, int channels, const double* x, const double* y,
                               bool relu, const double* dy, const double* mean,
                               const double* invstd, const double* gamma, double* dx,
                               double* dz_out, double* dgamma_sum, double* dbeta_sum) {
  const int C = channels;
  // dz = dy where the ReLU passed its input (y > 0), else exactly 0 (a select, as PyTorch's
  // threshold_backward: a NaN dy under a closed ReLU gives 0).
  auto dz_at = [&](int64_t i) { return (!relu || y[i] > 0.0) ? dy[i] : 0.0; };
  std::vector<double> sum_dz(size_t(C), 0.0), sum_dz_xhat(size_t(C), 0.0);
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < C; ++c) {
      const double dz = dz_at(p * C + c);
      sum_dz[c] += dz;
      sum_dz_xhat[c] += dz * (x[p * C + c] - mean[c]) * invstd[c];
    }
  }
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < C; ++c) {
      const int64_t i = p * C + c;
      const double dz = dz_at(i);
      const double xhat = (x[i] - mean[c]) * invstd[c];
      const double g = gamma ? gamma[c] : 1.0;
      dx[i] = g * invstd[c] *
              (dz - sum_dz[c] / double(pixels) - xhat * sum_dz_xhat[c] / double(pixels));
      if (dz_out) dz_out[i] = dz;
    }
  }
  for (int c = 0; c < C; ++c) {
    if (dgamma_sum) dgamma_sum[c] = sum_dz_xhat[c];
    if (dbeta_sum) dbeta_sum[c] = sum_dz[c];
  }
}

// ---- training: the ops of kernels/batchnorm.h on host views ----

namespace {

// Channels [c0, c0 + cn) of every pixel of v as dense double [pixels][cn].
void load_channels(const TensorView& v, int c0, int cn, std::vector<double>& out) {
  const int64_t pixels = v.shape.pixels();
  out.resize(size_t(pixels) * cn);
  for (int64_t p = 0; p < pixels; ++p) load_row(v, pixel_offset(v, p) + c0, cn, &out[p * cn]);
}
void store_channels(const TensorView& v, int c0, int cn, const std::vector<double>& values) {
  const int64_t pixels = v.shape.pixels();
  for (int64_t p = 0; p < pixels; ++p) {
    for (int i = 0; i < cn; ++i) store(v, pixel_offset(v, p) + c0 + i, float(values[p * cn + i]));
  }
}
std::vector<double> channel_doubles(const float* a, int c0, int cn) {
  std::vector<double> d(static_cast<size_t>(cn));
  for (int i = 0; i < cn; ++i) d[i] = double(a[c0 + i]);
  return d;
}

// Runs body(c0, cn) over blocks of kStatChannelBlock channels (OpenMP when worth it). Channels are
// independent, each block's sums run in pixel order: the result does not depend on threads.
template <typename Body>
void for_channel_blocks(const Shape4& s, int64_t work_per_element, Body&& body) {
  const int blocks = (s.c + kStatChannelBlock - 1) / kStatChannelBlock;
#pragma omp parallel for schedule(static) if (worth_parallel(s.elements() * work_per_element))
  for (int b = 0; b < blocks; ++b) {
    const int c0 = b * kStatChannelBlock;
    body(c0, std::min(kStatChannelBlock, s.c - c0));
  }
}

}  // namespace

void batchnorm_train_fwd(const Context&, const TensorView& x, const float* gamma, const float* beta,
                         const TensorView& residual, bool relu, const TensorView& y,
                         float* save_mean, float* save_invstd, float* running_mean,
                         float* running_var, const BatchNormTrainArgs& args, void*, size_t) {
  const int64_t pixels = x.shape.pixels();
  const double m = args.momentum;
  for_channel_blocks(x.shape, 4, [&](int c0, int cn) {
    std::vector<double> xs, rs, ys(size_t(pixels) * cn);
    load_channels(x, c0, cn, xs);
    if (residual.data) load_channels(residual, c0, cn, rs);
    const std::vector<double> g = gamma ? channel_doubles(gamma, c0, cn) : std::vector<double>();
    const std::vector<double> b = beta ? channel_doubles(beta, c0, cn) : std::vector<double>();
    std::vector<double> mean(static_cast<size_t>(cn)), var(static_cast<size_t>(cn));
    batchnorm_train_fwd_dense(pixels, cn, xs.data(), gamma ? g.data() : nullptr,
                              beta ? b.data() : nullptr, residual.data ? rs.data() : nullptr, relu,
                              double(args.eps), ys.data(), mean.data(), var.data());
    store_channels(y, c0, cn, ys);
    for (int i = 0; i < cn; ++i) {
      const int c = c0 + i;
      save_mean[c] = float(mean[i]);
      save_invstd[c] = float(1.0 / std::sqrt(var[i] + double(args.eps)));
      const double unbiased = var[i] * double(pixels) / double(pixels - 1);
      running_mean[c] = float((1.0 - m) * double(running_mean[c]) + m * mean[i]);
      running_var[c] = float((1.0 - m) * double(running_var[c]) + m * unbiased);
    }
  });
}

void batchnorm_train_bwd(const Context&, const TensorView& x, const TensorView& y, bool relu,
                         const TensorView& dy, const float* save_mean, const float* save_invstd,
                         const float* gamma, const TensorView& dx, const TensorView& dresidual,
                         bool accumulate_dresidual, float* dgamma, float* dbeta, void*, size_t,
                         BatchNormSync*) {  // a hook is refused by the entry point
  const int64_t pixels = x.shape.pixels();
  for_channel_blocks(x.shape, 8, [&](int c0, int cn) {
    std::vector<double> xs, ys, dys, dxs(size_t(pixels) * cn), dzs;
    load_channels(x, c0, cn, xs);
    if (relu) load_channels(y, c0, cn, ys);
    load_channels(dy, c0, cn, dys);
    if (dresidual.data) dzs.resize(size_t(pixels) * cn);
    const std::vector<double> g = gamma ? channel_doubles(gamma, c0, cn) : std::vector<double>();
    const std::vector<double> mean = channel_doubles(save_mean, c0, cn);
    const std::vector<double> invstd = channel_doubles(save_invstd, c0, cn);
    std::vector<double> sum_dz_xhat(static_cast<size_t>(cn)), sum_dz(static_cast<size_t>(cn));
    batchnorm_train_bwd_dense(pixels, cn, xs.data(), relu ? ys.data() : nullptr, relu, dys.data(),
                              mean.data(), invstd.data(), gamma ? g.data() : nullptr, dxs.data(),
                              dresidual.data ? dzs.data() : nullptr, sum_dz_xhat.data(),
                              sum_dz.data());
    // dx and dresidual may alias dy: every input of this channel block is loaded above.
    store_channels(dx, c0, cn, dxs);
    if (dresidual.data) {
      if (accumulate_dresidual) {
        std::vector<double> old;
        load_channels(dresidual, c0, cn, old);
        for (size_t i = 0; i < dzs.size(); ++i) dzs[i] += old[i];
      }
      store_channels(dresidual, c0, cn, dzs);
    }
    for (int i = 0; i < cn; ++i) {
      if (dgamma) dgamma[c0 + i] = float(double(dgamma[c0 + i]) + sum_dz_xhat[i]);
      if (dbeta) dbeta[c0 + i] = float(double(dbeta[c0 + i]) + sum_dz[i]);
    }
  });
}

}  // namespace farsee::reference
