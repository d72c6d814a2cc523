// Reference max pooling (kernels/pool.h): PyTorch nn.MaxPool2d, floor mode, padding is -inf (never
// the maximum), and a NaN in the window is the result (PyTorch propagates NaN). Per output pixel
// the window max of every channel; exact for both storage dtypes.
// Backward: PyTorch's max_pool2d_with_indices rule picks each window's input (scan order, first
// strictly greater, a NaN replaces the running maximum, the index starts at the window's first
// in-image input); dy is scattered there, summed in double per image, dx rounded once.
#include "kernels/pool.h"

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void max_pool_fwd(const Context&, const MaxPoolParams& p, const TensorView& x,
                  const TensorView& y) {
  const int C = x.c();
  parallel_pixels(
      y.shape.pixels(),
      [&](int64_t q) {
        const PixelCoord o = pixel_coord(q, y.shape);
        std::vector<float> best(size_t(C), -std::numeric_limits<float>::infinity());
        for (int r = 0; r < p.kernel; ++r) {
          const int iy = window_coord(o.y, r, p.stride, p.pad, 1);
          if (!in_range(iy, x.h())) continue;
          for (int s = 0; s < p.kernel; ++s) {
            const int ix = window_coord(o.x, s, p.stride, p.pad, 1);
            if (!in_range(ix, x.w())) continue;
            const int64_t xo = x.offset(o.n, iy, ix, 0);
            for (int c = 0; c < C; ++c) {
              const float v = load(x, xo + c);
              if (!std::isnan(best[c]) && (v > best[c] || std::isnan(v))) best[c] = v;
            }
          }
        }
        const int64_t yo = pixel_offset(y, q);
        for (int c = 0; c < C; ++c) store(y, yo + c, best[c]);
      },
      int64_t(C) * p.kernel * p.kernel);
}

void max_pool_bwd(const Context&, const MaxPoolParams& p, const TensorView& x, const TensorView& dy,
                  const TensorView& dx) {
  const int C = x.c();
  const int64_t image = int64_t(x.h()) * x.w() * C;
  std::vector<double> acc(size_t(x.n()) * size_t(image), 0.0);
  parallel_pixels(
      x.n(),
      [&](int64_t n) {
        double* a = acc.data() + n * image;
        for (int oy = 0; oy < dy.h(); ++oy) {
          for (int ox = 0; ox < dy.w(); ++ox) {
            for (int c = 0; c < C; ++c) {
              float best = -std::numeric_limits<float>::infinity();
              int64_t best_at = -1;  // (iy * W + ix) of the chosen input
              for (int r = 0; r < p.kernel; ++r) {
                const int iy = window_coord(oy, r, p.stride, p.pad, 1);
                if (!in_range(iy, x.h())) continue;
                for (int s = 0; s < p.kernel; ++s) {
                  const int ix = window_coord(ox, s, p.stride, p.pad, 1);
                  if (!in_range(ix, x.w())) continue;
                  const float v = at(x, int(n), iy, ix, c);
                  const int64_t here = int64_t(iy) * x.w() + ix;
                  if (best_at < 0) best_at = here;  // PyTorch's initial index, value -inf
                  if (v > best || std::isnan(v)) {
                    best = v;
                    best_at = here;
                  }
                }
              }
              // best_at < 0 is impossible: pad <= kernel / 2 puts an input in every window.
              a[best_at * C + c] += double(at(dy, int(n), oy, ox, c));
            }
          }
        }
      },
      int64_t(dy.h()) * dy.w() * C * p.kernel * p.kernel);
  parallel_pixels(x.shape.pixels(), [&](int64_t q) {
    const int64_t xo = pixel_offset(dx, q);
    for (int c = 0; c < C; ++c) store(dx, xo + c, float(acc[size_t(q) * C + c]));
  });
}

}  // namespace farsee::reference
