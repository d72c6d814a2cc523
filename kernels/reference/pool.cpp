// Reference max pooling (kernels/pool.h): PyTorch nn.MaxPool2d, floor mode, padding is -inf (never
// the maximum), and a NaN in the window is the result (PyTorch propagates NaN). Per output pixel
// the window max of every channel; exact for both storage dtypes.
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

}  // namespace farsee::reference
