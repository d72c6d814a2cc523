// cpu executor, softmax_cross_entropy: forwards to the reference implementation
// (kernels/reference/), which is a small share of the time here (per-op profile: bench/RESULTS.md,
// "CPU executor").
#include "kernels/softmax_cross_entropy.h"

namespace farsee::cpu_impl {

void softmax_ce_upsample(FARSEE_SOFTMAX_CE_UPSAMPLE_ARGS) {
  reference::softmax_ce_upsample(ctx, align_corners, logits, labels, label_h, label_w, loss,
                                 dlogits, grad_scale, workspace, workspace_bytes, valid_count);
}

}  // namespace farsee::cpu_impl
