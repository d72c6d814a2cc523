// Shared pieces of the cpu executor's convolutions (kernels/cpu/conv_bn_act.cpp): the window
// index math (also used by depthwise and max pooling), the im2col gather of a tile of output
// pixels, the conv-output-gradient row loader (reads a pixel-shuffled dy in place) and the fused
// forward epilogue store. fp32 NHWC views (channel slices allowed). The transposed (dgrad) tap
// math is conv_bn_act.cpp's own.
#pragma once

#include <cstdint>

#include "kernels/conv_bn_act.h"
#include "kernels/core/nhwc_index.h"

namespace farsee::cpu_impl {

// Conv output pixel p = (n * oh + oy) * ow + ox.
struct OutPixel {
  int n, y, x;
};
inline OutPixel out_pixel(int64_t p, int oh, int ow) {
  const int x = int(p % ow);
  const int64_t q = p / ow;
  return OutPixel{int(q / oh), int(q % oh), x};
}

// Input coordinate of tap `r` of output coordinate `o` (may lie in the padding): the kernels'
// window geometry (kernels/core/nhwc_index.h window_first).
inline int window_in(int o, int r, int stride, int pad, int dilation) {
  return window_first(o, stride, pad) + r * dilation;
}

// Rows i < rows of dst (leading dimension ld): the receptive field of output pixel p0 + i over the
// taps [tap0, tap1) (tap = r * S + s), each tap's C channels in order, zeros in the padding. With
// the full tap range a row is the KRSC weight row order (r, s, c).
void gather_patches(const ConvShape& conv, const TensorView& x, int oh, int ow, int64_t p0,
                    int rows, int tap0, int tap1, float* dst, int64_t ld);

// dst[k - k0] (k0 <= k < k0 + count) = the gradient of conv-output element (n, oy, ox, k), read
// from dy, the stored output's gradient: pixel-shuffled by t (conv channel k = c*t*t + i*t + j of
// pixel (oy, ox) is dy(n, oy*t + i, ox*t + j, c); k0 and count then multiples of t*t) or plain
// (t = 1).
void load_output_grad_row(const TensorView& dy, int t, int n, int oy, int ox, int k0, int count,
                          float* dst);

// The fused forward epilogue for conv channels [k0, k0 + count) of one conv-output pixel
// (n, oy, ox) from their fp32 accumulators (overwritten: the epilogue runs on them in place):
// v = scale[k] * acc + bias[k] (+ residual) (ReLU), in that order in fp32, stored into y plain (a
// channel slice allowed) or pixel-shuffled by e.shuffle_factor (PyTorch PixelShuffle order; k0 and
// count then multiples of the factor squared).
void store_output_row(const ConvEpilogue& e, const TensorView& y, int n, int oy, int ox, float* acc,
                      int k0, int count);

// The same epilogue on a pixel whose conv channels [k0, k0 + count) the GEMM wrote into y's row
// `row` itself (plain store: e.shuffle_factor == 1; a residual must not overlap y). Nothing to do
// without scale, bias, residual and ReLU (has_epilogue false).
bool has_epilogue(const ConvEpilogue& e);
void epilogue_stored_row(const ConvEpilogue& e, int n, int oy, int ox, float* row, int k0,
                         int count);

}  // namespace farsee::cpu_impl
