// cpu executor, resize + argmax (kernels/resize_argmax.h), fp32 logits (fp16: the reference).
// Fused, per output pixel: its four input taps mixed over the channels with the taps of
// kernels/core/bilinear.h (the same float index math and nesting order as the kernels:
// bilinear_tap, bilinear_mix) into a C-float scratch, then its argmax (first maximum wins, a NaN
// wins and stops: torch.argmax) -> uint8. Never materialises the full-resolution logits. OpenMP
// over output rows.
#include "kernels/resize_argmax.h"

#include <vector>

#include "kernels/core/bilinear.h"
#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void resize_argmax_fwd(FARSEE_RESIZE_ARGMAX_FWD_ARGS) {
  if (ran_reference_unless_f32(logits.dtype, reference::resize_argmax_fwd, ctx, align_corners,
                               logits, out_h, out_w, labels))
    return;
  const int C = logits.c(), H = logits.h(), W = logits.w();
  const float sy = bilinear_scale(H, out_h, align_corners);
  const float sx = bilinear_scale(W, out_w, align_corners);
  std::vector<BilinearTap> tx(static_cast<size_t>(out_w));
  for (int x = 0; x < out_w; ++x) tx[size_t(x)] = bilinear_tap(x, sx, W, align_corners);
  const float* l = logits.ptr<const float>();
  const int64_t rows = int64_t(logits.n()) * out_h;
#pragma omp parallel if (worth_threads_elements(rows * out_w * C * 4))
  {
    std::vector<float> v(static_cast<size_t>(C));
#pragma omp for schedule(dynamic)
    for (int64_t row = 0; row < rows; ++row) {
      const int n = int(row / out_h), y = int(row % out_h);
      const BilinearTap ty = bilinear_tap(y, sy, H, align_corners);
      uint8_t* out = labels + row * out_w;
      for (int x = 0; x < out_w; ++x) {
        const BilinearTap& t = tx[size_t(x)];
        const float* a = l + logits.offset(n, ty.i0, t.i0, 0);
        const float* b = l + logits.offset(n, ty.i0, t.i1, 0);
        const float* c = l + logits.offset(n, ty.i1, t.i0, 0);
        const float* d = l + logits.offset(n, ty.i1, t.i1, 0);
        float* vv = v.data();
#pragma omp simd
        for (int ch = 0; ch < C; ++ch) vv[ch] = bilinear_mix(ty, t, a[ch], b[ch], c[ch], d[ch]);
        float best = vv[0];
        int best_c = 0;
        for (int ch = 1; ch < C && best == best; ++ch) {
          if (vv[ch] > best || vv[ch] != vv[ch]) {
            best = vv[ch];
            best_c = ch;
          }
        }
        out[x] = uint8_t(best_c);
      }
    }
  }
}

}  // namespace farsee::cpu_impl
