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

#include <vector>

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

// ---- backward (groups = 1) ----
// dy is the gradient of the conv's stored output: shape [N, OH, OW, K], or, when
// shuffle_factor = t > 1, of its pixel shuffle [N, OH*t, OW*t, K/t^2] (PyTorch PixelShuffle
// order), read through the mapping: conv channel k = c*t*t + i*t + j of conv-output pixel
// (n, oy, ox) is dy(n, oy*t + i, ox*t + j, c).
//
// Element offset in dy of conv-output element (n, oy, ox, k) (the shuffle mapping above).
int64_t conv_output_grad_offset(const TensorView& dy, int shuffle_factor, int n, int oy, int ox,
                                int k);

// dx = sum_{r, s, k} dy[n, oy, ox, k] * w[k, r, s, c] over the taps with
//   oy*sh - ph + r*dh = iy, ox*sw - pw + s*dw = ix   (the transpose of conv2d_fwd),
// summed in double, rounded once to dx's dtype; accumulate: dx += (in double, rounded once).
// w: KRSC view {K, R, S, C}; dx: x's shape (may be a channel slice).
void conv2d_bwd_data(const ConvShape& conv, const TensorView& dy, const TensorView& w,
                     const TensorView& dx, int shuffle_factor = 1, bool accumulate = false);

// dw[k][r][s][c] += sum_{n, oy, ox} dy[n, oy, ox, k] * x[n, oy*sh - ph + r*dh, ox*sw - pw + s*dw,
// c] (fp32 KRSC [K*R*S*C]); db[k] += sum dy[n, oy, ox, k] (fp32 [K], or null). The sums run in
// double (im2col chunks and dgemm) and each is added to the fp32 value once.
void conv2d_bwd_weight(const ConvShape& conv, const TensorView& x, const TensorView& dy, int K,
                       float* dw, float* db, int shuffle_factor = 1);

// ---- TF32 mode (ConvOptions::tf32) ----
// The tf32 reference is these same functions on operands rounded to TF32 first (round_to_tf32 of
// kernels/core/dtype.h: nearest, ties away, 10 mantissa bits, as cvt.rna.tf32.f32), products and
// sums still in double: the exact value of the tensor-core math, whose only other error is its
// fp32 accumulation. tf32_rounded_copy: a dense fp32 copy of v (any dtype, slices included) with
// every element rounded, its data in `storage`.
TensorView tf32_rounded_copy(const TensorView& v, std::vector<float>& storage);

}  // namespace farsee::reference
