// cpu executor, max pooling (kernels/pool.h), fp32 (fp16: the reference).
// Forward: per output pixel the window maximum of every channel with contiguous-channel inner
// loops (PyTorch's NaN rule: a NaN replaces the running maximum and stays), OpenMP over output
// rows. Exact (no arithmetic).
// Backward: PyTorch's argmax rule per window (scan order, first strictly greater, a NaN wins, the
// index starts at the window's first in-image input) into an index buffer (OpenMP over output
// rows), then every dx element gathers, in float and in (oy, ox) order, the dy of the windows that
// chose it (OpenMP over input rows; no scatter, no atomics: deterministic, and the same sums as a
// scatter in window order). Both passes run over contiguous channels (vectorised); the former
// scatter per block of 16 channels re-read the whole input once per block (cache-bound).
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cpu/conv_tiles.h"
#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void max_pool_fwd(FARSEE_MAX_POOL_FWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::max_pool_fwd, ctx, p, x, y)) return;
  const int C = x.c();
  const int64_t out_rows = int64_t(y.n()) * y.h();
  const float* xs = x.ptr<const float>();
  float* ys = y.ptr<float>();
#pragma omp parallel for schedule( \
    dynamic) if (worth_threads_elements(out_rows * y.w() * C * p.kernel * p.kernel))
  for (int64_t row = 0; row < out_rows; ++row) {
    const int n = int(row / y.h()), oy = int(row % y.h());
    for (int ox = 0; ox < y.w(); ++ox) {
      float* best = ys + y.offset(n, oy, ox, 0);
      for (int c = 0; c < C; ++c) best[c] = -std::numeric_limits<float>::infinity();
      for (int r = 0; r < p.kernel; ++r) {
        const int iy = window_in(oy, r, p.stride, p.pad, 1);
        if (iy < 0 || iy >= x.h()) continue;
        for (int s = 0; s < p.kernel; ++s) {
          const int ix = window_in(ox, s, p.stride, p.pad, 1);
          if (ix < 0 || ix >= x.w()) continue;
          const float* v = xs + x.offset(n, iy, ix, 0);
          // A NaN maximum stays: v > NaN is false, and a NaN v replaces it with a NaN.
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            const float b = best[c], u = v[c];
            best[c] = ((u > b) | (u != u)) ? u : b;
          }
        }
      }
    }
  }
}

namespace {

// Backward pass 1. The chosen input of every output element: at[(n, oy, ox)][c] = iy * W + ix.
// The scan as branch-free selects over contiguous channels (vectorises); OpenMP over output rows.
void max_pool_argmax(const MaxPoolParams& p, const TensorView& x, const TensorView& dy, int32_t* at,
                     bool threads) {
  const int C = x.c(), H = x.h(), W = x.w(), oh = dy.h(), ow = dy.w();
  const float* xs = x.ptr<const float>();
  const int64_t out_rows = int64_t(dy.n()) * oh;
#pragma omp parallel if (threads)
  {
    std::vector<float> best(static_cast<size_t>(C));
    float* b = best.data();
#pragma omp for schedule(dynamic)
    for (int64_t row = 0; row < out_rows; ++row) {
      const int n = int(row / oh), oy = int(row % oh);
      for (int ox = 0; ox < ow; ++ox) {
        int32_t* a = at + (row * ow + ox) * C;
        const int iy0 = std::max(0, window_in(oy, 0, p.stride, p.pad, 1));
        const int ix0 = std::max(0, window_in(ox, 0, p.stride, p.pad, 1));
        const int32_t first = int32_t(iy0 * W + ix0);
        for (int c = 0; c < C; ++c) {
          b[c] = -std::numeric_limits<float>::infinity();
          a[c] = first;
        }
        for (int r = 0; r < p.kernel; ++r) {
          const int iy = window_in(oy, r, p.stride, p.pad, 1);
          if (iy < 0 || iy >= H) continue;
          for (int s = 0; s < p.kernel; ++s) {
            const int ix = window_in(ox, s, p.stride, p.pad, 1);
            if (ix < 0 || ix >= W) continue;
            const int32_t here = int32_t(iy * W + ix);
            const float* v = xs + x.offset(n, iy, ix, 0);
#pragma omp simd
            for (int c = 0; c < C; ++c) {
              const float u = v[c];
              const bool take = (u > b[c]) | (u != u);
              b[c] = take ? u : b[c];
              a[c] = take ? here : a[c];
            }
          }
        }
      }
    }
  }
}

// Backward pass 2. Every dx element gathers the dy of the windows that chose it, in (oy, ox) order
// from 0 (the scatter's order and sums; adding 0 for a window that chose another input leaves the
// sum bitwise as it is: it starts at +0 and never becomes -0). OpenMP over input rows.
void max_pool_gather(const MaxPoolParams& p, const TensorView& dy, const TensorView& dx,
                     const int32_t* at, bool threads) {
  const int C = dx.c(), H = dx.h(), W = dx.w(), oh = dy.h(), ow = dy.w();
  const float* g = dy.ptr<const float>();
  float* d = dx.ptr<float>();
  const int64_t in_rows = int64_t(dx.n()) * H;
  // Output coordinates whose window holds input coordinate i (kernels/core/nhwc_index.h), the last
  // clipped to the output size.
  auto first_window = [&](int i) { return first_window_containing(i, p.kernel, p.stride, p.pad); };
  auto last_window = [&](int i, int out) {
    return std::min(out - 1, last_window_containing(i, p.stride, p.pad));
  };
#pragma omp parallel for schedule(dynamic) if (threads)
  for (int64_t row = 0; row < in_rows; ++row) {
    const int n = int(row / H), iy = int(row % H);
    const int oy0 = first_window(iy), oy1 = last_window(iy, oh);
    for (int ix = 0; ix < W; ++ix) {
      const int ox0 = first_window(ix), ox1 = last_window(ix, ow);
      const int32_t here = int32_t(iy * W + ix);
      float* dr = d + dx.offset(n, iy, ix, 0);
#pragma omp simd
      for (int c = 0; c < C; ++c) dr[c] = 0.0f;
      for (int oy = oy0; oy <= oy1; ++oy) {
        for (int ox = ox0; ox <= ox1; ++ox) {
          const int64_t o = (int64_t(n) * oh + oy) * ow + ox;
          const int32_t* a = at + o * C;
          const float* gr = g + dy.offset(n, oy, ox, 0);
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            const float v = gr[c];  // loaded unconditionally: the select then vectorises
            dr[c] += a[c] == here ? v : 0.0f;
          }
        }
      }
    }
  }
}

}  // namespace

void max_pool_bwd(FARSEE_MAX_POOL_BWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::max_pool_bwd, ctx, p, x, dy, dx)) return;
  const int C = x.c();
  const bool threads = worth_threads_elements(dy.shape.pixels() * C * p.kernel * p.kernel);
  const std::unique_ptr<int32_t[]> at = scratch<int32_t>(size_t(dy.shape.pixels()) * size_t(C));
  max_pool_argmax(p, x, dy, at.get(), threads);
  max_pool_gather(p, dy, dx, at.get(), threads);
}

}  // namespace farsee::cpu_impl
