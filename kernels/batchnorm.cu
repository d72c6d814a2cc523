// BatchNorm training forward/backward kernels (kernels/batchnorm.h). Work in progress: the
// kernels follow in the next commit; until then the emu and cuda executors throw.
#include "kernels/batchnorm.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {

void batchnorm_train_fwd(FARSEE_BATCHNORM_TRAIN_FWD_ARGS) {
  (void)ctx, (void)x, (void)gamma, (void)beta, (void)residual, (void)relu, (void)y;
  (void)save_mean, (void)save_invstd, (void)running_mean, (void)running_var, (void)args;
  (void)workspace, (void)workspace_bytes;
  FARSEE_REQUIRE(false, "batchnorm_train_fwd: kernels not implemented yet (use reference)");
}
void batchnorm_train_bwd(FARSEE_BATCHNORM_TRAIN_BWD_ARGS) {
  (void)ctx, (void)x, (void)y, (void)relu, (void)dy, (void)save_mean, (void)save_invstd;
  (void)gamma, (void)dx, (void)dresidual, (void)accumulate_dresidual, (void)dgamma, (void)dbeta;
  (void)workspace, (void)workspace_bytes;
  FARSEE_REQUIRE(false, "batchnorm_train_bwd: kernels not implemented yet (use reference)");
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
