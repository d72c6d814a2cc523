// Reference SGD step (kernels/sgd.h): the per-element update sgd_update() applied in order. It
// is already exact in its own terms (three fp32 FMAs per element), so no double arithmetic: the
// kernels are compared with it bitwise.
#include "kernels/sgd.h"

namespace farsee::reference {

void sgd_step(const Context&, int64_t count, float* params, const float* grads, float* momentum_buf,
              float lr, float momentum, float weight_decay, bool first_step,
              const int32_t* skip_if_set, const float* lr_in_memory) {
  if (skip_if_set != nullptr && *skip_if_set != 0) return;
  const SgdHyper h{lr_in_memory ? *lr_in_memory : lr, momentum, weight_decay, first_step,
                   momentum != 0.0f};
  for (int64_t i = 0; i < count; ++i)
    sgd_update(h, params[i], grads[i], h.use_buffer ? momentum_buf + i : nullptr);
}

}  // namespace farsee::reference
