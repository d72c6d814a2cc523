// Reference depthwise atrous 3x3 convolution (kernels/depthwise_atrous.h): the reference conv2d
// with groups = C (the [C][3][3] weights are exactly KRSC with one input channel per group),
// padding = dilation, into an fp32 temporary; then y = act(scale * conv + bias) per channel,
// computed in double and rounded once to y's dtype.
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

}  // namespace farsee::reference
