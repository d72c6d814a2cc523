// Reference softmax cross-entropy over the pixels of NHWC logits, PyTorch
// F.cross_entropy(logits, labels, ignore_index=255, reduction='mean'):
//   loss = (1 / M) * sum over pixels p with labels[p] != 255 of (logsumexp(z_p) - z_p[labels[p]])
//   dL/dz_p = (softmax(z_p) - onehot(labels[p])) / M for those pixels, 0 for ignored ones,
// M = number of counted pixels. With M = 0 the loss is NaN and the gradient zero, as PyTorch.
// logits: fp32 [N, H, W, C] (a channel slice is fine); labels: uint8 [N][H][W] dense, each < C or
// 255. Computed in double with the per-pixel max subtracted before exp (no overflow for any
// finite logits); the loss is summed in pixel order, so it does not depend on the thread count.
//
// softmax_ce_upsample (kernels/softmax_cross_entropy.h), the loss at label resolution from
// low-resolution logits: per label pixel the C logits are sampled bilinearly in double with the
// reference resize's taps (linear_taps, kernels/reference/resize.h), then the loss and
// softmax - onehot as above; the gradient, times its tap weights, is scattered into a double
// accumulator of the low-resolution logits (image by image), scaled by grad_scale / S and rounded
// once to fp32 (fp16 dlogits: that fp32 value rounded once more, as the kernels do). Class weights
// scale each pixel's loss and gradient by w[label], and S is their sum over the counted pixels (M
// without weights). Unweighted, equal up to the fp32 rounding of the interpolated logits to
// softmax_cross_entropy(resize_bilinear_fwd(logits)) followed by resize_bilinear_bwd
// (kernels/reference/resize.h).
#pragma once

#include <cstdint>

#include "kernels/core/tensor.h"

namespace farsee::reference {

constexpr uint8_t kIgnoreLabel = 255;

// The labels' check and the mean's denominators, shared by the host executors: throws unless every
// one of the `count` labels is < C or 255 (naming `what` and the first bad index); counted = M,
// the labels that are not 255; weight_sum = S, the sum of their class weights in label order (M
// exactly without weights).
struct LabelCounts {
  int64_t counted = 0;
  double weight_sum = 0.0;
};
LabelCounts count_labels(const uint8_t* labels, int64_t count, int C, const float* class_weights,
                         const char* what);

// Returns the loss; writes dL/dlogits into `grad` (fp32, logits' shape) unless grad.data is null.
float softmax_cross_entropy(const TensorView& logits, const uint8_t* labels,
                            const TensorView& grad = TensorView{});

}  // namespace farsee::reference
