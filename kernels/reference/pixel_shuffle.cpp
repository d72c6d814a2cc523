// Reference pixel shuffle (kernels/pixel_shuffle.h), PyTorch nn.PixelShuffle channel order:
//   y[n, h*r + i, w*r + j, c] = x[n, h, w, c*r*r + i*r + j]
// One output pixel at a time; a copy, exact for both storage dtypes.
#include "kernels/pixel_shuffle.h"

#include "kernels/reference/access.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void pixel_shuffle_fwd(const Context&, int factor, const TensorView& x, const TensorView& y) {
  const int r = factor;
  parallel_pixels(
      y.shape.pixels(),
      [&](int64_t q) {
        const PixelCoord o = pixel_coord(q, y.shape);
        const int i = o.y % r, j = o.x % r;
        const int64_t xo = x.offset(o.n, o.y / r, o.x / r, i * r + j);
        const int64_t yo = pixel_offset(y, q);
        for (int c = 0; c < y.c(); ++c) store(y, yo + c, load(x, xo + int64_t(c) * r * r));
      },
      y.c());
}

}  // namespace farsee::reference
