// cpu executor, batchnorm: forwards to the reference implementation (kernels/reference/), which is
// a small share of the time here (per-op profile: bench/RESULTS.md, "CPU executor").
#include "kernels/batchnorm.h"

namespace farsee::cpu_impl {

void batchnorm_train_fwd(FARSEE_BATCHNORM_TRAIN_FWD_ARGS) {
  reference::batchnorm_train_fwd(ctx, x, gamma, beta, residual, relu, y, save_mean, save_invstd,
                                 running_mean, running_var, args, workspace, workspace_bytes);
}

void batchnorm_train_bwd(FARSEE_BATCHNORM_TRAIN_BWD_ARGS) {
  reference::batchnorm_train_bwd(ctx, x, y, relu, dy, save_mean, save_invstd, gamma, dx, dresidual,
                                 accumulate_dresidual, dgamma, dbeta, workspace, workspace_bytes);
}

}  // namespace farsee::cpu_impl
