// Reference 2-D convolution, PyTorch nn.Conv2d semantics (cross-correlation, zero padding): any
// kernel size, stride, padding, dilation and groups.
//
//   y[n, oy, ox, k] = bias[k] + sum_{r, s, c} x[n, oy*sh - ph + r*dh, ox*sw - pw + s*dw, g*Cg + c]
//                                             * w[k, r, s, c],       g = k / (K / groups)
//
// Layout: x and y NHWC (either may be a channel slice of a wider buffer), weights a TensorView of
// shape {n = K, h = R, w = S, c = C / groups} (KRSC). Storage fp32 or fp16 for each of x, w and y
// independently (kernels/reference/access.h).
// Precision: every product and sum in double, rounded once to the output dtype. Products of two
// floats are exact in double and a double sum of the net's reduction lengths (<= 4608 terms) is
// accurate to ~1e-13 relative, so the result is the correctly rounded fp32 value in practically
// every element: a kernel test's whole error budget is then the kernel's own, independent of the
// reference's summation order.
// Speed: groups whose GEMM is wide enough go through im2col (in double, in bounded chunks of
// output pixels) and OpenBLAS dgemm; the rest (depthwise) through a direct per-pixel loop over
// the same patch rows, OpenMP over output pixels.
#pragma once

#include "kernels/core/conv_shape.h"
#include "kernels/core/tensor.h"

namespace farsee::reference {

// Shape of y for input shape x and `out_channels` = K.
Shape4 conv2d_output_shape(const ConvShape& conv, Shape4 x, int out_channels);

// bias: [K] or null (no bias). y must not overlap x.
void conv2d_fwd(const ConvShape& conv, const TensorView& x, const TensorView& w, const float* bias,
                const TensorView& y);

// Which loop computes the convolution. Both give the same double-accumulated result (up to the
// summation order); Auto picks GEMM when each group has enough output channels to amortise a
// BLAS call. Tests force each one to check they agree.
enum class Conv2dAlgo { Auto, Direct, Gemm };
void conv2d_fwd(Conv2dAlgo algo, const ConvShape& conv, const TensorView& x, const TensorView& w,
                const float* bias, const TensorView& y);

}  // namespace farsee::reference
