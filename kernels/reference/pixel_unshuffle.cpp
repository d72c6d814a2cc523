// Reference pixel unshuffle (kernels/pixel_unshuffle.h), PyTorch nn.PixelUnshuffle order:
//   y[n, h, w, c*r*r + i*r + j] = x[n, h*r + i, w*r + j, c]
// One output pixel at a time; a copy, exact for both storage dtypes.
#include "kernels/pixel_unshuffle.h"

#include "kernels/reference/access.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void pixel_unshuffle_fwd(const Context&, int factor, const TensorView& x, const TensorView& y) {
  const int r = factor;
  parallel_pixels(
      y.shape.pixels(),
      [&](int64_t q) {
        const PixelCoord o = pixel_coord(q, y.shape);
        const int64_t yo = pixel_offset(y, q);
        for (int i = 0; i < r; ++i) {
          for (int j = 0; j < r; ++j) {
            const int64_t xo = x.offset(o.n, o.y * r + i, o.x * r + j, 0);
            for (int c = 0; c < x.c(); ++c)
              store(y, yo + int64_t(c) * r * r + i * r + j, load(x, xo + c));
          }
        }
      },
      y.c());
}

}  // namespace farsee::reference
