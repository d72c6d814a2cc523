// Dynamic loss scaling (mixed-precision training): the unscale and non-finite check of the
// parameter gradients, as torch.cuda.amp.GradScaler.unscale_ does it
// (torch._amp_foreach_non_finite_check_and_unscale_), over `count` consecutive fp32 gradients
// (the whole gradient arena in one launch):
//   grads[i] = grads[i] * inv_scale                 (every element, non-finite ones included)
//   *found_inf = 1 if any grads[i] is NaN or +-Inf  (checked on the value read, before scaling;
//                                                    left as it was otherwise, so several arenas
//                                                    can share one flag: the caller zeroes it)
// found_inf: one int32 in executor memory; the optimizer step reads it (sgd_step's skip flag) so
// a step with a non-finite gradient is skipped without a host round trip.
// inv_scale_in_memory (optional, one fp32 in executor memory, read by the kernel): the factor
// instead of `inv_scale`, so that a captured CUDA graph replays with each step's loss scale (the
// caller writes it before the launch and checks it; `inv_scale` is then only validated).
// Rounding: one fp32 multiply per element (inv_scale is a power of two in the trainer's use,
// so exact unless a gradient underflows). Deterministic: the flag is only ever set to 1 by plain
// stores (no atomics, no float reduction): the result does not depend on the order.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/core/dispatch.h"
#include "kernels/core/executor.h"
#include "kernels/core/hd.h"

namespace farsee {

#define FARSEE_GRAD_UNSCALE_CHECK_ARGS                                                  \
  const Context &ctx, int64_t count, float *grads, float inv_scale, int32_t *found_inf, \
      const float *inv_scale_in_memory

FARSEE_DECLARE_OP(grad_unscale_check, FARSEE_GRAD_UNSCALE_CHECK_ARGS);

// The per-element step (shared by the reference and the kernels): returns true when g is NaN or
// +-Inf (exponent bits all ones; immune to fast-math assumptions), scales g in place.
FARSEE_HD bool unscale_element(float& g, float inv_scale) {
  uint32_t bits;
  memcpy(&bits, &g, sizeof(bits));
  const bool non_finite = (bits & 0x7f800000u) == 0x7f800000u;
  g = g * inv_scale;
  return non_finite;
}

inline void grad_unscale_check(const Context& ctx, int64_t count, float* grads, float inv_scale,
                               int32_t* found_inf, const float* inv_scale_in_memory = nullptr) {
  FARSEE_REQUIRE(count >= 0, "grad_unscale_check: count = " << count);
  if (count == 0) return;
  FARSEE_REQUIRE(grads != nullptr && found_inf != nullptr,
                 "grad_unscale_check: grads or found_inf is null");
  FARSEE_REQUIRE(inv_scale > 0.0f && inv_scale <= 3.4e38f,
                 "grad_unscale_check: inv_scale " << inv_scale << " must be positive and finite");
  FARSEE_DISPATCH(ctx, grad_unscale_check, ctx, count, grads, inv_scale, found_inf,
                  inv_scale_in_memory);
}

}  // namespace farsee
