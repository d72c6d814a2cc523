// cpu executor, sgd: forwards to the reference implementation (kernels/reference/), which is
// a small share of the time here (per-op profile: bench/RESULTS.md, "CPU executor").
#include "kernels/sgd.h"

namespace farsee::cpu_impl {

void sgd_step(FARSEE_SGD_STEP_ARGS) {
  reference::sgd_step(ctx, count, params, grads, momentum_buf, lr, momentum, weight_decay,
                      first_step);
}

}  // namespace farsee::cpu_impl
