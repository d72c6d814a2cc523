// Synchronised BatchNorm for data-parallel training. On the host executors (reference, cpu):
// kernels/batchnorm.h's batchnorm_train_fwd / _bwd over the GLOBAL batch of every rank
// (DESIGN.md section 10.2), for fp32 or fp16 views in host memory.
//
// Forward, per channel: the ranks' sums of x and pixel counts all-reduced (one call of C + 1
// doubles) give the global mean; the sums of (x - mean)^2 all-reduced (C doubles) give the biased
// global variance (two passes, as the kernels and PyTorch). Apply, saved statistics and running
// statistics (unbiased variance over the global count M) then follow the op's formulas, in double,
// rounded once to the storage type (as the reference executor): what one process with the whole
// batch computes (to rounding).
// Backward: sum dz and sum dz * xhat all-reduced (one call of 2C + 1 doubles) enter dx with the
// global M; dgamma / dbeta accumulate this rank's sums only (the gradient all-reduce adds the
// ranks). Every sum runs in pixel order then rank order: bitwise reproducible.
#pragma once

#include "kernels/batchnorm.h"
#include "net/distributed.h"

namespace farsee::net {

// The kernel executors' synchronised BN (cuda, emu: kernels/batchnorm.h BatchNormSync) over a
// Collective. Statistics: Chan's merge of the ranks' (count, mean, m2) in double, as two
// all-reduces in rank order (the sums n * mean and n, then the m2 + n * (mean - global mean)^2);
// the backward's sums and count in one all-reduce. Deterministic: every rank gets bitwise the
// same values.
class CollectiveBatchNormSync final : public BatchNormSync {
 public:
  explicit CollectiveBatchNormSync(Collective& comm) : comm_(comm) {}
  void merge_statistics(int channels, int64_t* count, double* mean, double* m2) override;
  void merge_gradient_sums(int channels, int64_t* count, double* sum_dz,
                           double* sum_dz_xc) override;

 private:
  Collective& comm_;
};

void sync_batchnorm_train_fwd(Collective& comm, const TensorView& x, const float* gamma,
                              const float* beta, const TensorView& residual, bool relu,
                              const TensorView& y, float* save_mean, float* save_invstd,
                              float* running_mean, float* running_var,
                              const BatchNormTrainArgs& args);

void sync_batchnorm_train_bwd(Collective& comm, const TensorView& x, const TensorView& y, bool relu,
                              const TensorView& dy, const float* save_mean,
                              const float* save_invstd, const float* gamma, const TensorView& dx,
                              const TensorView& dresidual, bool accumulate_dresidual, float* dgamma,
                              float* dbeta);

}  // namespace farsee::net
