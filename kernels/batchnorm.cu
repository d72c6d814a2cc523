// BatchNorm training forward and backward kernels (kernels/batchnorm.h: semantics, views).
//
// Algorithm. Forward = 3 launches: stats (partials) -> stats final -> apply. Backward = 3
//   launches: reduce (partials) -> final -> apply. Synchronised BN (a BatchNormSync, batchnorm.h)
//   adds one launch to each: the final kernel stops at this rank's per-channel values, which go
//   to the host and come back merged over the ranks (in double, by the hook), and a per-channel
//   "global" kernel finishes from them as the final kernel does from one rank's.
//   * Statistics: one-pass Welford. Each thread runs Welford's update (n, mean, M2) over its
//     pixels, the block merges its threads' triples with Chan's formula, the chunk partial
//     (mean, M2) goes to the workspace and the final kernel merges the chunks the same way.
//     Why Welford and not two-pass: x is read once for the statistics (the op is memory-bound:
//     stats + apply = 2 reads of x instead of 3), yet, unlike sum / sum-of-squares, nothing
//     cancels: every merge works on deviations from the running means, so an offset |mean| >> std
//     costs no accuracy beyond the fp32 rounding of x - mean itself (the tests use offsets of
//     ~10-40 std and compare with the double two-pass reference).
//     The per-pixel division is 1/n, shared by the V channels of a thread.
//   * Backward reduce: per channel sum dz and sum dz * (x - mean) (dz = ReLU-masked dy, the mask
//     read from y's sign), plain fp32 sums per thread, fixed tree in the block, chunk partials,
//     fixed-order sum over chunks; the final kernel turns them into dgamma/dbeta (+=) and the
//     coefficients of dx = ka * dz + kb * (x - mean) + kc.
//   * Apply kernels: elementwise, per-channel coefficients from the workspace in registers.
// Determinism: the pixels are cut into batchnorm_pixel_chunks() (shape only); inside a chunk
//   pixel p goes to row lane (p - begin) % kBatchNormRows, each lane walks its pixels in order,
//   lanes merge in the fixed tree of reduce_rows_fixed_order() (kernels/core/fixed_order_reduce.h),
//   chunks merge in a fixed order (lane l of the final kernel takes chunks l, l + 32, ... in turn,
//   then the lanes merge in a fixed tree). No atomics: bitwise reproducible run to run, independent
//   of scheduling.
// Tiling. Reduce kernels: grid (channel blocks, chunks), block (channel groups <= 16) x 16 rows;
//   a thread owns V consecutive channels (16-byte packs: 4 floats / 8 halves when every view
//   allows, else V = 1), so a warp reads 2 pixels x 16 groups of contiguous channels. Final
//   kernels: 8 channels x 32 chunk lanes per block (short serial chains: <= 32 merges a thread at
//   the net's shapes; their loads unrolled 4 deep). Apply kernels: the per-pixel mapping of
//   pixel_channel_launch() (kernels/core/nhwc_index.h), grid-stride over pixels.
// Layout: NHWC, every view may be a channel slice. Workspace (fp32): partial A [chunks][C],
//   partial B [chunks][C], coefficients [4][C].
// Precision: fp32 or fp16 storage, all arithmetic and statistics fp32; invstd = 1 / sqrtf
//   (correctly rounded, not rsqrtf). Running stats: PyTorch's update with M2 / (M - 1). Pixel
//   counts are integers (exact past 2^24; batchnorm.h, count arithmetic). Compiled with
//   --fmad=false (kernels/CMakeLists.txt): the apply passes and the running statistics round each
//   product and sum as written, as emu does (tests/kernels/batchnorm_test.cpp checks them bitwise).
// Fused: forward: normalise + gamma/beta + residual add + ReLU in one pass; backward: ReLU mask
//   in both passes, dx and the residual's gradient (dresidual = dz, or +=) in one pass.
#include <cmath>
#include <initializer_list>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/core/fixed_order_reduce.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/pixel_channel_kernel.h"
#include "kernels/core/runtime.h"
#include "kernels/core/vec.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kRows = kBatchNormRows;
constexpr int kMaxGroupsPerBlock = 16;
constexpr int kFinalChannels = 8;
constexpr int kFinalLanes = 32;
constexpr int kApplyPixelsPerThread = 4;

// ---- shared device pieces ----

struct PixelRange {
  int begin, end;
};
FARSEE_HD PixelRange chunk_range(int chunk, int per_chunk, int pixels) {
  const int begin = chunk * per_chunk;
  return PixelRange{begin, min(begin + per_chunk, pixels)};
}

// Welford state of V channels over n pixels (an integer count: batchnorm.h, count arithmetic).
template <int V>
struct Welford {
  int64_t n;
  float mean[V];
  float m2[V];
};
template <int V>
FARSEE_DEVICE void welford_clear(Welford<V>& w) {
  w.n = 0;
#pragma unroll
  for (int i = 0; i < V; ++i) w.mean[i] = w.m2[i] = 0.0f;
}
// Chan et al.'s merge: a <- a + b.
struct WelfordMerge {
  template <int V>
  FARSEE_DEVICE void operator()(Welford<V>& a, const Welford<V>& b) const {
    if (b.n == 0) return;
    const int64_t n = a.n + b.n;
    const float wb = batchnorm_count_ratio(b.n, n);
    const float cross = batchnorm_count_mul(a.n, wb);  // a.n * b.n / n
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float d = b.mean[i] - a.mean[i];
      a.mean[i] += d * wb;
      a.m2[i] += b.m2[i] + d * d * cross;
    }
    a.n = n;
  }
};

// Two per-channel sums of V channels.
template <int V>
struct Sums2 {
  float a[V];
  float b[V];
};
struct Sums2Merge {
  template <int V>
  FARSEE_DEVICE void operator()(Sums2<V>& s, const Sums2<V>& o) const {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      s.a[i] += o.a[i];
      s.b[i] += o.b[i];
    }
  }
};

// The gradient that reaches BN through the ReLU: dy where the output is positive, else exactly 0
// (a select, as PyTorch's threshold_backward).
FARSEE_HD float through_relu(float dy, float y, bool relu) {
  return (!relu || y > 0.0f) ? dy : 0.0f;
}

// V per-channel values starting at c0.
template <int V>
FARSEE_DEVICE void load_channels(const float* a, int c0, float (&out)[V]) {
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = a[c0 + i];
}

// ---- forward ----

template <typename T, int V>
__global__ void __launch_bounds__(kMaxGroupsPerBlock* kRows)
    bn_stats_kernel(Nhwc<const T> x, int per_chunk, float* part_mean, float* part_m2) {
  const int c0 = int(blockIdx.x * blockDim.x + threadIdx.x) * V;
  const bool active = c0 < x.c;
  const PixelRange r = chunk_range(int(blockIdx.y), per_chunk, int(x.pixels()));
  Welford<V> w;
  welford_clear(w);
  if (active) {  // an inactive column keeps n = 0: its merges are no-ops
#pragma unroll 4
    for (int p = r.begin + int(threadIdx.y); p < r.end; p += kRows) {
      float v[V];
      load_as_float<V>(x.pixel(p) + c0, v);
      ++w.n;
      const float inv_n = batchnorm_count_div(1.0f, w.n);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const float d = v[i] - w.mean[i];
        w.mean[i] += d * inv_n;
        w.m2[i] += d * (v[i] - w.mean[i]);
      }
    }
  }
  reduce_rows_fixed_order<kRows>(w, dynamic_smem<Welford<V>>(), WelfordMerge{});
  if (threadIdx.y == 0 && active) {
    const int64_t o = int64_t(blockIdx.y) * x.c + c0;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      part_mean[o + i] = w.mean[i];
      part_m2[o + i] = w.m2[i];
    }
  }
}

struct StatsFinalArgs {
  const float *part_mean, *part_m2;
  int channels, chunks, per_chunk, pixels;
  const float *gamma, *beta;
  float eps, momentum;
  float *save_mean, *save_invstd, *running_mean, *running_var;
  float* coef;         // [3][C]: mean, scale = gamma * invstd, shift = beta
  float* local_stats;  // synchronised BN: [2][C] this rank's mean and m2 (and nothing else)
};

// The end of a final kernel for channel c, with this rank's two per-channel values: Finish over
// this rank's pixels, or (synchronised BN: `local` not null) the values into `local` ([2][C]) for
// the host to merge with the other ranks', bn_global_kernel finishing afterwards.
template <typename Finish, typename Args>
FARSEE_DEVICE void finish_or_hand_over(const Args& a, float* local, int c, float first,
                                       float second) {
  if (local) {
    local[c] = first;
    local[a.channels + c] = second;
    return;
  }
  Finish{}(a, c, first, second, a.pixels);
}

// Channel c's statistics over `count` pixels into the saved and running statistics and the
// coefficients of the apply pass.
struct FinishStatistics {
  FARSEE_DEVICE void operator()(const StatsFinalArgs& a, int c, float mean, float m2_in,
                                int64_t count) const;
};
FARSEE_DEVICE void FinishStatistics::operator()(const StatsFinalArgs& a, int c, float mean,
                                                float m2_in, int64_t count) const {
  const float m2 = fmaxf(m2_in, 0.0f);
  const float var = batchnorm_count_div(m2, count);
  const float invstd = 1.0f / sqrtf(var + a.eps);
  a.save_mean[c] = mean;
  a.save_invstd[c] = invstd;
  const float m = a.momentum;
  a.running_mean[c] = m * mean + (1.0f - m) * a.running_mean[c];
  a.running_var[c] = m * batchnorm_count_div(m2, count - 1) + (1.0f - m) * a.running_var[c];
  a.coef[c] = mean;
  a.coef[a.channels + c] = (a.gamma ? a.gamma[c] : 1.0f) * invstd;
  a.coef[2 * a.channels + c] = a.beta ? a.beta[c] : 0.0f;
}

__global__ void __launch_bounds__(kFinalChannels* kFinalLanes)
    bn_stats_final_kernel(StatsFinalArgs a) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  const bool active = c < a.channels;
  Welford<1> w;
  welford_clear(w);
#pragma unroll 4
  for (int k = int(threadIdx.y); k < a.chunks; k += kFinalLanes) {
    if (!active) break;
    const PixelRange r = chunk_range(k, a.per_chunk, a.pixels);
    const int64_t o = int64_t(k) * a.channels + c;
    Welford<1> b;
    b.n = r.end - r.begin;
    b.mean[0] = a.part_mean[o];
    b.m2[0] = a.part_m2[o];
    WelfordMerge{}(w, b);
  }
  reduce_rows_fixed_order<kFinalLanes>(w, dynamic_smem<Welford<1>>(), WelfordMerge{});
  if (threadIdx.y != 0 || !active) return;
  finish_or_hand_over<FinishStatistics>(a, a.local_stats, c, w.mean[0], w.m2[0]);
}

template <typename T, int V>
__global__ void __launch_bounds__(256) bn_apply_kernel(Nhwc<const T> x, Nhwc<const T> residual,
                                                       Nhwc<T> y, const float* coef, bool relu) {
  const int c0 = thread_first_channel<V>(y.c);
  if (c0 < 0) return;
  float mean[V], scale[V], shift[V];
  load_channels<V>(coef, c0, mean);
  load_channels<V>(coef + y.c, c0, scale);
  load_channels<V>(coef + 2 * y.c, c0, shift);
  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(y.pixels())) {
    float v[V];
    load_as_float<V>(x.pixel(p) + c0, v);
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = (v[i] - mean[i]) * scale[i] + shift[i];
    if (residual.data != nullptr) {
      float r[V];
      load_as_float<V>(residual.pixel(p) + c0, r);
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] += r[i];
    }
    if (relu) {
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = v[i] <= 0.0f ? 0.0f : v[i];  // NaN passes, as torch.relu
    }
    store_from_float<V>(y.pixel(p) + c0, v);
  }
}

// ---- backward ----

template <typename T, int V>
__global__ void __launch_bounds__(kMaxGroupsPerBlock* kRows)
    bn_bwd_reduce_kernel(Nhwc<const T> x, Nhwc<const T> y, Nhwc<const T> dy, bool relu,
                         const float* mean, int per_chunk, float* part_dz, float* part_dzxc) {
  const int c0 = int(blockIdx.x * blockDim.x + threadIdx.x) * V;
  const bool active = c0 < x.c;
  const PixelRange r = chunk_range(int(blockIdx.y), per_chunk, int(x.pixels()));
  Sums2<V> s;
  float m[V];
#pragma unroll
  for (int i = 0; i < V; ++i) s.a[i] = s.b[i] = m[i] = 0.0f;
  if (active) {
    load_channels<V>(mean, c0, m);
#pragma unroll 4
    for (int p = r.begin + int(threadIdx.y); p < r.end; p += kRows) {
      float g[V], yv[V], xv[V];
      load_as_float<V>(dy.pixel(p) + c0, g);
      if (relu) load_as_float<V>(y.pixel(p) + c0, yv);
      load_as_float<V>(x.pixel(p) + c0, xv);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const float dz = through_relu(g[i], relu ? yv[i] : 0.0f, relu);
        s.a[i] += dz;
        s.b[i] += dz * (xv[i] - m[i]);
      }
    }
  }
  reduce_rows_fixed_order<kRows>(s, dynamic_smem<Sums2<V>>(), Sums2Merge{});
  if (threadIdx.y == 0 && active) {
    const int64_t o = int64_t(blockIdx.y) * x.c + c0;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      part_dz[o + i] = s.a[i];
      part_dzxc[o + i] = s.b[i];
    }
  }
}

struct BwdFinalArgs {
  const float *part_dz, *part_dzxc;
  int channels, chunks, pixels;
  const float *save_mean, *save_invstd, *gamma;
  float *dgamma, *dbeta;
  float* coef;        // [4][C]: mean, ka, kb, kc with dx = ka * dz + kb * (x - mean) + kc
  float* local_sums;  // synchronised BN: [2][C] this rank's sum dz and sum dz * (x - mean)
};

// Channel c's coefficients of dx from the sums over `count` pixels.
struct BackwardCoefficients {
  FARSEE_DEVICE void operator()(const BwdFinalArgs& a, int c, float sum_dz, float sum_dz_xc,
                                int64_t count) const;
};
FARSEE_DEVICE void BackwardCoefficients::operator()(const BwdFinalArgs& a, int c, float sum_dz,
                                                    float sum_dz_xc, int64_t count) const {
  const float invstd = a.save_invstd[c];
  const float sum_dz_xhat = sum_dz_xc * invstd;
  const float inv_m = batchnorm_count_div(1.0f, count);
  const float ka = (a.gamma ? a.gamma[c] : 1.0f) * invstd;
  a.coef[c] = a.save_mean[c];
  a.coef[a.channels + c] = ka;
  a.coef[2 * a.channels + c] = -ka * invstd * sum_dz_xhat * inv_m;
  a.coef[3 * a.channels + c] = -ka * sum_dz * inv_m;
}

__global__ void __launch_bounds__(kFinalChannels* kFinalLanes) bn_bwd_final_kernel(BwdFinalArgs a) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  const bool active = c < a.channels;
  Sums2<1> s;
  s.a[0] = s.b[0] = 0.0f;
#pragma unroll 4
  for (int k = int(threadIdx.y); k < a.chunks; k += kFinalLanes) {
    if (!active) break;
    const int64_t o = int64_t(k) * a.channels + c;
    s.a[0] += a.part_dz[o];
    s.b[0] += a.part_dzxc[o];
  }
  reduce_rows_fixed_order<kFinalLanes>(s, dynamic_smem<Sums2<1>>(), Sums2Merge{});
  if (threadIdx.y != 0 || !active) return;
  // This rank's sums are its share of the parameter gradients (also when synchronised).
  const float sum_dz_xhat = s.b[0] * a.save_invstd[c];
  if (a.dgamma) a.dgamma[c] += sum_dz_xhat;
  if (a.dbeta) a.dbeta[c] += s.a[0];
  finish_or_hand_over<BackwardCoefficients>(a, a.local_sums, c, s.a[0], s.b[0]);
}

// Synchronised BN: the global batch's two per-channel values `global` ([2][C]; the forward's mean
// and m2, the backward's sum dz and sum dz * (x - mean); over `count` pixels) finish as one rank's
// do (Finish: FinishStatistics, BackwardCoefficients). global may alias a.coef + 2C: each thread
// reads its channel's values before it writes.
template <typename Args, typename Finish>
__global__ void __launch_bounds__(256)
    bn_global_kernel(Args a, const float* global, int64_t count) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= a.channels) return;
  const float first = global[c], second = global[a.channels + c];
  Finish{}(a, c, first, second, count);
}

template <typename T, int V>
__global__ void __launch_bounds__(256)
    bn_bwd_apply_kernel(Nhwc<const T> x, Nhwc<const T> y, Nhwc<const T> dy, Nhwc<T> dx,
                        Nhwc<T> dres, bool relu, bool accumulate, const float* coef) {
  const int c0 = thread_first_channel<V>(dx.c);
  if (c0 < 0) return;
  float mean[V], ka[V], kb[V], kc[V];
  load_channels<V>(coef, c0, mean);
  load_channels<V>(coef + dx.c, c0, ka);
  load_channels<V>(coef + 2 * dx.c, c0, kb);
  load_channels<V>(coef + 3 * dx.c, c0, kc);
  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(dx.pixels())) {
    float dz[V], yv[V], xv[V], out[V];
    load_as_float<V>(dy.pixel(p) + c0, dz);
    if (relu) load_as_float<V>(y.pixel(p) + c0, yv);
    load_as_float<V>(x.pixel(p) + c0, xv);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      dz[i] = through_relu(dz[i], relu ? yv[i] : 0.0f, relu);
      out[i] = ka[i] * dz[i] + kb[i] * (xv[i] - mean[i]) + kc[i];
    }
    // Every input of this element is loaded: dx or dresidual may alias dy.
    if (dres.data != nullptr) {
      if (accumulate) {
        float old[V];
        load_as_float<V>(dres.pixel(p) + c0, old);
#pragma unroll
        for (int i = 0; i < V; ++i) dz[i] += old[i];
      }
      store_from_float<V>(dres.pixel(p) + c0, dz);
    }
    store_from_float<V>(dx.pixel(p) + c0, out);
  }
}

// ---- host side ----

struct ReduceLaunch {
  dim3 grid, block;
};
ReduceLaunch reduce_launch(int channel_groups, int chunks) {
  const int channel_blocks = (channel_groups + kMaxGroupsPerBlock - 1) / kMaxGroupsPerBlock;
  const int width = (channel_groups + channel_blocks - 1) / channel_blocks;
  return ReduceLaunch{dim3(unsigned(channel_blocks), unsigned(chunks)),
                      dim3(unsigned(width), unsigned(kRows))};
}
dim3 final_grid(int channels) {
  return dim3(unsigned((channels + kFinalChannels - 1) / kFinalChannels));
}

// Views of one call; null data = absent. The vector width is 16 bytes when all present views
// allow it.
bool all_packs_fit(std::initializer_list<const TensorView*> views, int width) {
  for (const TensorView* v : views) {
    if (v->data != nullptr && !packs_fit(*v, width)) return false;
  }
  return true;
}

float* workspace_floats(void* workspace) {
  return static_cast<float*>(workspace);
}

// Synchronised BN: this rank's two per-channel arrays `local` ([2][C], executor memory) to the
// host, `merge` (the BatchNormSync) turns them and the count into the global batch's, which go
// back to `global` ([2][C], executor memory). Returns the global count. The stream is idle after
// it (the host array dies here).
template <typename Merge>
int64_t merge_across_ranks(const Context& ctx, const float* local, float* global, int C,
                           int64_t count, Merge&& merge) {
  std::vector<float> values(2 * size_t(C));
  rt::copy_to_host(ctx, values.data(), local, values.size() * sizeof(float));  // waits
  std::vector<double> a(values.begin(), values.begin() + C), b(values.begin() + C, values.end());
  merge(&count, a.data(), b.data());
  for (int c = 0; c < C; ++c) {
    values[size_t(c)] = float(a[size_t(c)]);
    values[size_t(C + c)] = float(b[size_t(c)]);
  }
  rt::copy_to_device(ctx, global, values.data(), values.size() * sizeof(float));
  rt::synchronize(ctx);
  return count;
}

dim3 channel_grid(int channels) {
  return dim3(unsigned((channels + 255) / 256));
}

}  // namespace

void batchnorm_train_fwd(FARSEE_BATCHNORM_TRAIN_FWD_ARGS) {
  (void)workspace_bytes;  // checked by the entry point
  const int C = x.c();
  const int pixels = int(x.shape.pixels());
  const BatchNormChunks chunks = batchnorm_pixel_chunks(x.shape);
  float* part_mean = workspace_floats(workspace);
  float* part_m2 = part_mean + int64_t(chunks.count) * C;
  float* coef = part_m2 + int64_t(chunks.count) * C;
  const bool vec = all_packs_fit({&x, &y, &residual}, vector16_width(x.dtype));
  with_storage_vector(x.dtype, vec, [&](auto sv) {
    using T = typename decltype(sv)::type;
    constexpr int V = decltype(sv)::width;
    const ReduceLaunch l = reduce_launch(C / V, chunks.count);
    auto stats = bn_stats_kernel<T, V>;
    const size_t stats_smem = reduce_rows_smem_bytes<kRows, Welford<V>>(int(l.block.x));
    FARSEE_LAUNCH(stats, l.grid, l.block, stats_smem, ctx.stream, nhwc<const T>(x),
                  chunks.pixels_per_chunk, part_mean, part_m2);
    const StatsFinalArgs fa{part_mean,
                            part_m2,
                            C,
                            chunks.count,
                            chunks.pixels_per_chunk,
                            pixels,
                            gamma,
                            beta,
                            args.eps,
                            args.momentum,
                            save_mean,
                            save_invstd,
                            running_mean,
                            running_var,
                            coef,
                            args.sync ? coef : nullptr};
    auto final_kernel = bn_stats_final_kernel;
    const size_t final_smem = reduce_rows_smem_bytes<kFinalLanes, Welford<1>>(kFinalChannels);
    FARSEE_LAUNCH(final_kernel, final_grid(C), dim3(kFinalChannels, kFinalLanes), final_smem,
                  ctx.stream, fa);
    if (args.sync) {
      float* global = coef + 2 * int64_t(C);
      const int64_t count = merge_across_ranks(ctx, coef, global, C, pixels,
                                               [&](int64_t* n, double* mean, double* m2) {
                                                 args.sync->merge_statistics(C, n, mean, m2);
                                               });
      auto global_kernel = bn_global_kernel<StatsFinalArgs, FinishStatistics>;
      FARSEE_LAUNCH(global_kernel, channel_grid(C), dim3(256), 0, ctx.stream, fa,
                    static_cast<const float*>(global), count);
    }
    const PixelChannelLaunch a = pixel_channel_launch(pixels, C / V, kApplyPixelsPerThread);
    auto apply = bn_apply_kernel<T, V>;
    FARSEE_LAUNCH(apply, a.grid, a.block, 0, ctx.stream, nhwc<const T>(x), nhwc<const T>(residual),
                  nhwc<T>(y), static_cast<const float*>(coef), relu);
  });
}

void batchnorm_train_bwd(FARSEE_BATCHNORM_TRAIN_BWD_ARGS) {
  (void)workspace_bytes;  // checked by the entry point
  const int C = x.c();
  const int pixels = int(x.shape.pixels());
  const BatchNormChunks chunks = batchnorm_pixel_chunks(x.shape);
  float* part_dz = workspace_floats(workspace);
  float* part_dzxc = part_dz + int64_t(chunks.count) * C;
  float* coef = part_dzxc + int64_t(chunks.count) * C;
  const TensorView y_used = relu ? y : TensorView{};
  const bool vec = all_packs_fit({&x, &y_used, &dy, &dx, &dresidual}, vector16_width(x.dtype));
  with_storage_vector(x.dtype, vec, [&](auto sv) {
    using T = typename decltype(sv)::type;
    constexpr int V = decltype(sv)::width;
    const ReduceLaunch l = reduce_launch(C / V, chunks.count);
    auto reduce = bn_bwd_reduce_kernel<T, V>;
    const size_t reduce_smem = reduce_rows_smem_bytes<kRows, Sums2<V>>(int(l.block.x));
    FARSEE_LAUNCH(reduce, l.grid, l.block, reduce_smem, ctx.stream, nhwc<const T>(x),
                  nhwc<const T>(y_used), nhwc<const T>(dy), relu, save_mean,
                  chunks.pixels_per_chunk, part_dz, part_dzxc);
    const BwdFinalArgs fa{part_dz, part_dzxc, C,           chunks.count,
                          pixels,  save_mean, save_invstd, gamma,
                          dgamma,  dbeta,     coef,        sync ? coef : nullptr};
    auto final_kernel = bn_bwd_final_kernel;
    const size_t final_smem = reduce_rows_smem_bytes<kFinalLanes, Sums2<1>>(kFinalChannels);
    FARSEE_LAUNCH(final_kernel, final_grid(C), dim3(kFinalChannels, kFinalLanes), final_smem,
                  ctx.stream, fa);
    if (sync) {
      float* global = coef + 2 * int64_t(C);
      const int64_t count = merge_across_ranks(
          ctx, coef, global, C, pixels,
          [&](int64_t* n, double* a, double* b) { sync->merge_gradient_sums(C, n, a, b); });
      auto global_kernel = bn_global_kernel<BwdFinalArgs, BackwardCoefficients>;
      FARSEE_LAUNCH(global_kernel, channel_grid(C), dim3(256), 0, ctx.stream, fa,
                    static_cast<const float*>(global), count);
    }
    const PixelChannelLaunch a = pixel_channel_launch(pixels, C / V, kApplyPixelsPerThread);
    auto apply = bn_bwd_apply_kernel<T, V>;
    FARSEE_LAUNCH(apply, a.grid, a.block, 0, ctx.stream, nhwc<const T>(x), nhwc<const T>(y_used),
                  nhwc<const T>(dy), nhwc<T>(dx), nhwc<T>(dresidual), relu, accumulate_dresidual,
                  static_cast<const float*>(coef));
  });
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
