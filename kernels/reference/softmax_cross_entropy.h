// Reference softmax cross-entropy over the pixels of NHWC logits, PyTorch
// F.cross_entropy(logits, labels, ignore_index=255, reduction='mean'):
//   loss = (1 / M) * sum over pixels p with labels[p] != 255 of (logsumexp(z_p) - z_p[labels[p]])
//   dL/dz_p = (softmax(z_p) - onehot(labels[p])) / M for those pixels, 0 for ignored ones,
// M = number of counted pixels. With M = 0 the loss is NaN and the gradient zero, as PyTorch.
// logits: fp32 [N, H, W, C] (a channel slice is fine); labels: uint8 [N][H][W] dense, each < C or
// 255. Computed in double with the per-pixel max subtracted before exp (no overflow for any
// finite logits); the loss is summed in pixel order, so it does not depend on the thread count.
#pragma once

#include <cstdint>

#include "kernels/core/tensor.h"

namespace farsee::reference {

constexpr uint8_t kIgnoreLabel = 255;

// Returns the loss; writes dL/dlogits into `grad` (fp32, logits' shape) unless grad.data is null.
float softmax_cross_entropy(const TensorView& logits, const uint8_t* labels,
                            const TensorView& grad = TensorView{});

}  // namespace farsee::reference
