// Reference depthwise atrous 3x3 convolution (kernels/depthwise_atrous.h): the reference conv2d
// with groups = C (the [C][3][3] weights are exactly KRSC with one input channel per group),
// padding = dilation, into an fp32 temporary; then y = act(scale * conv + bias) per channel,
// computed in double and rounded once to y's dtype.
// Backward: direct loops over (output pixel, tap, channel) in double: bwd_data scatters
// dy * w into dx (per image), bwd_weight sums dy * x per (channel, tap); results rounded once
// (dx written or added to; dw added to).
#include "kernels/depthwise_atrous.h"

#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/conv2d.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void depthwise_atrous_fwd(const Context&, const DepthwiseParams& p, const TensorView& x,
                          const float* weight, const float* scale, const float* bias,
                          const TensorView& y) {
  const int C = x.c();
  const ConvShape conv = square_conv(3, p.stride, p.dilation, C);
  const TensorView w = make_view(const_cast<float*>(weight), DType::F32, Shape4{C, 3, 3, 1});
  std::vector<float> acc(size_t(y.shape.elements()));
  const TensorView acc_view = make_view(acc.data(), DType::F32, y.shape);
  conv2d_fwd(conv, x, w, nullptr, acc_view);
  parallel_pixels(
      y.shape.pixels(),
      [&](int64_t q) {
        const int64_t yo = pixel_offset(y, q);
        for (int c = 0; c < C; ++c) {
          const double s = scale ? double(scale[c]) : 1.0;
          const double b = bias ? double(bias[c]) : 0.0;
          double v = s * double(acc[size_t(q) * C + c]) + b;
          if (p.relu && v < 0.0) v = 0.0;  // NaN passes through
          store(y, yo + c, float(v));
        }
      },
      C);
}

namespace {

// Calls f(oy, ox, r, s, iy, ix) for every in-image tap of every output pixel of image geometry
// (dy: output, x: input), in (oy, ox, r, s) order.
template <typename F>
void for_each_tap(const DepthwiseParams& p, const Shape4& y, const Shape4& x, F&& f) {
  for (int oy = 0; oy < y.h; ++oy) {
    for (int ox = 0; ox < y.w; ++ox) {
      for (int r = 0; r < 3; ++r) {
        const int iy = window_coord(oy, r, p.stride, p.dilation, p.dilation);
        if (!in_range(iy, x.h)) continue;
        for (int s = 0; s < 3; ++s) {
          const int ix = window_coord(ox, s, p.stride, p.dilation, p.dilation);
          if (!in_range(ix, x.w)) continue;
          f(oy, ox, r, s, iy, ix);
        }
      }
    }
  }
}

}  // namespace

void depthwise_atrous_bwd_data(const Context&, const DepthwiseParams& p, const TensorView& dy,
                               const float* weight, const TensorView& dx, bool accumulate) {
  const int C = dx.c();
  const int64_t image = int64_t(dx.h()) * dx.w() * C;
  std::vector<double> acc(size_t(dx.n()) * size_t(image), 0.0);
  parallel_pixels(
      dx.n(),
      [&](int64_t n) {
        double* a = acc.data() + n * image;
        std::vector<double> g(static_cast<size_t>(C));
        for_each_tap(p, dy.shape, dx.shape, [&](int oy, int ox, int r, int s, int iy, int ix) {
          load_row(dy, dy.offset(int(n), oy, ox, 0), C, g.data());
          double* d = a + (int64_t(iy) * dx.w() + ix) * C;
          for (int c = 0; c < C; ++c) d[c] += g[c] * double(weight[c * 9 + r * 3 + s]);
        });
      },
      dy.shape.pixels() / dy.n() * C * 9);
  parallel_pixels(dx.shape.pixels(), [&](int64_t q) {
    const int64_t xo = pixel_offset(dx, q);
    for (int c = 0; c < C; ++c) {
      double v = acc[size_t(q) * C + c];
      if (accumulate) v += double(load(dx, xo + c));
      store(dx, xo + c, float(v));
    }
  });
}

void depthwise_atrous_bwd_weight(const Context&, const DepthwiseParams& p, const TensorView& x,
                                 const TensorView& dy, float* dw, void*, size_t) {
  const int C = x.c();
  std::vector<double> acc(size_t(C) * 9, 0.0);
  std::vector<double> g(static_cast<size_t>(C)), v(static_cast<size_t>(C));
  for (int n = 0; n < x.n(); ++n) {
    for_each_tap(p, dy.shape, x.shape, [&](int oy, int ox, int r, int s, int iy, int ix) {
      load_row(dy, dy.offset(n, oy, ox, 0), C, g.data());
      load_row(x, x.offset(n, iy, ix, 0), C, v.data());
      for (int c = 0; c < C; ++c) acc[size_t(c) * 9 + r * 3 + s] += g[c] * v[c];
    });
  }
  for (size_t i = 0; i < acc.size(); ++i) dw[i] = float(double(dw[i]) + acc[i]);
}

void depthwise_atrous_branches_fwd(FARSEE_DEPTHWISE_ATROUS_BRANCHES_FWD_ARGS) {
  run_depthwise_branches_one_by_one(ctx, b, reference::depthwise_atrous_fwd);
}

}  // namespace farsee::reference
