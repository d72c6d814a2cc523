// cpu executor, max pooling (kernels/pool.h), fp32 (fp16: the reference).
// Forward: per output pixel the window maximum of every channel with contiguous-channel inner
// loops (PyTorch's NaN rule: a NaN replaces the running maximum and stays), OpenMP over output
// rows. Exact (no arithmetic).
// Backward: PyTorch's argmax rule per window (scan order, first strictly greater, a NaN wins, the
// index starts at the window's first in-image input), dy scattered there in float; OpenMP over
// blocks of 16 channels, each block's windows in order (deterministic, no atomics).
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/conv_tiles.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void max_pool_fwd(FARSEE_MAX_POOL_FWD_ARGS) {
  if (x.dtype != DType::F32) {
    reference::max_pool_fwd(ctx, p, x, y);
    return;
  }
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

void max_pool_bwd(FARSEE_MAX_POOL_BWD_ARGS) {
  if (x.dtype != DType::F32) {
    reference::max_pool_bwd(ctx, p, x, dy, dx);
    return;
  }
  // Channel blocks are independent: each block scatters dy into its own dx channels, windows in
  // (n, oy, ox) order (the reference's order; float sums), so no two threads touch one element.
  const int C = x.c();
  constexpr int kBlock = 16;
  const int blocks = (C + kBlock - 1) / kBlock;
  const float* xs = x.ptr<const float>();
  const float* g = dy.ptr<const float>();
  float* d = dx.ptr<float>();
#pragma omp parallel for schedule( \
    dynamic) if (worth_threads_elements(dy.shape.pixels() * C * p.kernel * p.kernel))
  for (int b = 0; b < blocks; ++b) {
    const int c0 = b * kBlock, cn = std::min(kBlock, C - c0);
    for (int64_t q = 0; q < x.shape.pixels(); ++q) {
      float* dr = d + q * dx.pixel_stride + c0;
      for (int i = 0; i < cn; ++i) dr[i] = 0.0f;
    }
    for (int n = 0; n < dy.n(); ++n) {
      for (int oy = 0; oy < dy.h(); ++oy) {
        for (int ox = 0; ox < dy.w(); ++ox) {
          // at: the chosen input's pixel index within the image, starting at the window's first
          // in-image input (PyTorch's initial index, value -inf); the scan as branch-free
          // selects on 32-bit lanes (vectorises).
          const int iy0 = std::max(0, window_in(oy, 0, p.stride, p.pad, 1));
          const int ix0 = std::max(0, window_in(ox, 0, p.stride, p.pad, 1));
          float best[kBlock];
          int32_t at[kBlock];
          for (int i = 0; i < kBlock; ++i) {
            best[i] = -std::numeric_limits<float>::infinity();
            at[i] = int32_t(iy0 * x.w() + ix0);
          }
          for (int r = 0; r < p.kernel; ++r) {
            const int iy = window_in(oy, r, p.stride, p.pad, 1);
            if (iy < 0 || iy >= x.h()) continue;
            for (int s = 0; s < p.kernel; ++s) {
              const int ix = window_in(ox, s, p.stride, p.pad, 1);
              if (ix < 0 || ix >= x.w()) continue;
              const int32_t here = int32_t(iy * x.w() + ix);
              const float* v = xs + x.offset(n, iy, ix, c0);
#pragma omp simd
              for (int i = 0; i < cn; ++i) {
                const float u = v[i];
                const bool take = (u > best[i]) | (u != u);
                best[i] = take ? u : best[i];
                at[i] = take ? here : at[i];
              }
            }
          }
          const float* gr = g + dy.offset(n, oy, ox, c0);
          const int64_t image = int64_t(n) * x.h() * x.w();
          for (int i = 0; i < cn; ++i) d[(image + at[i]) * dx.pixel_stride + c0 + i] += gr[i];
        }
      }
    }
  }
}

}  // namespace farsee::cpu_impl
