#include "kernels/reference/resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/index.h"

namespace farsee::reference {
// One axis of PyTorch's bilinear sampling (see resize.h for the rules and their source).
std::vector<LinearTap> linear_taps(int in, int out, bool align_corners) {
  std::vector<LinearTap> taps(static_cast<size_t>(out));
  float scale;
  if (align_corners) {
    scale = out > 1 ? float(in - 1) / float(out - 1) : 0.0f;
  } else {
    scale = float(in) / float(out);
  }
  for (int d = 0; d < out; ++d) {
    if (in == out) {
      taps[d] = LinearTap{d, d, 1.0f, 0.0f};
      continue;
    }
    // Source coordinate, clamp, floor and lambda in double from the float scale; lambda stored
    // as float, its complement taken in float (what PyTorch computes; see resize.h).
    double src = align_corners ? double(scale) * d : double(scale) * (d + 0.5) - 0.5;
    if (src < 0.0) src = 0.0;
    const int i0 = std::min(int(std::floor(src)), in - 1);
    const float l1 = float(std::min(std::max(src - i0, 0.0), 1.0));
    taps[d] = LinearTap{i0, i0 < in - 1 ? i0 + 1 : i0, 1.0f - l1, l1};
  }
  return taps;
}

void resize_bilinear_fwd(bool align_corners, const TensorView& x, const TensorView& y) {
  require_shape(x, "resize_bilinear_fwd: x", x.shape);
  FARSEE_REQUIRE(x.n() >= 1 && x.h() >= 1 && x.w() >= 1 && x.c() >= 1,
                 "resize_bilinear_fwd: x has empty shape " << to_string(x.shape));
  FARSEE_REQUIRE(y.h() >= 1 && y.w() >= 1,
                 "resize_bilinear_fwd: y has empty output size " << y.h() << "x" << y.w());
  require_shape(y, "resize_bilinear_fwd: y", Shape4{x.n(), y.h(), y.w(), x.c()});
  const std::vector<LinearTap> ty = linear_taps(x.h(), y.h(), align_corners);
  const std::vector<LinearTap> tx = linear_taps(x.w(), y.w(), align_corners);
  const int C = x.c();
  parallel_pixels(
      y.shape.pixels(),
      [&](int64_t q) {
        const PixelCoord o = pixel_coord(q, y.shape);
        const LinearTap& v = ty[o.y];
        const LinearTap& h = tx[o.x];
        const int64_t o00 = x.offset(o.n, v.i0, h.i0, 0), o01 = x.offset(o.n, v.i0, h.i1, 0);
        const int64_t o10 = x.offset(o.n, v.i1, h.i0, 0), o11 = x.offset(o.n, v.i1, h.i1, 0);
        const int64_t yo = pixel_offset(y, q);
        for (int c = 0; c < C; ++c) {
          const double top = double(h.l0) * load(x, o00 + c) + double(h.l1) * load(x, o01 + c);
          const double bottom = double(h.l0) * load(x, o10 + c) + double(h.l1) * load(x, o11 + c);
          store(y, yo + c, float(double(v.l0) * top + double(v.l1) * bottom));
        }
      },
      4 * C);
}

void resize_bilinear_bwd(bool align_corners, const TensorView& dy, const TensorView& dx) {
  FARSEE_REQUIRE(dy.data != nullptr && dx.data != nullptr, "resize_bilinear_bwd: null tensor");
  FARSEE_REQUIRE(dx.n() >= 1 && dx.h() >= 1 && dx.w() >= 1 && dx.c() >= 1,
                 "resize_bilinear_bwd: dx has empty shape " << to_string(dx.shape));
  FARSEE_REQUIRE(dy.h() >= 1 && dy.w() >= 1,
                 "resize_bilinear_bwd: dy has empty size " << dy.h() << "x" << dy.w());
  require_shape(dx, "resize_bilinear_bwd: dx", dx.shape);
  require_shape(dy, "resize_bilinear_bwd: dy", Shape4{dx.n(), dy.h(), dy.w(), dx.c()});
  const std::vector<LinearTap> ty = linear_taps(dx.h(), dy.h(), align_corners);
  const std::vector<LinearTap> tx = linear_taps(dx.w(), dy.w(), align_corners);
  const int C = dx.c();
  const int64_t image = int64_t(dx.h()) * dx.w() * C;
  std::vector<double> acc(size_t(dx.n()) * size_t(image), 0.0);
  // Scatter image by image (images are independent, so the parallel loop is deterministic).
  parallel_pixels(
      dx.n(),
      [&](int64_t n) {
        double* a = acc.data() + n * image;
        std::vector<float> g(static_cast<size_t>(C));
        for (int oy = 0; oy < dy.h(); ++oy) {
          const LinearTap& v = ty[oy];
          for (int ox = 0; ox < dy.w(); ++ox) {
            const LinearTap& h = tx[ox];
            load_row(dy, dy.offset(int(n), oy, ox, 0), C, g.data());
            const int64_t o00 = (int64_t(v.i0) * dx.w() + h.i0) * C;
            const int64_t o01 = (int64_t(v.i0) * dx.w() + h.i1) * C;
            const int64_t o10 = (int64_t(v.i1) * dx.w() + h.i0) * C;
            const int64_t o11 = (int64_t(v.i1) * dx.w() + h.i1) * C;
            const double w00 = double(v.l0) * h.l0, w01 = double(v.l0) * h.l1;
            const double w10 = double(v.l1) * h.l0, w11 = double(v.l1) * h.l1;
            for (int c = 0; c < C; ++c) {
              a[o00 + c] += w00 * g[c];
              a[o01 + c] += w01 * g[c];
              a[o10 + c] += w10 * g[c];
              a[o11 + c] += w11 * g[c];
            }
          }
        }
      },
      int64_t(dy.h()) * dy.w() * C * 4);
  parallel_pixels(dx.shape.pixels(), [&](int64_t q) {
    const int64_t xo = pixel_offset(dx, q);
    for (int c = 0; c < C; ++c) store(dx, xo + c, float(acc[size_t(q) * C + c]));
  });
}

void argmax_channels(const TensorView& x, uint8_t* labels) {
  require_shape(x, "argmax_channels: x", x.shape);
  FARSEE_REQUIRE(x.c() >= 1 && x.c() <= 256,
                 "argmax_channels: x has " << x.c() << " channels; uint8 labels allow 1..256");
  FARSEE_REQUIRE(labels != nullptr, "argmax_channels: labels is null");
  parallel_pixels(
      x.shape.pixels(),
      [&](int64_t p) {
        const int64_t xo = pixel_offset(x, p);
        float best = load(x, xo);
        int best_c = 0;
        for (int c = 1; c < x.c() && !std::isnan(best); ++c) {
          const float v = load(x, xo + c);
          if (v > best || std::isnan(v)) {
            best = v;
            best_c = c;
          }
        }
        labels[p] = uint8_t(best_c);
      },
      x.c());
}

}  // namespace farsee::reference
