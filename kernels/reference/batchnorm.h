// Reference BatchNorm2d over NHWC tensors (PyTorch nn.BatchNorm2d semantics), per channel c:
//   inference:  y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
//   training:   mean and biased variance of x over the N*H*W pixels, y normalised with them;
//               the running statistics then move as PyTorch moves them (momentum 0.1):
//                 running_mean = (1 - momentum) * running_mean + momentum * mean
//                 running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
//               (M = N*H*W: the running variance takes the unbiased batch variance).
//   folding:    scale = gamma / sqrt(var + eps), bias = beta - mean * scale, so that
//               inference BN is y = scale * x + bias (what the fused conv epilogue applies).
//   training backward (kernels/batchnorm.h: batchnorm_train_bwd, fused with residual and ReLU):
//               dz = relu ? (y > 0 ? dy : 0) : dy, xhat = (x - mean) * invstd,
//               dbeta += sum dz, dgamma += sum dz * xhat, dresidual = dz,
//               dx = gamma * invstd * (dz - sum dz / M - xhat * sum(dz * xhat) / M).
// x and y: fp32 or fp16 storage each, channel slices allowed; y may be x (in place). Per-channel
// arrays are fp32 [C]; gamma null = 1, beta null = 0. Everything is computed in double (two-pass
// statistics) and rounded once.
//
// The training ops of kernels/batchnorm.h (reference::batchnorm_train_fwd / _bwd, which take the
// executor's Context) are built on the dense double core below, processing blocks of channels at
// a time; the gradient checks (tests/kernels/reference/batchnorm_train_test.cpp) differentiate the
// same core by central differences.
#pragma once

#include <cstdint>

#include "kernels/core/tensor.h"

namespace farsee::reference {

constexpr float kBatchNormEps = 1e-5f;
constexpr float kBatchNormMomentum = 0.1f;

void batchnorm_inference_fwd(const TensorView& x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var,
                             const TensorView& y, float eps = kBatchNormEps);

// Writes y and the batch statistics (mean and biased variance, [C] each; either may be null).
// Requires more than one value per channel, as PyTorch does in training mode.
void batchnorm_training_fwd(const TensorView& x, const float* gamma, const float* beta,
                            const TensorView& y, float* batch_mean, float* batch_var,
                            float eps = kBatchNormEps);

// The running-statistics update after a training step over `count` = N*H*W values per channel,
// from that step's batch mean and biased batch variance.
void batchnorm_update_running(int channels, int64_t count, const float* batch_mean,
                              const float* batch_var, float* running_mean, float* running_var,
                              float momentum = kBatchNormMomentum);

// Dense double core of training BN over `channels` independent channels, values [pixels][channels]
// (pixels = N*H*W). gamma/beta/residual null = 1/0/none. Forward writes y = act(BN(x) + residual)
// and the batch mean and biased variance [channels].
void batchnorm_train_fwd_dense(int64_t pixels, int channels, const double* x, const double* gamma,
                               const double* beta, const double* residual, bool relu, double eps,
                               double* y, double* mean, double* var);
// Backward from the saved mean and invstd [channels]; y only read when relu. Writes dx, and dz
// (the residual's gradient) when dz_out is not null; dgamma_sum / dbeta_sum [channels] receive
// sum dz * xhat and sum dz (written, not accumulated; either may be null).
void batchnorm_train_bwd_dense(int64_t pixels, int channels, const double* x, const double* y,
                               bool relu, const double* dy, const double* mean,
                               const double* invstd, const double* gamma, double* dx,
                               double* dz_out, double* dgamma_sum, double* dbeta_sum);

// Per-channel scale and bias of inference BN ([channels] each).
void fold_batchnorm(int channels, const float* gamma, const float* beta, const float* mean,
                    const float* var, float eps, float* scale_out, float* bias_out);

}  // namespace farsee::reference
