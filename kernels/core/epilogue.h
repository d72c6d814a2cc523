// The activation epilogue shared by every kernel that ends in "folded BN, [+ residual], [ReLU],
// convert and store" (conv_bn_act, depthwise_atrous, ...). fp32 in, fp32 math, float or __half out.
//
//   out[c] = act(scale[c] * acc + bias[c] [+ residual[c]])      act = ReLU or identity
//
// Small named pieces, CUTLASS-style, so a kernel can apply them where its accumulators live
// (e.g. per mma fragment element, or per staged shared-memory tile row):
//   ChannelAffine a = load_channel_affine(scale, bias, c);  // once per channel (null scale = 1,
//                                                           //  null bias = 0)
//   float v = apply_affine(acc, a);                         // fmaf(acc, scale, bias): one rounding
//   v = add_residual(v, residual);                          // ResNet: relu(bn(conv) + shortcut)
//   v = relu_if(enabled, v);                                // NaN propagates, as torch.relu
//   store_from_float<V>(dst, values);                       // kernels/core/vec.h: convert + store
// and the composition of all of them, BnActEpilogue, on one value or on a Pack of V consecutive
// channels (V = 1 scalar, 4 floats or 8 halves = one 16-byte store).
//
// Precision: the affine step is a single fused multiply-add in every build (nvcc and emu), so
// results differ from an exactly rounded scale * acc + bias (the reference computes it in double)
// by at most one fp32 rounding; with small-integer test data both are exact. fp16 outputs round
// once, at the store.
#pragma once

#include <cmath>

#include "kernels/core/hd.h"
#include "kernels/core/vec.h"

namespace farsee {

// Folded batch norm of one channel: y = scale * x + bias.
struct ChannelAffine {
  float scale;
  float bias;
};

FARSEE_HD ChannelAffine load_channel_affine(const float* scale, const float* bias, int channel) {
  return ChannelAffine{scale != nullptr ? scale[channel] : 1.0f,
                       bias != nullptr ? bias[channel] : 0.0f};
}

FARSEE_HD float apply_affine(float acc, ChannelAffine a) {
  return fmaf(acc, a.scale, a.bias);
}

FARSEE_HD float add_residual(float value, float residual) {
  return value + residual;
}

// `value < 0 ? 0 : value` keeps NaN (an unwritten, poisoned input stays visible in tests).
FARSEE_HD float relu(float value) {
  return value < 0.0f ? 0.0f : value;
}
FARSEE_HD float relu_if(bool enabled, float value) {
  return enabled ? relu(value) : value;
}

// act(scale[c] * acc + bias[c] [+ residual]) and its store; trivially copyable kernel argument.
// Each call reads scale[c] and bias[c]; a loop that revisits the same channels can hoist them
// with load_channel_affine() and use the pieces directly (as depthwise_atrous does).
struct BnActEpilogue {
  const float* scale = nullptr;  // [C] or null (= 1)
  const float* bias = nullptr;   // [C] or null (= 0)
  bool relu = false;

  FARSEE_HD float operator()(float acc, int channel) const {
    return relu_if(relu, apply_affine(acc, load_channel_affine(scale, bias, channel)));
  }
  FARSEE_HD float operator()(float acc, int channel, float residual) const {
    return relu_if(
        relu, add_residual(apply_affine(acc, load_channel_affine(scale, bias, channel)), residual));
  }

  // Channels first_channel .. first_channel + V - 1: epilogue, convert, one Pack store to dst.
  // residual (same element type and alignment as dst) may be null.
  template <int V, typename T>
  FARSEE_HD void store(T* dst, const float (&acc)[V], int first_channel,
                       const T* residual = nullptr) const {
    float residual_values[V];
    if (residual != nullptr) load_as_float<V>(residual, residual_values);
    float out[V];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      out[i] = residual != nullptr ? (*this)(acc[i], first_channel + i, residual_values[i])
                                   : (*this)(acc[i], first_channel + i);
    }
    store_from_float<V>(dst, out);
  }
};

}  // namespace farsee
