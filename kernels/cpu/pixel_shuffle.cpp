// cpu executor, pixel_shuffle (kernels/pixel_shuffle.h), fp32 (fp16: the reference): y(n, oy, ox,
// c) = x(n, oy / r, ox / r, c*r*r + (oy % r)*r + ox % r), PyTorch's PixelShuffle order; a copy, no
// arithmetic. OpenMP over output rows (the training graph's up1 shuffle; inference fuses the
// shuffle into the conv's store).
#include "kernels/pixel_shuffle.h"

#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void pixel_shuffle_fwd(FARSEE_PIXEL_SHUFFLE_FWD_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::pixel_shuffle_fwd, ctx, factor, x, y)) return;
  const int r = factor, rr = factor * factor, C = y.c();
  const float* xs = x.ptr<const float>();
  float* ys = y.ptr<float>();
  const int64_t rows = int64_t(y.n()) * y.h();
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(y.shape.pixels() * C))
  for (int64_t row = 0; row < rows; ++row) {
    const int n = int(row / y.h()), oy = int(row % y.h());
    for (int ox = 0; ox < y.w(); ++ox) {
      const float* src = xs + x.offset(n, oy / r, ox / r, (oy % r) * r + ox % r);
      float* dst = ys + y.offset(n, oy, ox, 0);
      for (int c = 0; c < C; ++c) dst[c] = src[int64_t(c) * rr];
    }
  }
}

}  // namespace farsee::cpu_impl
