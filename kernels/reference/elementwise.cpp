#include "kernels/reference/elementwise.h"

#include <cstring>

#include "kernels/elementwise.h"
#include "kernels/reference/access.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void relu_fwd(const TensorView& x, const TensorView& y) {
  require_shape(x, "relu_fwd: x", x.shape);
  require_shape(y, "relu_fwd: y", x.shape);
  parallel_pixels(
      x.shape.pixels(),
      [&](int64_t p) {
        const int64_t xo = pixel_offset(x, p), yo = pixel_offset(y, p);
        for (int c = 0; c < x.c(); ++c) {
          const float v = load(x, xo + c);
          store(y, yo + c, v < 0.0f ? 0.0f : v);  // a NaN compares false and passes through
        }
      },
      x.c());
}

void add_fwd(const TensorView& a, const TensorView& b, const TensorView& y) {
  require_shape(a, "add_fwd: a", a.shape);
  require_shape(b, "add_fwd: b", a.shape);
  require_shape(y, "add_fwd: y", a.shape);
  parallel_pixels(
      a.shape.pixels(),
      [&](int64_t p) {
        const int64_t ao = pixel_offset(a, p), bo = pixel_offset(b, p), yo = pixel_offset(y, p);
        for (int c = 0; c < a.c(); ++c) store(y, yo + c, load(a, ao + c) + load(b, bo + c));
      },
      a.c());
}

void relu_bwd(const TensorView& y, const TensorView& dy, const TensorView& dx) {
  require_shape(y, "relu_bwd: y", y.shape);
  require_shape(dy, "relu_bwd: dy", y.shape);
  require_shape(dx, "relu_bwd: dx", y.shape);
  parallel_pixels(
      y.shape.pixels(),
      [&](int64_t p) {
        const int64_t yo = pixel_offset(y, p), go = pixel_offset(dy, p), xo = pixel_offset(dx, p);
        for (int c = 0; c < y.c(); ++c)
          store(dx, xo + c, load(y, yo + c) > 0.0f ? load(dy, go + c) : 0.0f);
      },
      y.c());
}

void fill_zero(const Context&, void* data, size_t bytes) {
  std::memset(data, 0, bytes);
}

}  // namespace farsee::reference
