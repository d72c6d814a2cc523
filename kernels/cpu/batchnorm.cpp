// cpu executor, training BatchNorm (kernels/batchnorm.h), fp32 (fp16: the reference).
// Statistics: the pixels are cut into fixed segments (kSegmentPixels each, a function of the shape
// only); each segment sums its pixels in order into per-channel double partials (the inner loop
// over contiguous channels vectorises), the partials are combined in segment order: bitwise
// reproducible for any thread count. OpenMP over segments x blocks of kChannelBlock channels (the
// small deep-layer maps are one segment). Forward: one pass of sums and squares of x - shift (the
// channel's first value: the offset cancels before the squares; the reference's two passes read x
// once more, the pass is memory-bound). Apply passes (y, dx, dresidual) are element-wise in float
// with per-channel coefficients, OpenMP over chunks of ~16 Ki elements. Relu/NaN rules as the
// reference: y = (v <= 0) ? 0 : v (NaN passes), dz = y > 0 ? dy : 0. dx and dresidual may alias dy:
// each element of dy is read before either is written.
#include "kernels/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {
namespace {

constexpr int64_t kSegmentPixels = 2048;
// Channel blocks: the statistics of the deep layers' small maps (one segment) still split
// between the threads. A channel's sum never depends on the blocking.
constexpr int kChannelBlock = 64;

int64_t segment_count(int64_t pixels) {
  return (pixels + kSegmentPixels - 1) / kSegmentPixels;
}

inline const float* row_of(const TensorView& v, int64_t p) {
  return v.ptr<const float>() + p * v.pixel_stride;
}
inline float* mutable_row_of(const TensorView& v, int64_t p) {
  return v.ptr<float>() + p * v.pixel_stride;
}

// out[j * C + c] (j < sums, c < C) = sum over pixels of term j of channel c (double), summed per
// segment in pixel order, then over the segments in order. add_rows(p0, p1, c0, c1, acc) adds the
// terms of pixels [p0, p1) (in order) of channels [c0, c1) into acc[j * C + c]. Work items:
// segments x channel blocks.
template <typename AddRows>
std::vector<double> channel_sums(int64_t pixels, int C, int sums, AddRows&& add_rows) {
  const int64_t segments = segment_count(pixels);
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  const int64_t width = int64_t(sums) * C;
  std::vector<double> partial(size_t(segments * width), 0.0);
#pragma omp parallel for schedule(dynamic) if (segments * blocks > 1 && \
                                               worth_threads_elements(pixels * C * sums))
  for (int64_t item = 0; item < segments * blocks; ++item) {
    const int64_t s = item / blocks;
    const int c0 = int(item % blocks) * kChannelBlock, c1 = std::min(C, c0 + kChannelBlock);
    double* acc = partial.data() + s * width;
    add_rows(s * kSegmentPixels, std::min(pixels, (s + 1) * kSegmentPixels), c0, c1, acc);
  }
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (int64_t s = 0; s < segments; ++s) {
    for (int64_t j = 0; j < width; ++j) total[size_t(j)] += partial[size_t(s * width + j)];
  }
  return total;
}

// The statistics loops (double sums over contiguous channels) have AVX-512 and AVX2 clones beside
// the generic x86-64 one, picked at load time: lane-wise double arithmetic without contraction
// (-ffp-contract=off) and the same pixel order, so every clone gives the same bits; SSE2 does 2
// doubles per instruction, the loops were compute-bound on the maps that stay in cache.
#define FARSEE_CPU_STAT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// Forward: acc[c] += d, acc[C + c] += d * d, d = x - shift, pixels [p0, p1), channels [c0, c1).
FARSEE_CPU_STAT_CLONES void shifted_sums(const float* x, int64_t stride, int64_t p0, int64_t p1,
                                         int c0, int c1, int C, const double* shift, double* acc) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* xr = x + p * stride;
#pragma omp simd
    for (int c = c0; c < c1; ++c) {
      const double d = double(xr[c]) - shift[c];
      acc[c] += d;
      acc[C + c] += d * d;
    }
  }
}

// Backward: acc[c] += dz, acc[C + c] += dz * (x - mean) * invstd, dz = (y > 0) ? dy : 0 (the
// mask row y has stride 0 for a row of ones: no ReLU).
FARSEE_CPU_STAT_CLONES void gradient_sums(const float* x, int64_t xs, const float* y, int64_t ys,
                                          const float* g, int64_t gs, int64_t p0, int64_t p1,
                                          int c0, int c1, int C, const float* mean,
                                          const float* invstd, double* acc) {
  float dzr[kChannelBlock];
  const int n = c1 - c0;
  for (int64_t p = p0; p < p1; ++p) {
    const float *xr = x + p * xs, *yr = y + p * ys, *gr = g + p * gs;
    // The masked row first (a float select), then the double sums: two separate loops vectorise,
    // one fused loop does not.
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      const float gv = gr[c0 + i];  // loaded unconditionally: the select vectorises
      dzr[i] = yr[c0 + i] > 0.0f ? gv : 0.0f;
    }
#pragma omp simd
    for (int c = c0; c < c1; ++c) {
      const double dz = double(dzr[c - c0]);
      acc[c] += dz;
      acc[C + c] += dz * (double(xr[c]) - double(mean[c])) * double(invstd[c]);
    }
  }
}

// Pixels per chunk of the element-wise apply passes: about 16 Ki elements (a small map's few
// pixels still split between the threads).
int64_t apply_chunk(int C) {
  return std::max<int64_t>(1, (int64_t(1) << 14) / std::max(C, 1));
}

}  // namespace

void batchnorm_train_fwd(FARSEE_BATCHNORM_TRAIN_FWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::batchnorm_train_fwd, ctx, x, gamma, beta,
                               residual, relu, y, save_mean, save_invstd, running_mean, running_var,
                               args, workspace, workspace_bytes))
    return;
  const int C = x.c();
  const int64_t pixels = x.shape.pixels();
  // One pass over x: sums of d = x - shift and of d^2 (double), shift = the channel's value at
  // pixel 0, so the offset of a channel's values from 0 cancels before the squares (as the two-pass
  // centred form): mean = shift + S1 / n, var = S2 / n - (S1 / n)^2.
  std::vector<double> shift(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) shift[size_t(c)] = double(row_of(x, 0)[c]);
  const double* sh = shift.data();
  const std::vector<double> sums =
      channel_sums(pixels, C, 2, [&](int64_t p0, int64_t p1, int c0, int c1, double* acc) {
        shifted_sums(x.ptr<const float>(), x.pixel_stride, p0, p1, c0, c1, C, sh, acc);
      });
  std::vector<double> mean(static_cast<size_t>(C)), variance(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) {
    const double m1 = sums[size_t(c)] / double(pixels);
    mean[size_t(c)] = sh[c] + m1;
    variance[size_t(c)] = std::max(0.0, sums[size_t(C + c)] / double(pixels) - m1 * m1);
  }
  // Per-channel coefficients: y = (x - mean) * a + b (+ residual), a = gamma * invstd.
  std::vector<float> mean_f(static_cast<size_t>(C)), a(static_cast<size_t>(C)),
      b(static_cast<size_t>(C));
  const double m = args.momentum;
  for (int c = 0; c < C; ++c) {
    const double var = variance[size_t(c)];
    const double invstd = 1.0 / std::sqrt(var + double(args.eps));
    mean_f[size_t(c)] = float(mean[size_t(c)]);
    a[size_t(c)] = float((gamma ? double(gamma[c]) : 1.0) * invstd);
    b[size_t(c)] = beta ? beta[c] : 0.0f;
    save_mean[c] = float(mean[size_t(c)]);
    save_invstd[c] = float(invstd);
    const double unbiased = var * double(pixels) / double(pixels - 1);
    running_mean[c] = float((1.0 - m) * double(running_mean[c]) + m * mean[size_t(c)]);
    running_var[c] = float((1.0 - m) * double(running_var[c]) + m * unbiased);
  }
  const float *mf = mean_f.data(), *af = a.data(), *bf = b.data();
  const bool has_res = residual.data != nullptr;
#pragma omp parallel for schedule(dynamic, apply_chunk(C)) if (worth_threads_elements(pixels * C))
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xr = row_of(x, p);
    const float* rr = has_res ? row_of(residual, p) : nullptr;
    float* yr = mutable_row_of(y, p);
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      float v = (xr[c] - mf[c]) * af[c] + bf[c];
      if (has_res) v += rr[c];
      yr[c] = (relu && v <= 0.0f) ? 0.0f : v;
    }
  }
}

void batchnorm_train_bwd(FARSEE_BATCHNORM_TRAIN_BWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::batchnorm_train_bwd, ctx, x, y, relu, dy,
                               save_mean, save_invstd, gamma, dx, dresidual, accumulate_dresidual,
                               dgamma, dbeta, workspace, workspace_bytes, sync))
    return;
  const int C = x.c();
  const int64_t pixels = x.shape.pixels();
  // Without the ReLU the mask reads a row of ones: dz = (mask > 0) ? dy : 0 is then one
  // branch-free select in both loops (they vectorise).
  const std::vector<float> ones(relu ? 0 : size_t(C), 1.0f);
  // Sums of dz ([0, C)) and dz * xhat ([C, 2C)) in one pass.
  const std::vector<double> sums =
      channel_sums(pixels, C, 2, [&](int64_t p0, int64_t p1, int c0, int c1, double* acc) {
        gradient_sums(x.ptr<const float>(), x.pixel_stride,
                      relu ? y.ptr<const float>() : ones.data(), relu ? y.pixel_stride : 0,
                      dy.ptr<const float>(), dy.pixel_stride, p0, p1, c0, c1, C, save_mean,
                      save_invstd, acc);
      });
  // dx = k * (dz - mdz - xhat * mdzx), k = gamma * invstd.
  std::vector<float> k(static_cast<size_t>(C)), mdz(static_cast<size_t>(C)),
      mdzx(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) {
    const double sdz = sums[size_t(c)], sdzx = sums[size_t(C + c)];
    k[size_t(c)] = float((gamma ? double(gamma[c]) : 1.0) * double(save_invstd[c]));
    mdz[size_t(c)] = float(sdz / double(pixels));
    mdzx[size_t(c)] = float(sdzx / double(pixels));
    if (dgamma) dgamma[c] = float(double(dgamma[c]) + sdzx);
    if (dbeta) dbeta[c] = float(double(dbeta[c]) + sdz);
  }
  const float *kf = k.data(), *mf = mdz.data(), *mxf = mdzx.data();
  const bool want_res = dresidual.data != nullptr;
#pragma omp parallel for schedule(dynamic, apply_chunk(C)) if (worth_threads_elements(pixels * C))
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xr = row_of(x, p);
    const float* yr = relu ? row_of(y, p) : ones.data();
    const float* gr = row_of(dy, p);
    float* dxr = mutable_row_of(dx, p);
    float* drr = want_res ? mutable_row_of(dresidual, p) : nullptr;
    // dx and dresidual may alias dy exactly: each lane reads its dy before either store.
    auto dx_of = [&](int c, float dz) {
      const float xhat = (xr[c] - save_mean[c]) * save_invstd[c];
      return kf[c] * (dz - mf[c] - xhat * mxf[c]);
    };
    if (!want_res) {
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float g = gr[c];  // loaded unconditionally: the select then vectorises
        dxr[c] = dx_of(c, yr[c] > 0.0f ? g : 0.0f);
      }
    } else if (accumulate_dresidual) {
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float g = gr[c];
        const float dz = yr[c] > 0.0f ? g : 0.0f;
        const float v = dx_of(c, dz);
        drr[c] += dz;
        dxr[c] = v;
      }
    } else {
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float g = gr[c];
        const float dz = yr[c] > 0.0f ? g : 0.0f;
        const float v = dx_of(c, dz);
        drr[c] = dz;
        dxr[c] = v;
      }
    }
  }
}

}  // namespace farsee::cpu_impl
