// cpu executor, depthwise atrous 3x3 (kernels/depthwise_atrous.h), fp32 (fp16: the reference).
// Weights re-laid per call as [tap][C] so every inner loop runs over contiguous channels
// (vectorised, `omp simd`; generic x86-64 code: AVX-512/AVX2 clones of the row loops measured
// no faster, bench/RESULTS.md); OpenMP over rows of output pixels (forward), of input pixels
// (bwd_data) or fixed row segments (bwd_weight).
//   fwd:         acc[c] = sum over the 9 taps (r, s order) of x * w in fp32, then
//                scale * acc + bias, ReLU.
//   bwd_data:    a gather per input pixel over the taps (r, s order) whose output pixel exists:
//                each dx pixel written once, no scatter, no atomics.
//   bwd_weight:  the N * OH output rows (n, oy) cut into min(16, N * OH) contiguous segments (a
//                function of the shape only); each segment's fp32 partial [9][C] sums its pixels in
//                order, the partials are summed in segment order and added to dw once: bitwise
//                reproducible for any thread count.
#include "kernels/depthwise_atrous.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/conv_tiles.h"
#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {
namespace {

// weight [C][9] -> [9][C].
std::vector<float> taps_by_channel(const float* weight, int C) {
  std::vector<float> wt(size_t(9) * C);
  for (int c = 0; c < C; ++c) {
    for (int tap = 0; tap < 9; ++tap) wt[size_t(tap) * C + c] = weight[c * 9 + tap];
  }
  return wt;
}

// Input coordinate of tap r of output coordinate o (3x3, pad = dilation): the conv window math.
inline int tap_in(int o, int r, const DepthwiseParams& p) {
  return window_in(o, r, p.stride, p.dilation, p.dilation);
}

// Calls tap_fn(tap, x_pixel) for each tap (r * 3 + s) of output pixel (n, oy, ox) whose input
// pixel lies inside x: the window walk the forward and the weight gradient share.
template <typename TapFn>
inline void for_each_inside_tap(const DepthwiseParams& p, const TensorView& x, int n, int oy,
                                int ox, TapFn tap_fn) {
  const float* xs = x.ptr<const float>();
  for (int r = 0; r < 3; ++r) {
    const int iy = tap_in(oy, r, p);
    if (iy < 0 || iy >= x.h()) continue;
    for (int s = 0; s < 3; ++s) {
      const int ix = tap_in(ox, s, p);
      if (ix < 0 || ix >= x.w()) continue;
      tap_fn(r * 3 + s, xs + x.offset(n, iy, ix, 0));
    }
  }
}

// One output row (n, oy) of the forward.
void depthwise_fwd_row(const DepthwiseParams& p, const TensorView& x, const float* wt,
                       const float* scale, const float* bias, const TensorView& y, int n, int oy,
                       float* acc) {
  const int C = x.c();
  float* ys = y.ptr<float>();
  for (int ox = 0; ox < y.w(); ++ox) {
    for (int c = 0; c < C; ++c) acc[c] = 0.0f;
    for_each_inside_tap(p, x, n, oy, ox, [&](int tap, const float* xv) {
      const float* wv = wt + size_t(tap) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) acc[c] += xv[c] * wv[c];
    });
    float* out = ys + y.offset(n, oy, ox, 0);
    const bool relu = p.relu;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      float v = acc[c] * (scale != nullptr ? scale[c] : 1.0f) + (bias != nullptr ? bias[c] : 0.0f);
      out[c] = (relu && v < 0.0f) ? 0.0f : v;  // std::max(v, 0): a NaN or -0 passes
    }
  }
}

// Runs row_fn(row, acc) for every row in [0, rows) on the OpenMP threads (dynamic: a core shared
// with another process does not hold half the rows), each thread with its own C-float scratch.
template <typename RowFn>
void for_each_row(int64_t rows, int64_t visits, int C, RowFn row_fn) {
#pragma omp parallel if (worth_threads_elements(visits))
  {
    std::vector<float> acc(static_cast<size_t>(C));
#pragma omp for schedule(dynamic)
    for (int64_t row = 0; row < rows; ++row) row_fn(row, acc.data());
  }
}

}  // namespace

void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::depthwise_atrous_fwd, ctx, p, x, weight, scale,
                               bias, y))
    return;
  const int C = x.c();
  const std::vector<float> wt = taps_by_channel(weight, C);
  const int64_t out_rows = int64_t(y.n()) * y.h();
  for_each_row(out_rows, out_rows * y.w() * C * 9, C, [&](int64_t row, float* acc) {
    depthwise_fwd_row(p, x, wt.data(), scale, bias, y, int(row / y.h()), int(row % y.h()), acc);
  });
}

namespace {

// One input row (n, iy) of the backward data pass.
void depthwise_bwd_data_row(const DepthwiseParams& p, const TensorView& dy, const float* wt,
                            const TensorView& dx, bool accumulate, int n, int iy, float* acc) {
  const int C = dx.c();
  const float* g = dy.ptr<const float>();
  float* dxs = dx.ptr<float>();
  for (int ix = 0; ix < dx.w(); ++ix) {
    for (int c = 0; c < C; ++c) acc[c] = 0.0f;
    for (int r = 0; r < 3; ++r) {
      const int ty = iy + p.dilation - r * p.dilation;  // = oy * stride
      if (ty < 0 || ty % p.stride != 0 || ty / p.stride >= dy.h()) continue;
      for (int s = 0; s < 3; ++s) {
        const int tx = ix + p.dilation - s * p.dilation;
        if (tx < 0 || tx % p.stride != 0 || tx / p.stride >= dy.w()) continue;
        const float* gv = g + dy.offset(n, ty / p.stride, tx / p.stride, 0);
        const float* wv = wt + size_t(r * 3 + s) * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) acc[c] += gv[c] * wv[c];
      }
    }
    float* out = dxs + dx.offset(n, iy, ix, 0);
    if (accumulate) {
#pragma omp simd
      for (int c = 0; c < C; ++c) out[c] += acc[c];
    } else {
      std::copy(acc, acc + C, out);
    }
  }
}

// Output rows [r0, r1) of the weight gradient into one segment's partial [9][C].
void depthwise_bwd_weight_rows(const DepthwiseParams& p, const TensorView& x, const TensorView& dy,
                               int64_t r0, int64_t r1, float* part) {
  const int C = x.c();
  const float* g = dy.ptr<const float>();
  for (int64_t row = r0; row < r1; ++row) {
    const int n = int(row / dy.h()), oy = int(row % dy.h());
    for (int ox = 0; ox < dy.w(); ++ox) {
      const float* gv = g + dy.offset(n, oy, ox, 0);
      for_each_inside_tap(p, x, n, oy, ox, [&](int tap, const float* xv) {
        float* pv = part + size_t(tap) * C;
#pragma omp simd
        for (int c = 0; c < C; ++c) pv[c] += gv[c] * xv[c];
      });
    }
  }
}

}  // namespace

void depthwise_atrous_bwd_data(FARSEE_DEPTHWISE_ATROUS_BWD_DATA_ARGS) {
  if (ran_reference_unless_f32(dx.dtype, reference::depthwise_atrous_bwd_data, ctx, p, dy, weight,
                               dx, accumulate))
    return;
  const int C = dx.c();
  const std::vector<float> wt = taps_by_channel(weight, C);
  const int64_t in_rows = int64_t(dx.n()) * dx.h();
  for_each_row(in_rows, in_rows * dx.w() * C * 9, C, [&](int64_t row, float* acc) {
    depthwise_bwd_data_row(p, dy, wt.data(), dx, accumulate, int(row / dx.h()), int(row % dx.h()),
                           acc);
  });
}

void depthwise_atrous_bwd_weight(FARSEE_DEPTHWISE_ATROUS_BWD_WEIGHT_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::depthwise_atrous_bwd_weight, ctx, p, x, dy, dw,
                               workspace, workspace_bytes))
    return;
  const int C = x.c();
  const int64_t out_rows = int64_t(dy.n()) * dy.h();
  constexpr int64_t kMaxSegments = 16;
  const int segments = int(std::min<int64_t>(kMaxSegments, out_rows));
  std::vector<float> partial(size_t(segments) * 9 * C, 0.0f);
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(out_rows * dy.w() * C * 9))
  for (int seg = 0; seg < segments; ++seg) {
    depthwise_bwd_weight_rows(p, x, dy, seg * out_rows / segments, (seg + 1) * out_rows / segments,
                              partial.data() + size_t(seg) * 9 * C);
  }
  for (int c = 0; c < C; ++c) {
    for (int tap = 0; tap < 9; ++tap) {
      float s = 0.0f;
      for (int seg = 0; seg < segments; ++seg) s += partial[(size_t(seg) * 9 + tap) * C + c];
      dw[c * 9 + tap] += s;
    }
  }
}

void depthwise_atrous_branches_fwd(FARSEE_DEPTHWISE_ATROUS_BRANCHES_FWD_ARGS) {
  run_depthwise_branches_one_by_one(ctx, b, cpu_impl::depthwise_atrous_fwd);
}

}  // namespace farsee::cpu_impl
