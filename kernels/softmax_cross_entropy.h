// Softmax cross-entropy of bilinearly upsampled logits, fused (forward + backward):
//   loss = F.cross_entropy(F.interpolate(logits, size=(label_h, label_w), mode='bilinear',
//                                        align_corners=ac), labels, ignore_index=255)
// i.e. the mean over the M label pixels whose label is not 255 of logsumexp(z) - z[label], where
// z (C values) is the bilinear sample of the LOW-resolution logits at that label pixel (PyTorch's
// taps, kernels/core/bilinear.h). With class weights w (F.cross_entropy's weight=, for rare
// classes) it is PyTorch's weighted mean: sum of w[label] * (logsumexp(z) - z[label]) over the
// counted pixels divided by S = the sum of their w[label]; without them w = 1 and S = M. The
// full-resolution logits are never materialised: the gradient
//   dlogits = grad_scale * d(loss)/d(logits) = grad_scale / S * sum over counted label pixels of
//             w[label] * tap_weight * (softmax(z) - onehot(label))
// lands directly on the low-resolution logits (written, not accumulated). S = 0 (every label
// ignored, or every counted class weighted 0): loss NaN and dlogits 0, as PyTorch.
// logits: [N, h, w, C] fp32 or fp16 (channel slice ok), C <= 255; labels: uint8 [N][label_h]
// [label_w] dense in executor memory, each < C or 255; loss: one fp32 in executor memory;
// valid_count (optional): M as one int64 in executor memory; class_weights (optional): C fp32 in
// executor memory, finite and >= 0 (the caller checks: the kernels cannot read them on the host);
// dlogits: logits' shape (channel
// slice ok), fp32 or fp16 (independent of the logits' dtype; fp16: the fp32 value rounded once to
// nearest even, e.g. mixed-precision training with grad_scale = the loss scale);
// grad_scale_in_memory (optional, one fp32 in executor memory, read by the kernels): grad_scale
// instead of the value argument, so that a captured CUDA graph replays with each step's loss scale
// (the caller writes it before the launch; the value argument is then unused). The kernels cannot
// raise on a bad label: a label >= C that is not 255 makes the loss NaN (the host executors,
// reference and cpu, throw). Deterministic: fixed partials summed in a fixed order.
#pragma once

#include <cstdint>

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

// Label pixels per partial of the loss reduction (one block of the kernels' first pass: 256
// threads, 4 pixels each).
constexpr int kSoftmaxCePixelsPerPartial = 1024;

// Workspace layout, in 4-byte words: [0, 4) scalars, [4, 4 + B) per-partial (weighted) loss sums
// (fp32), [4 + B, 4 + 2B) per-partial counts (int32), [4 + 2B, 4 + 3B) per-partial weight sums
// (fp32; exact integers without weights), then the logsumexp of every label pixel (fp32),
// B = ceil(N * label_h * label_w / kSoftmaxCePixelsPerPartial). The reference executor uses none
// of it but takes the same size.
inline int64_t softmax_ce_partials(Shape4 logits, int label_h, int label_w) {
  const int64_t pixels = int64_t(logits.n) * label_h * label_w;
  return (pixels + kSoftmaxCePixelsPerPartial - 1) / kSoftmaxCePixelsPerPartial;
}
inline size_t softmax_ce_workspace_bytes(Shape4 logits, int label_h, int label_w) {
  const int64_t pixels = int64_t(logits.n) * label_h * label_w;
  return size_t(4 + 3 * softmax_ce_partials(logits, label_h, label_w) + pixels) * 4;
}

#define FARSEE_SOFTMAX_CE_UPSAMPLE_ARGS                                                          \
  const Context &ctx, bool align_corners, const TensorView &logits, const uint8_t *labels,       \
      int label_h, int label_w, float *loss, const TensorView &dlogits, float grad_scale,        \
      void *workspace, size_t workspace_bytes, int64_t *valid_count, const float *class_weights, \
      const float *grad_scale_in_memory
FARSEE_DECLARE_OP(softmax_ce_upsample, FARSEE_SOFTMAX_CE_UPSAMPLE_ARGS);

inline void softmax_ce_upsample(const Context& ctx, bool align_corners, const TensorView& logits,
                                const uint8_t* labels, int label_h, int label_w, float* loss,
                                const TensorView& dlogits, float grad_scale, void* workspace,
                                size_t workspace_bytes, int64_t* valid_count = nullptr,
                                const float* class_weights = nullptr,
                                const float* grad_scale_in_memory = nullptr) {
  FARSEE_REQUIRE(label_h >= 1 && label_w >= 1, "softmax_ce_upsample: label size "
                                                   << label_h << "x" << label_w
                                                   << " must be positive");
  FARSEE_REQUIRE(logits.n() >= 1 && logits.h() >= 1 && logits.w() >= 1,
                 "softmax_ce_upsample: logits have empty shape " << to_string(logits.shape));
  FARSEE_REQUIRE(logits.c() >= 1 && logits.c() <= 255,
                 "softmax_ce_upsample: " << logits.c() << " classes; uint8 labels allow 1..255");
  FARSEE_REQUIRE(
      logits.data != nullptr && labels != nullptr && loss != nullptr && dlogits.data != nullptr,
      "softmax_ce_upsample: null pointer");
  require_shape(logits, "softmax_ce_upsample: logits", logits.shape);
  require_shape(dlogits, "softmax_ce_upsample: dlogits", logits.shape);
  FARSEE_REQUIRE(dlogits.dtype == DType::F32 || dlogits.dtype == DType::F16,
                 "softmax_ce_upsample: dlogits must be fp32 or fp16");
  const size_t need = softmax_ce_workspace_bytes(logits.shape, label_h, label_w);
  FARSEE_REQUIRE(
      workspace_bytes >= need && workspace != nullptr,
      "softmax_ce_upsample: workspace of " << workspace_bytes << " bytes, " << need << " needed");
  FARSEE_DISPATCH(ctx, softmax_ce_upsample, ctx, align_corners, logits, labels, label_h, label_w,
                  loss, dlogits, grad_scale, workspace, workspace_bytes, valid_count, class_weights,
                  grad_scale_in_memory);
}

}  // namespace farsee
