// Reference bilinear resize and channel argmax, NHWC.
//
// resize_bilinear_fwd: exactly PyTorch's F.interpolate(mode='bilinear', size=(out_h, out_w)) for
// either align_corners, per axis (in -> out samples; ATen UpSample.h):
//   out == in:          identity (PyTorch copies)
//   align_corners=true: scale = (in - 1) / (out - 1) (0 when out == 1), src = scale * dst
//   align_corners=false: scale = in / out, src = max(scale * (dst + 0.5) - 0.5, 0)
//   i0 = min(floor(src), in - 1), i1 = i0 + (i0 < in - 1), l1 = clamp(src - i0, 0, 1), l0 = 1 - l1
// Precision of the taps, as PyTorch 1.13's CPU kernel evaluates them for float tensors (checked
// bit for bit against it with one-hot inputs over 2688 size pairs, and by the resize_taps_*
// fixtures): scale in float; src, the clamp, floor and l1 in double from that float scale; l1
// stored as float and l0 = 1 - l1 in float. The blend l0y * (l0x * v00 + l1x * v01) +
// l1y * (l0x * v10 + l1x * v11) is done in double and rounded once (PyTorch blends in float:
// outputs differ by an ulp or two of the inputs' magnitude). x and y: same N and C, fp32 or
// fp16 each, channel slices allowed.
//
// argmax_channels: labels[(n * H + y) * W + x] = index of the largest channel; ties go to the
// lowest index and a NaN counts as the largest (torch.argmax). At most 256 channels.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/tensor.h"

namespace farsee::reference {

// One axis of the sampling above: output coordinate d reads i0 and i1 with weights l0 and l1.
struct LinearTap {
  int i0, i1;
  float l0, l1;
};
std::vector<LinearTap> linear_taps(int in, int out, bool align_corners);

void resize_bilinear_fwd(bool align_corners, const TensorView& x, const TensorView& y);

// resize_bilinear_bwd: the exact transpose of resize_bilinear_fwd with the same taps: each dy
// element, times l_y * l_x, is added to its four taps, in double; dx is written (rounded once).
// dy: [N, H_out, W_out, C], dx: [N, H_in, W_in, C]. The tests' oracle of the composition that
// softmax_ce_upsample fuses (no executor runs it on its own: the net's only resize backward is
// the loss's).
void resize_bilinear_bwd(bool align_corners, const TensorView& dy, const TensorView& dx);

void argmax_channels(const TensorView& x, uint8_t* labels);

}  // namespace farsee::reference
