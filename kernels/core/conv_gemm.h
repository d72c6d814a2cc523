// Index math of the implicit-GEMM convolution kernels (kernels/conv_bn_act.cu), shared by the
// forward, dgrad and wgrad kernels.
//
// A conv kernel computes D[m][n] = sum_red A[m][red] * B[n][red]: m a pixel of the result image,
// red = (r, s, c) a filter tap and a channel of the SOURCE image (the gathered operand), read at
//   source coordinate  t = origin(m) + tap * dilation,  origin(m) = m_coord * stride - pad
// and, when phase > 1, only where t is a multiple of phase (source coordinate t / phase; the
// other taps read zero). Forward: source = x, result = y, phase 1. Dgrad (the transposed conv):
// source = dy, result = dx, stride 1, pad = -conv.pad, dilation = -conv.dilation,
// phase = conv.stride: dx[iy] gathers dy[(iy + pad - r*dil) / stride] over the taps where that
// division is exact (the valid-tap condition; no zero-inserted copy of dy).
// The source may be read through a pixel shuffle by `shuffle` (dgrad of a sub-pixel conv: its dy
// is the shuffled output; conv channel k = c*t*t + i*t + j of pixel (n, y, x) is stored at
// (n, y*t + i, x*t + j, c)), and the result may be stored through one (ConvOutputIndex).
//
// Pixel indices are 32-bit (the host checks), element offsets 64-bit.
#pragma once

#include <cstdint>

#include "kernels/core/conv_shape.h"
#include "kernels/core/hd.h"
#include "kernels/core/nhwc_index.h"

namespace farsee {

// Convolution geometry as a trivially copyable kernel argument (see the top of this file).
struct ConvGeometry {
  int in_h, in_w, in_c;  // source image (conv output before any shuffle, for dgrad's dy)
  int64_t in_pixel_stride;
  int out_h, out_w;  // result image (before any pixel shuffle)
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int phase_h, phase_w;  // source subsampling (1, or the conv stride for dgrad)
  int shuffle;           // source read through a pixel shuffle by this factor (1: plain)
  int K;                 // GEMM N: output channels (forward), input channels (dgrad)
  int M;                 // GEMM M: result pixels N * out_h * out_w
  int reduction;         // R * S * in_c
  int w_row;             // elements per weight row (KRSCRows / CRSKRows)
};

// Per-row state of an A (source) loader: where the window of result pixel m starts.
struct WindowOrigin {
  int image_base;  // n * in_h * in_w: pixel index of the source image's first pixel
  int y0, x0;      // coordinate of tap 0 (may be negative or past the end: padding)
};
// Rows past the last result pixel get an origin that no tap can bring into the image.
constexpr int kNoPixel = -(1 << 29);
FARSEE_HD WindowOrigin window_origin(const ConvGeometry& g, int m) {
  if (m >= g.M) return WindowOrigin{0, kNoPixel, kNoPixel};
  const PixelCoord o = pixel_coord(m, g.out_h, g.out_w);
  return WindowOrigin{o.n * g.in_h * g.in_w, window_first(o.y, g.stride_h, g.pad_h),
                      window_first(o.x, g.stride_w, g.pad_w)};
}

// Source coordinate of tap coordinate t (see the top), or -1 outside the image / off-phase.
FARSEE_HD int source_coord(int t, int phase, int size) {
  if (t < 0) return -1;
  if (phase > 1) {
    if (t % phase != 0) return -1;
    t /= phase;
  }
  return t < size ? t : -1;
}

// Source pixel of tap (r, s) of the window, or -1 (padding, off-phase). With a shuffled source
// this is the stored pixel index of sub-position (0, 0) (source_offset adds the rest).
FARSEE_HD int window_pixel(const ConvGeometry& g, const WindowOrigin& o, int r, int s) {
  const int iy = source_coord(o.y0 + r * g.dilation_h, g.phase_h, g.in_h);
  const int ix = source_coord(o.x0 + s * g.dilation_w, g.phase_w, g.in_w);
  if (iy < 0 || ix < 0) return -1;
  const int t = g.shuffle;
  if (t == 1) return o.image_base + iy * g.in_w + ix;
  // Stored image (in_h*t) x (in_w*t): pixel (n, iy*t, ix*t).
  return t * (t * (o.image_base + iy * g.in_w) + ix);
}

// Element offset of channel c of source pixel p (from window_pixel).
FARSEE_HD int64_t source_offset(const ConvGeometry& g, int p, int c) {
  const int t = g.shuffle;
  if (t == 1) return int64_t(p) * g.in_pixel_stride + c;
  const int t2 = t * t;
  const int cs = c / t2, ij = c - cs * t2;
  const int i = ij / t, j = ij - i * t;
  return (int64_t(p) + i * g.in_w * t + j) * g.in_pixel_stride + cs;
}

// Position (r, s, c) of a flat reduction index, and its step to the next index.
struct ReductionCursor {
  int r, s, c;
  FARSEE_HD void advance(const ConvGeometry& g) {
    if (++c == g.in_c) {
      c = 0;
      if (++s == g.kernel_w) {
        s = 0;
        ++r;
      }
    }
  }
};
FARSEE_HD ReductionCursor reduction_cursor(const ConvGeometry& g, int red) {
  const int tap = red / g.in_c;
  const int r = tap / g.kernel_w;
  return ReductionCursor{r, tap - r * g.kernel_w, red - tap * g.in_c};
}

// Element (m, k) of a conv output [M][K] (m = (n, y, x) of out_h x out_w) as stored: plain, in a
// channel slice, or pixel-shuffled by `shuffle` into [N, out_h*t, out_w*t, K/t^2]. Used to store
// the forward result and to read the output gradient dy in wgrad.
template <typename T>
struct ConvOutputIndex {
  T* y;
  int64_t y_pixel_stride;
  int y_h, y_w;  // stored image
  int out_h, out_w;
  int shuffle;

  FARSEE_HD T* element(int m, int k) const {
    if (shuffle == 1) return y + int64_t(m) * y_pixel_stride + k;
    const int t2 = shuffle * shuffle;
    const int c = k / t2, ij = k - c * t2;
    const int i = ij / shuffle, j = ij - i * shuffle;
    const PixelCoord o = pixel_coord(m, out_h, out_w);
    return y +
           ((int64_t(o.n) * y_h + o.y * shuffle + i) * y_w + o.x * shuffle + j) * y_pixel_stride +
           c;
  }
};

// Reduction tiles [first, last) of split `z` of `splits` (split-K, wgrad's pixel chunks).
struct TileRange {
  int first, last;
};
FARSEE_HD TileRange split_range(int tiles, int splits, int z) {
  return TileRange{int(int64_t(tiles) * z / splits), int(int64_t(tiles) * (z + 1) / splits)};
}

}  // namespace farsee
