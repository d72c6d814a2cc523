#include "net/sync_batchnorm.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/half_convert.h"

namespace farsee::net {
namespace {

// Element (pixel p, channel c) of a host view, fp32 or fp16 storage, as double; and its store
// (rounded once to the storage type through float, as the reference executor's stores).
double get(const TensorView& v, int64_t p, int c) {
  return double(read_element(v.data, v.dtype, p * v.pixel_stride + c));
}
void put(const TensorView& v, int64_t p, int c, double value) {
  write_element(v.data, v.dtype, p * v.pixel_stride + c, float(value));
}

}  // namespace

void CollectiveBatchNormSync::merge_statistics(int channels, int64_t* count, double* mean,
                                               double* m2) {
  const size_t C = size_t(channels);
  const double n = double(*count);  // exact: counts far below 2^53
  std::vector<double> sums(C + 1);
  for (size_t c = 0; c < C; ++c) sums[c] = n * mean[c];
  sums[C] = n;
  comm_.all_reduce_sum(sums.data(), int64_t(C + 1), "BN sums");
  const double total = sums[C];
  for (size_t c = 0; c < C; ++c) {
    const double global_mean = sums[c] / total, d = mean[c] - global_mean;
    m2[c] += n * d * d;  // this rank's m2 about the global mean
    mean[c] = global_mean;
  }
  comm_.all_reduce_sum(m2, int64_t(C), "BN squared deviations");
  *count = int64_t(total);
}

void CollectiveBatchNormSync::merge_gradient_sums(int channels, int64_t* count, double* sum_dz,
                                                  double* sum_dz_xc) {
  const size_t C = size_t(channels);
  std::vector<double> sums(2 * C + 1);
  std::copy(sum_dz, sum_dz + C, sums.begin());
  std::copy(sum_dz_xc, sum_dz_xc + C, sums.begin() + std::ptrdiff_t(C));
  sums[2 * C] = double(*count);
  comm_.all_reduce_sum(sums.data(), int64_t(2 * C + 1), "BN backward sums");
  std::copy(sums.begin(), sums.begin() + std::ptrdiff_t(C), sum_dz);
  std::copy(sums.begin() + std::ptrdiff_t(C), sums.begin() + std::ptrdiff_t(2 * C), sum_dz_xc);
  *count = int64_t(sums[2 * C]);
}

void sync_batchnorm_train_fwd(Collective& comm, const TensorView& x, const float* gamma,
                              const float* beta, const TensorView& residual, bool relu,
                              const TensorView& y, float* save_mean, float* save_invstd,
                              float* running_mean, float* running_var,
                              const BatchNormTrainArgs& args) {
  const int C = x.c();
  const int64_t P = x.shape.pixels();
  std::vector<double> sum(size_t(C) + 1, 0.0), sq(size_t(C), 0.0);
  for (int64_t p = 0; p < P; ++p) {
    for (int c = 0; c < C; ++c) sum[c] += get(x, p, c);
  }
  sum[C] = double(P);  // exact: counts far below 2^53
  comm.all_reduce_sum(sum.data(), C + 1, "BN sums");
  const double M = sum[C];
  std::vector<double> mean(static_cast<size_t>(C)), scale(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) mean[c] = sum[c] / M;
  for (int64_t p = 0; p < P; ++p) {
    for (int c = 0; c < C; ++c) sq[c] += (get(x, p, c) - mean[c]) * (get(x, p, c) - mean[c]);
  }
  comm.all_reduce_sum(sq.data(), C, "BN squared deviations");
  const double m = args.momentum;
  for (int c = 0; c < C; ++c) {
    const double var = sq[c] / M, invstd = 1.0 / std::sqrt(var + double(args.eps));
    scale[c] = (gamma ? double(gamma[c]) : 1.0) * invstd;
    save_mean[c] = float(mean[c]);
    save_invstd[c] = float(invstd);
    running_mean[c] = float((1.0 - m) * double(running_mean[c]) + m * mean[c]);
    running_var[c] = float((1.0 - m) * double(running_var[c]) + m * var * M / (M - 1.0));
  }
  for (int64_t p = 0; p < P; ++p) {
    for (int c = 0; c < C; ++c) {  // y may alias the residual exactly: read before written
      double v = (get(x, p, c) - mean[c]) * scale[c] + (beta ? double(beta[c]) : 0.0);
      if (residual.data) v += get(residual, p, c);
      put(y, p, c, (relu && v <= 0.0) ? 0.0 : v);
    }
  }
}

void sync_batchnorm_train_bwd(Collective& comm, const TensorView& x, const TensorView& y, bool relu,
                              const TensorView& dy, const float* save_mean,
                              const float* save_invstd, const float* gamma, const TensorView& dx,
                              const TensorView& dresidual, bool accumulate_dresidual, float* dgamma,
                              float* dbeta) {
  const int C = x.c();
  const int64_t P = x.shape.pixels();
  auto dz_at = [&](int64_t p, int c) {
    return (!relu || get(y, p, c) > 0.0) ? get(dy, p, c) : 0.0;
  };
  auto xhat_at = [&](int64_t p, int c) {
    return (get(x, p, c) - double(save_mean[c])) * double(save_invstd[c]);
  };
  // [0, C): sum dz, [C, 2C): sum dz * xhat, [2C]: the pixel count.
  std::vector<double> s(2 * size_t(C) + 1, 0.0);
  for (int64_t p = 0; p < P; ++p) {
    for (int c = 0; c < C; ++c) {
      const double dz = dz_at(p, c);
      s[c] += dz;
      s[C + c] += dz * xhat_at(p, c);
    }
  }
  for (int c = 0; c < C; ++c) {  // this rank's share of the parameter gradients
    if (dbeta) dbeta[c] = float(double(dbeta[c]) + s[c]);
    if (dgamma) dgamma[c] = float(double(dgamma[c]) + s[C + c]);
  }
  s[2 * C] = double(P);
  comm.all_reduce_sum(s.data(), 2 * C + 1, "BN backward sums");
  const double M = s[2 * C];
  for (int64_t p = 0; p < P; ++p) {
    for (int c = 0; c < C; ++c) {
      const double dz = dz_at(p, c), xhat = xhat_at(p, c);
      const double g = gamma ? double(gamma[c]) : 1.0;
      // dx and dresidual may alias dy exactly: this element's reads are done.
      put(dx, p, c, g * double(save_invstd[c]) * (dz - s[c] / M - xhat * s[C + c] / M));
      if (dresidual.data) {
        put(dresidual, p, c, accumulate_dresidual ? get(dresidual, p, c) + dz : dz);
      }
    }
  }
}

}  // namespace farsee::net
