// cpu executor, max pooling (kernels/pool.h). fp32 forward: per output pixel the window maximum
// of every channel with contiguous-channel inner loops (PyTorch's NaN rule: a NaN replaces the
// running maximum and stays), OpenMP over output rows. Exact (no arithmetic). fp16 and the
// backward: the reference (its scan-order argmax scatter per image; measured below the noise of
// a training step).
#include "kernels/pool.h"

#include <cmath>
#include <limits>
#include <vector>

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
#pragma omp parallel for schedule(static) if (out_rows * y.w() * C > 32768)
  for (int64_t row = 0; row < out_rows; ++row) {
    const int n = int(row / y.h()), oy = int(row % y.h());
    for (int ox = 0; ox < y.w(); ++ox) {
      float* best = ys + y.offset(n, oy, ox, 0);
      for (int c = 0; c < C; ++c) best[c] = -std::numeric_limits<float>::infinity();
      for (int r = 0; r < p.kernel; ++r) {
        const int iy = oy * p.stride - p.pad + r;
        if (iy < 0 || iy >= x.h()) continue;
        for (int s = 0; s < p.kernel; ++s) {
          const int ix = ox * p.stride - p.pad + s;
          if (ix < 0 || ix >= x.w()) continue;
          const float* v = xs + x.offset(n, iy, ix, 0);
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            const float b = best[c];
            best[c] = (b == b && (v[c] > b || v[c] != v[c])) ? v[c] : b;
          }
        }
      }
    }
  }
}

void max_pool_bwd(FARSEE_MAX_POOL_BWD_ARGS) {
  reference::max_pool_bwd(ctx, p, x, dy, dx);
}

}  // namespace farsee::cpu_impl
