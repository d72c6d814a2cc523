// cpu executor, pixel_unshuffle (kernels/pixel_unshuffle.h; the shuffle's backward), fp32 (fp16:
// the reference): y(n, oy, ox, c*r*r + i*r + j) = x(n, oy*r + i, ox*r + j, c); a copy, no
// arithmetic. OpenMP over output rows, each input row read contiguously.
#include "kernels/pixel_unshuffle.h"

#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void pixel_unshuffle_fwd(FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::pixel_unshuffle_fwd, ctx, factor, x, y)) return;
  const int r = factor, rr = factor * factor, C = x.c();
  const float* xs = x.ptr<const float>();
  float* ys = y.ptr<float>();
  const int64_t rows = int64_t(y.n()) * y.h();
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(x.shape.pixels() * C))
  for (int64_t row = 0; row < rows; ++row) {
    const int n = int(row / y.h()), oy = int(row % y.h());
    for (int ox = 0; ox < y.w(); ++ox) {
      float* dst = ys + y.offset(n, oy, ox, 0);
      for (int i = 0; i < r; ++i) {
        for (int j = 0; j < r; ++j) {
          const float* src = xs + x.offset(n, oy * r + i, ox * r + j, 0);
          float* d = dst + i * r + j;
          for (int c = 0; c < C; ++c) d[int64_t(c) * rr] = src[c];
        }
      }
    }
  }
}

}  // namespace farsee::cpu_impl
