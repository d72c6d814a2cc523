// BatchNorm2d in training mode (PyTorch nn.BatchNorm2d.train() semantics), fused with the residual
// add and the ReLU that follow it in the net, and its backward.
//
// Forward, per channel c over the M = N*H*W pixels:
//   mean = sum x / M,  var = sum (x - mean)^2 / M (biased: used to normalise)
//   y = act(gamma * (x - mean) * invstd + beta + residual),  invstd = 1 / sqrt(var + eps)
//   save_mean = mean, save_invstd = invstd (read by the backward)
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (UNBIASED)
// Backward, with dz = relu ? (y > 0 ? dy : 0) : dy and xhat = (x - mean) * invstd:
//   dbeta += sum dz,  dgamma += sum dz * xhat                      (parameter grads accumulate)
//   dx = gamma * invstd * (dz - sum dz / M - xhat * sum(dz * xhat) / M)      (written)
//   dresidual = dz (or += dz when accumulate_dresidual)                     (the residual's grad)
//
// Views: NHWC, fp32 or fp16 storage, every activation view of one call in x's dtype; channel
// slices (pixel_stride > C, offset data) allowed for all of them. Per-channel arrays fp32 [C];
// gamma null = 1, beta null = 0, dgamma / dbeta null = not wanted. residual.data == nullptr: no
// residual; dresidual.data == nullptr: not wanted. y must not alias x; y may alias residual
// exactly. In the backward dx and dresidual may alias dy exactly (each element is read before it is
// written), never x or y.
//
// Workspace: fp32 in executor memory, at least batchnorm_workspace_bytes(x.shape) bytes, for every
// executor (the reference ignores it). The statistics are reduced deterministically: the pixels are
// cut into batchnorm_pixel_chunks() fixed chunks whose per-channel partials land in the workspace
// and are then combined in a fixed order (no atomics: bitwise reproducible run to run).
//
// Synchronised BN (data parallelism, DESIGN.md section 10.2): with a BatchNormSync (args.sync in
// the forward, `sync` in the backward) the statistics are the GLOBAL batch's of every rank. The
// kernel executors (cuda, emu) reduce this rank's per-channel statistics as usual, copy them to
// the host, let the hook merge them with the other ranks' (it all-reduces), upload the result and
// go on from it: one host synchronisation per call, so never inside a CUDA graph. dgamma / dbeta
// still accumulate this rank's sums only (the gradient all-reduce adds the ranks). The host
// executors (reference, cpu) refuse a hook: net/sync_batchnorm.h synchronises them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/core/dispatch.h"
#include "kernels/core/hd.h"
#include "kernels/core/tensor.h"

namespace farsee {

// The other ranks, as the BN kernels see them (net/sync_batchnorm.h implements it over a
// net::Collective). Every rank calls each function in the same order with the same channel count;
// every rank gets back the same values.
class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  // In: this rank's pixel count and per-channel mean and m2 = sum (x - mean)^2. Out: the global
  // batch's count, mean and m2.
  virtual void merge_statistics(int channels, int64_t* count, double* mean, double* m2) = 0;
  // In: this rank's pixel count and per-channel sum dz and sum dz * (x - mean) (mean: the saved,
  // global one). Out: the global count and sums.
  virtual void merge_gradient_sums(int channels, int64_t* count, double* sum_dz,
                                   double* sum_dz_xc) = 0;
};

struct BatchNormTrainArgs {
  float eps = 1e-5f;
  float momentum = 0.1f;
  BatchNormSync* sync = nullptr;  // not null: synchronised BN (cuda and emu only)
};

// Count arithmetic of the statistics. A pixel count is an integer (int64_t): a float holds every
// integer only up to 2^24, and a batch of 33 at 1024 x 2048 has 2^26 + 2^21 pixels. A quotient or
// product with a count is rounded once to float from the exact count: in float while the count is
// at most 2^24 (bitwise the plain float expression, and no fp64 in the kernels' merges), else in
// double (exact for every count; its one extra rounding of the quotient or product is harmless).
constexpr int64_t kBatchNormExactFloatCount = int64_t(1) << 24;
// s / count, count > 0.
FARSEE_HD float batchnorm_count_div(float s, int64_t count) {
  if (count <= kBatchNormExactFloatCount) return s / float(count);
  return float(double(s) / double(count));
}
// part / count, 0 <= part <= count, count > 0 (a weight of Chan's merge).
FARSEE_HD float batchnorm_count_ratio(int64_t part, int64_t count) {
  if (count <= kBatchNormExactFloatCount) return float(part) / float(count);
  return float(double(part) / double(count));
}
// count * s, count >= 0.
FARSEE_HD float batchnorm_count_mul(int64_t count, float s) {
  if (count <= kBatchNormExactFloatCount) return float(count) * s;
  return float(double(count) * double(s));
}

// Pixel chunking of the statistics reductions (a function of the shape only, shared by the kernels
// and the workspace size). Rows: pixel lanes of a reduction block (chunk pixels are dealt to them
// round robin). The chunk count targets ~1024 blocks over the channel blocks of 64 channels, with
// at least 2 pixels per row lane.
struct BatchNormChunks {
  int count;             // number of chunks
  int pixels_per_chunk;  // the last chunk may hold fewer
};
constexpr int kBatchNormRows = 16;
inline BatchNormChunks batchnorm_pixel_chunks(Shape4 x) {
  const int64_t pixels = x.pixels();
  const int64_t channel_blocks = (int64_t(x.c) + 63) / 64;
  int64_t chunks = std::max<int64_t>(1, 1024 / std::max<int64_t>(1, channel_blocks));
  chunks = std::min(chunks, std::max<int64_t>(1, pixels / (2 * kBatchNormRows)));
  const int64_t per_chunk = std::max<int64_t>(1, (pixels + chunks - 1) / chunks);
  return BatchNormChunks{int((pixels + per_chunk - 1) / per_chunk), int(per_chunk)};
}

// Partials (2 x chunks x C) + per-channel coefficients of the apply passes (4 x C), fp32.
inline size_t batchnorm_workspace_bytes(Shape4 x) {
  const BatchNormChunks k = batchnorm_pixel_chunks(x);
  return (size_t(2) * size_t(k.count) * size_t(x.c) + size_t(4) * size_t(x.c)) * sizeof(float);
}

#define FARSEE_BATCHNORM_TRAIN_FWD_ARGS                                                            \
  const Context &ctx, const TensorView &x, const float *gamma, const float *beta,                  \
      const TensorView &residual, bool relu, const TensorView &y, float *save_mean,                \
      float *save_invstd, float *running_mean, float *running_var, const BatchNormTrainArgs &args, \
      void *workspace, size_t workspace_bytes
#define FARSEE_BATCHNORM_TRAIN_BWD_COMMON_ARGS                                                    \
  const Context &ctx, const TensorView &x, const TensorView &y, bool relu, const TensorView &dy,  \
      const float *save_mean, const float *save_invstd, const float *gamma, const TensorView &dx, \
      const TensorView &dresidual, bool accumulate_dresidual, float *dgamma, float *dbeta,        \
      void *workspace, size_t workspace_bytes
#define FARSEE_BATCHNORM_TRAIN_BWD_ARGS FARSEE_BATCHNORM_TRAIN_BWD_COMMON_ARGS, BatchNormSync* sync

FARSEE_DECLARE_OP(batchnorm_train_fwd, FARSEE_BATCHNORM_TRAIN_FWD_ARGS);
FARSEE_DECLARE_OP(batchnorm_train_bwd, FARSEE_BATCHNORM_TRAIN_BWD_ARGS);

namespace batchnorm_detail {
inline void require_like_x(const TensorView& v, const TensorView& x, const char* name) {
  require_dtype(v, name, x.dtype);
  require_shape(v, name, x.shape);
}
inline void require_common(const TensorView& x, size_t workspace_bytes, const void* workspace,
                           const char* op) {
  FARSEE_REQUIRE(x.data != nullptr, op << ": x is null");
  FARSEE_REQUIRE(x.c() > 0 && x.shape.pixels() > 1,
                 op << ": x " << to_string(x.shape)
                    << " needs C > 0 and more than one value per channel (as PyTorch training)");
  FARSEE_REQUIRE(x.shape.pixels() < (int64_t(1) << 31),
                 op << ": " << x.shape.pixels() << " pixels; kernels index pixels with int32");
  FARSEE_REQUIRE(
      workspace != nullptr && workspace_bytes >= batchnorm_workspace_bytes(x.shape),
      op << ": workspace of " << workspace_bytes << " bytes (null: " << (!workspace)
         << "), needs batchnorm_workspace_bytes = " << batchnorm_workspace_bytes(x.shape));
}
inline void require_sync_executor(const Context& ctx, const BatchNormSync* sync, const char* op) {
  FARSEE_REQUIRE(sync == nullptr || ctx.executor == Executor::Cuda || ctx.executor == Executor::Emu,
                 op << ": a BatchNormSync runs on the cuda and emu executors; on "
                    << executor_name(ctx.executor)
                    << " synchronised BN is net/sync_batchnorm.h's (DESIGN.md section 10.2)");
}
}  // namespace batchnorm_detail

inline void batchnorm_train_fwd(FARSEE_BATCHNORM_TRAIN_FWD_ARGS) {
  batchnorm_detail::require_common(x, workspace_bytes, workspace, "batchnorm_train_fwd");
  batchnorm_detail::require_like_x(y, x, "batchnorm_train_fwd: y");
  FARSEE_REQUIRE(y.data != nullptr && y.data != x.data,
                 "batchnorm_train_fwd: y is null or aliases x");
  if (residual.data != nullptr)
    batchnorm_detail::require_like_x(residual, x, "batchnorm_train_fwd: residual");
  FARSEE_REQUIRE(save_mean && save_invstd && running_mean && running_var,
                 "batchnorm_train_fwd: save_mean, save_invstd, running_mean and running_var "
                 "must not be null");
  FARSEE_REQUIRE(args.eps > 0.0f, "batchnorm_train_fwd: eps = " << args.eps << " must be positive");
  batchnorm_detail::require_sync_executor(ctx, args.sync, "batchnorm_train_fwd");
  FARSEE_DISPATCH(ctx, batchnorm_train_fwd, ctx, x, gamma, beta, residual, relu, y, save_mean,
                  save_invstd, running_mean, running_var, args, workspace, workspace_bytes);
}

inline void batchnorm_train_bwd(FARSEE_BATCHNORM_TRAIN_BWD_COMMON_ARGS,
                                BatchNormSync* sync = nullptr) {
  batchnorm_detail::require_common(x, workspace_bytes, workspace, "batchnorm_train_bwd");
  if (relu) batchnorm_detail::require_like_x(y, x, "batchnorm_train_bwd: y");
  batchnorm_detail::require_like_x(dy, x, "batchnorm_train_bwd: dy");
  batchnorm_detail::require_like_x(dx, x, "batchnorm_train_bwd: dx");
  FARSEE_REQUIRE(dx.data != nullptr && dx.data != x.data && (!relu || dx.data != y.data),
                 "batchnorm_train_bwd: dx is null or aliases x or y");
  if (dresidual.data != nullptr) {
    batchnorm_detail::require_like_x(dresidual, x, "batchnorm_train_bwd: dresidual");
    FARSEE_REQUIRE(dresidual.data != dx.data, "batchnorm_train_bwd: dresidual aliases dx");
  }
  FARSEE_REQUIRE(save_mean && save_invstd,
                 "batchnorm_train_bwd: save_mean and save_invstd must not be null");
  batchnorm_detail::require_sync_executor(ctx, sync, "batchnorm_train_bwd");
  FARSEE_DISPATCH(ctx, batchnorm_train_bwd, ctx, x, y, relu, dy, save_mean, save_invstd, gamma, dx,
                  dresidual, accumulate_dresidual, dgamma, dbeta, workspace, workspace_bytes, sync);
}

}  // namespace farsee
