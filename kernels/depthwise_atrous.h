// Depthwise atrous 3x3 convolution with folded BN (per-channel scale and bias) and optional ReLU:
//   y[n,oy,ox,c] = act(scale[c] * sum_{r,s} x[n, oy*stride - d + r*d, ox*stride - d + s*d, c] *
//   w[c][r][s] + bias[c])
// padding = dilation (zeros), any stride and dilation. x and y may be channel slices of wider NHWC
// buffers (the F-ASPP branches read and write slices of the concat buffer). Activations fp32 or
// fp16 (same dtype for x and y), weights/scale/bias fp32, accumulation fp32.
//
// Backward of the convolution alone (training runs the forward with scale = bias = null and
// relu = false, and BN separately; p.relu is ignored here):
//   depthwise_atrous_bwd_data:   dx[n,iy,ix,c] (=, or += if accumulate) sum over the taps (r, s)
//     and outputs (oy, ox) with oy*stride - d + r*d = iy, ox*stride - d + s*d = ix of
//     dy[n,oy,ox,c] * w[c][r][s]   (gather: no atomics)
//   depthwise_atrous_bwd_weight: dw[c][r][s] += sum over (n, oy, ox) of dy[n,oy,ox,c] *
//     x[n, oy*stride - d + r*d, ox*stride - d + s*d, c]; split into fixed per-lane partials in the
//     workspace, then summed in lane order: bitwise reproducible.
// x, dy, dx: same dtype (fp32 or fp16), channel slices ok; w, dw fp32.
#pragma once

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

struct DepthwiseParams {
  int stride = 1;
  int dilation = 1;  // also the padding
  bool relu = true;
};

inline Shape4 depthwise_atrous_output_shape(const DepthwiseParams& p, Shape4 x) {
  // 3x3 with pad = dilation: out = (in - 1) / stride + 1
  return Shape4{x.n, (x.h - 1) / p.stride + 1, (x.w - 1) / p.stride + 1, x.c};
}

#define FARSEE_DEPTHWISE_ATROUS_FWD_ARGS                                                  \
  const Context &ctx, const DepthwiseParams &p, const TensorView &x, const float *weight, \
      const float *scale, const float *bias, const TensorView &y
FARSEE_DECLARE_OP(depthwise_atrous_fwd, FARSEE_DEPTHWISE_ATROUS_FWD_ARGS);

// weight: [C][3][3]; scale, bias: [C] (scale null = 1, bias null = 0).
inline void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS) {
  FARSEE_REQUIRE(p.stride >= 1 && p.dilation >= 1, "depthwise_atrous_fwd: stride "
                                                       << p.stride << " and dilation " << p.dilation
                                                       << " must be >= 1");
  FARSEE_REQUIRE(weight != nullptr, "depthwise_atrous_fwd: weight is null");
  require_dtype(y, "depthwise_atrous_fwd: y", x.dtype);
  require_shape(y, "depthwise_atrous_fwd: y", depthwise_atrous_output_shape(p, x.shape));
  FARSEE_DISPATCH(ctx, depthwise_atrous_fwd, ctx, p, x, weight, scale, bias, y);
}

// The depthwise branches of one F-ASPP block in ONE launch (emu, cuda: blockIdx.z = branch; the
// host executors run depthwise_atrous_fwd per branch): branch i computes, element for element,
//   depthwise_atrous_fwd(ctx, {stride, branch[i].dilation, relu}, branch[i].x, branch[i].weight,
//                        branch[i].scale, branch[i].bias, branch[i].y)
// Every branch: the same x shape and dtype (x and y slices of any
// buffers), 1..kMaxDepthwiseBranches.
constexpr int kMaxDepthwiseBranches = 4;
struct DepthwiseBranch {
  int dilation = 1;
  TensorView x, y;
  const float* weight = nullptr;  // [C][3][3]
  const float* scale = nullptr;   // [C] or null (= 1)
  const float* bias = nullptr;    // [C] or null (= 0)
};
struct DepthwiseBranches {
  int stride = 1;
  bool relu = true;
  int count = 0;
  DepthwiseBranch branch[kMaxDepthwiseBranches];
  DepthwiseParams params(int i) const { return DepthwiseParams{stride, branch[i].dilation, relu}; }
};

// The host executors' branch op: their depthwise_atrous_fwd `fwd`, branch after branch.
template <typename Fwd>
void run_depthwise_branches_one_by_one(const Context& ctx, const DepthwiseBranches& b, Fwd fwd) {
  for (int i = 0; i < b.count; ++i) {
    const DepthwiseBranch& br = b.branch[i];
    fwd(ctx, b.params(i), br.x, br.weight, br.scale, br.bias, br.y);
  }
}

#define FARSEE_DEPTHWISE_ATROUS_BRANCHES_FWD_ARGS const Context &ctx, const DepthwiseBranches &b
FARSEE_DECLARE_OP(depthwise_atrous_branches_fwd, FARSEE_DEPTHWISE_ATROUS_BRANCHES_FWD_ARGS);

inline void depthwise_atrous_branches_fwd(FARSEE_DEPTHWISE_ATROUS_BRANCHES_FWD_ARGS) {
  FARSEE_REQUIRE(b.count >= 1 && b.count <= kMaxDepthwiseBranches,
                 "depthwise_atrous_branches_fwd: " << b.count << " branches, expected 1.."
                                                   << kMaxDepthwiseBranches);
  FARSEE_REQUIRE(b.stride >= 1, "depthwise_atrous_branches_fwd: stride " << b.stride);
  const DepthwiseBranch& first = b.branch[0];
  for (int i = 0; i < b.count; ++i) {
    const DepthwiseBranch& br = b.branch[i];
    FARSEE_REQUIRE(
        br.dilation >= 1 && br.weight != nullptr && br.x.data != nullptr && br.y.data != nullptr,
        "depthwise_atrous_branches_fwd: branch " << i << ": dilation " << br.dilation
                                                 << " (>= 1) or a null pointer");
    require_dtype(br.x, "depthwise_atrous_branches_fwd: branch x", first.x.dtype);
    require_shape(br.x, "depthwise_atrous_branches_fwd: branch x", first.x.shape);
    require_dtype(br.y, "depthwise_atrous_branches_fwd: branch y", first.x.dtype);
    require_shape(br.y, "depthwise_atrous_branches_fwd: branch y",
                  depthwise_atrous_output_shape(b.params(i), br.x.shape));
  }
  FARSEE_DISPATCH(ctx, depthwise_atrous_branches_fwd, ctx, b);
}

#define FARSEE_DEPTHWISE_ATROUS_BWD_DATA_ARGS                                              \
  const Context &ctx, const DepthwiseParams &p, const TensorView &dy, const float *weight, \
      const TensorView &dx, bool accumulate
#define FARSEE_DEPTHWISE_ATROUS_BWD_WEIGHT_ARGS                                            \
  const Context &ctx, const DepthwiseParams &p, const TensorView &x, const TensorView &dy, \
      float *dw, void *workspace, size_t workspace_bytes
FARSEE_DECLARE_OP(depthwise_atrous_bwd_data, FARSEE_DEPTHWISE_ATROUS_BWD_DATA_ARGS);
FARSEE_DECLARE_OP(depthwise_atrous_bwd_weight, FARSEE_DEPTHWISE_ATROUS_BWD_WEIGHT_ARGS);

// Pixel lanes of the weight-gradient reduction: each lane sums a fixed strided subset of the
// output pixels (lane, lane + lanes, ...) into its own [C][9] partial. A function of the output
// pixel count only (not of dtype, alignment or device), so results are reproducible everywhere.
inline int depthwise_bwd_weight_lanes(int64_t out_pixels) {
  constexpr int64_t kPixelsPerLane = 32, kMaxLanes = 1024;
  int64_t lanes = (out_pixels + kPixelsPerLane - 1) / kPixelsPerLane;
  if (lanes > kMaxLanes) lanes = kMaxLanes;
  return int(lanes < 1 ? 1 : lanes);
}

// fp32 partials [lanes][C][9] (the reference executor needs none, but takes the same size).
inline size_t depthwise_atrous_bwd_weight_workspace_bytes(const DepthwiseParams& p, Shape4 x) {
  const Shape4 y = depthwise_atrous_output_shape(p, x);
  return size_t(depthwise_bwd_weight_lanes(y.pixels())) * size_t(x.c) * 9 * sizeof(float);
}

inline void depthwise_atrous_bwd_data(FARSEE_DEPTHWISE_ATROUS_BWD_DATA_ARGS) {
  FARSEE_REQUIRE(p.stride >= 1 && p.dilation >= 1, "depthwise_atrous_bwd_data: stride "
                                                       << p.stride << " and dilation " << p.dilation
                                                       << " must be >= 1");
  FARSEE_REQUIRE(weight != nullptr && dy.data != nullptr && dx.data != nullptr,
                 "depthwise_atrous_bwd_data: null pointer");
  require_dtype(dy, "depthwise_atrous_bwd_data: dy", dx.dtype);
  require_shape(dy, "depthwise_atrous_bwd_data: dy", depthwise_atrous_output_shape(p, dx.shape));
  FARSEE_DISPATCH(ctx, depthwise_atrous_bwd_data, ctx, p, dy, weight, dx, accumulate);
}

inline void depthwise_atrous_bwd_weight(FARSEE_DEPTHWISE_ATROUS_BWD_WEIGHT_ARGS) {
  FARSEE_REQUIRE(p.stride >= 1 && p.dilation >= 1, "depthwise_atrous_bwd_weight: stride "
                                                       << p.stride << " and dilation " << p.dilation
                                                       << " must be >= 1");
  FARSEE_REQUIRE(dw != nullptr && x.data != nullptr && dy.data != nullptr,
                 "depthwise_atrous_bwd_weight: null pointer");
  require_dtype(dy, "depthwise_atrous_bwd_weight: dy", x.dtype);
  require_shape(dy, "depthwise_atrous_bwd_weight: dy", depthwise_atrous_output_shape(p, x.shape));
  const size_t need = depthwise_atrous_bwd_weight_workspace_bytes(p, x.shape);
  FARSEE_REQUIRE(workspace_bytes >= need && (need == 0 || workspace != nullptr),
                 "depthwise_atrous_bwd_weight: workspace of " << workspace_bytes << " bytes, "
                                                              << need << " needed");
  FARSEE_DISPATCH(ctx, depthwise_atrous_bwd_weight, ctx, p, x, dy, dw, workspace, workspace_bytes);
}

}  // namespace farsee
