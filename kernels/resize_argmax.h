// Bilinear resize of logits (PyTorch F.interpolate(mode='bilinear'), align_corners true or false)
// fused with argmax over channels -> uint8 labels [N][out_h][out_w]. The full-resolution logits
// are never materialised. Ties resolve to the lowest channel index (torch.argmax). Logits fp32 or
// fp16 (interpolated in fp32), at most 255 channels.
#pragma once

#include <cstdint>

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

#define FARSEE_RESIZE_ARGMAX_FWD_ARGS                                                     \
  const Context &ctx, bool align_corners, const TensorView &logits, int out_h, int out_w, \
      uint8_t *labels
FARSEE_DECLARE_OP(resize_argmax_fwd, FARSEE_RESIZE_ARGMAX_FWD_ARGS);

inline void resize_argmax_fwd(FARSEE_RESIZE_ARGMAX_FWD_ARGS) {
  FARSEE_REQUIRE(out_h > 0 && out_w > 0,
                 "resize_argmax_fwd: output size " << out_h << "x" << out_w << " must be positive");
  FARSEE_REQUIRE(logits.c() >= 1 && logits.c() <= 255,
                 "resize_argmax_fwd: " << logits.c() << " classes; uint8 labels allow 1..255");
  FARSEE_REQUIRE(logits.data != nullptr && labels != nullptr, "resize_argmax_fwd: null pointer");
  FARSEE_DISPATCH(ctx, resize_argmax_fwd, ctx, align_corners, logits, out_h, out_w, labels);
}

}  // namespace farsee
