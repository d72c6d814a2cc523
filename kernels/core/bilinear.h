// Bilinear resampling index math, exactly PyTorch's F.interpolate(mode='bilinear') for both
// align_corners settings (aten/src/ATen/native/UpSample.h: area_pixel_compute_scale,
// area_pixel_compute_source_index, with the accumulation type float). Used by resize_argmax and
// the fused upsample of the loss; shared by host and kernels.
//
// One axis at a time: output coordinate dst reads input coordinates i0 and i1 = min(i0 + 1, in - 1)
// with weights l0 = 1 - l1 and l1 = src - i0, where
//   align_corners:  scale = (in - 1) / (out - 1) (0 when out == 1),  src = scale * dst
//   otherwise:      scale = in / out,  src = max(scale * (dst + 0.5) - 0.5, 0)
// A 2-D sample is l0y * (l0x * v[i0y][i0x] + l1x * v[i0y][i1x]) + l1y * (l0x * v[i1y][i0x] + ...),
// in this nesting order, as PyTorch evaluates it, each product and sum rounded on its own: the
// host builds do not contract (-ffp-contract=off) and the kernels are compiled with --fmad=false
// (kernels/CMakeLists.txt), so host, emu and GPU give the same bits.
#pragma once

#include <cmath>

#include "kernels/core/hd.h"

namespace farsee {

FARSEE_HD float bilinear_scale(int in_size, int out_size, bool align_corners) {
  if (align_corners) return out_size > 1 ? float(in_size - 1) / float(out_size - 1) : 0.0f;
  return float(in_size) / float(out_size);
}

struct BilinearTap {
  int i0, i1;    // input coordinates
  float l0, l1;  // their weights (l0 + l1 = 1)
};

FARSEE_HD BilinearTap bilinear_tap(int dst, float scale, int in_size, bool align_corners) {
  // One explicit fma (not a*b - c left to the compiler): host, emu and GPU builds then compute
  // bitwise the same taps (the resize kernel sizes its shared memory with host-computed taps).
  float src = align_corners ? scale * float(dst) : fmaf(scale, float(dst) + 0.5f, -0.5f);
  if (src < 0.0f) src = 0.0f;
  int i0 = int(src);  // src >= 0: truncation is floor
  if (i0 > in_size - 1) i0 = in_size - 1;
  const int i1 = i0 < in_size - 1 ? i0 + 1 : i0;
  const float l1 = src - float(i0);
  return BilinearTap{i0, i1, 1.0f - l1, l1};
}

// Horizontal-then-vertical interpolation of four samples (a = [i0y][i0x], b = [i0y][i1x],
// c = [i1y][i0x], d = [i1y][i1x]).
FARSEE_HD float bilinear_mix(const BilinearTap& ty, const BilinearTap& tx, float a, float b,
                             float c, float d) {
  return ty.l0 * (tx.l0 * a + tx.l1 * b) + ty.l1 * (tx.l0 * c + tx.l1 * d);
}

}  // namespace farsee

namespace farsee {

// Weight with which a tap reads input coordinate i (0 if neither tap does; l0 + l1 when both
// taps are i, at the last input coordinate): the transpose of one axis of the forward.
FARSEE_HD float bilinear_tap_weight(const BilinearTap& t, int i) {
  return (t.i0 == i ? t.l0 : 0.0f) + (t.i1 == i ? t.l1 : 0.0f);
}

// The output coordinates [begin, end) whose taps read input coordinate i: those with
// i0 in {i - 1, i} (i0 is non-decreasing in the output coordinate, so a contiguous range; found
// by bisection with the same bilinear_tap the forward uses, so the two agree exactly).
struct BilinearRange {
  int begin, end;
};
FARSEE_HD int bilinear_first_output_at_least(int i, float scale, int in_size, int out_size,
                                             bool align_corners) {
  int lo = 0, hi = out_size;  // first dst in [lo, hi) with i0(dst) >= i
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (bilinear_tap(mid, scale, in_size, align_corners).i0 >= i) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}
FARSEE_HD BilinearRange bilinear_source_range(int i, float scale, int in_size, int out_size,
                                              bool align_corners) {
  return BilinearRange{
      bilinear_first_output_at_least(i - 1, scale, in_size, out_size, align_corners),
      bilinear_first_output_at_least(i + 1, scale, in_size, out_size, align_corners)};
}

}  // namespace farsee
