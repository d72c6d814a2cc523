// SGD step, exactly torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov=False), fp32
// master weights, over `count` consecutive parameters (the whole parameter arena in one launch):
//   d = g + weight_decay * p
//   buf = first_step ? d : momentum * buf + d      (PyTorch creates the buffer as a copy of d)
//   p = p - lr * buf
// momentum == 0: no buffer (momentum_buf may be null), p = p - lr * d.
// Rounding: every line is one fused multiply-add (fmaf) rounded once to fp32, identically in the
// reference, emu and cuda builds (bitwise equal across executors). PyTorch on CUDA computes the
// first and last lines as FMAs too, but the buffer as buf.mul_(momentum) then .add_(d): two
// roundings, so a trajectory may differ from PyTorch's by an ulp or so per step. grads is
// read-only; params and momentum_buf are updated in place (executor memory, fp32).
// skip_if_set (optional, one int32 in executor memory, read by the kernel): when it is non-zero
// nothing is written (mixed precision: a step whose gradients are not finite is skipped, as
// GradScaler.step skips optimizer.step; kernels/grad_scaler.h sets the flag).
// lr_in_memory (optional, one fp32 in executor memory, read by the kernel): the learning rate
// instead of `lr`, so that a captured CUDA graph replays with each step's rate (the caller writes
// it before the replay and checks it is >= 0; `lr` is then only validated).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/dispatch.h"
#include "kernels/core/executor.h"
#include "kernels/core/hd.h"

namespace farsee {

#define FARSEE_SGD_STEP_ARGS                                                                     \
  const Context &ctx, int64_t count, float *params, const float *grads, float *momentum_buf,     \
      float lr, float momentum, float weight_decay, bool first_step, const int32_t *skip_if_set, \
      const float *lr_in_memory

FARSEE_DECLARE_OP(sgd_step, FARSEE_SGD_STEP_ARGS);

// The per-element update (shared by the reference and the kernels so all three round alike).
struct SgdHyper {
  float lr, momentum, weight_decay;
  bool first_step, use_buffer;
};
FARSEE_HD void sgd_update(const SgdHyper& h, float& p, float g, float* buf) {
  const float d = h.weight_decay != 0.0f ? fmaf(h.weight_decay, p, g) : g;  // PyTorch skips wd 0
  float step = d;
  if (h.use_buffer) {
    step = h.first_step ? d : fmaf(h.momentum, *buf, d);
    *buf = step;
  }
  p = fmaf(-h.lr, step, p);
}

inline void sgd_step(const Context& ctx, int64_t count, float* params, const float* grads,
                     float* momentum_buf, float lr, float momentum, float weight_decay,
                     bool first_step, const int32_t* skip_if_set = nullptr,
                     const float* lr_in_memory = nullptr) {
  FARSEE_REQUIRE(count >= 0, "sgd_step: count = " << count);
  if (count == 0) return;
  FARSEE_REQUIRE(params != nullptr && grads != nullptr, "sgd_step: params or grads is null");
  FARSEE_REQUIRE(momentum >= 0.0f && weight_decay >= 0.0f && lr >= 0.0f,
                 "sgd_step: lr " << lr << ", momentum " << momentum << ", weight_decay "
                                 << weight_decay << " must be >= 0");
  FARSEE_REQUIRE(momentum == 0.0f || momentum_buf != nullptr,
                 "sgd_step: momentum " << momentum << " needs a momentum buffer");
  FARSEE_DISPATCH(ctx, sgd_step, ctx, count, params, grads, momentum_buf, lr, momentum,
                  weight_decay, first_step, skip_if_set, lr_in_memory);
}

}  // namespace farsee
