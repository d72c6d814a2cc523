// Depthwise atrous 3x3 convolution + folded BN + optional ReLU (forward), NHWC.
//
// Algorithm: direct convolution; one thread owns V consecutive channels (a "channel group") and
//   walks output pixels with a grid-stride loop. Its 9 x V weights and V (scale, bias) pairs are
//   loaded into registers once; per output pixel it reads up to 9 input vectors of V channels
//   (taps in the zero padding are skipped), accumulates in fp32 and applies the epilogue.
// Tiling / thread mapping: kernels/core/nhwc_index.h pixel_channel_launch(): threadIdx.x = channel
//   group, threadIdx.y = pixel, so a warp reads contiguous channels of adjacent pixels (coalesced
//   NHWC loads and stores for any C, any dilation).
// Layout: x, y NHWC, possibly channel slices of wider buffers (pixel_stride != C, offset data);
//   weight [C][3][3] fp32; scale, bias [C] fp32 (null = 1 / 0). padding = dilation.
// Precision: fp32 or fp16 storage (x and y alike), fp32 accumulation with fused multiply-adds in
//   tap order (r, s), fp16 output rounded once at the store.
// Vectors: V = 4 floats or 8 halves (one 16-byte load/store) when C, both pixel strides and both
//   base addresses allow; otherwise V = 1 (e.g. C = 19, or a slice at an odd channel offset).
// Fused: BN scale/bias, ReLU, the concat (writing y as a slice of the concat buffer).
#include "kernels/core/epilogue.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/pixel_channel_kernel.h"
#include "kernels/core/vec.h"
#include "kernels/depthwise_atrous.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kTaps = 3;
// Pixels per thread when the grid would otherwise be larger: amortises the register-resident
// weights over several pixels while still giving the GPU tens of thousands of threads.
constexpr int kPixelsPerThread = 4;

template <typename T, int V>
__global__ void __launch_bounds__(256)
    depthwise3x3_kernel(Nhwc<const T> x, Nhwc<T> y, const float* __restrict__ weight,
                        const float* __restrict__ scale, const float* __restrict__ bias, bool relu,
                        int stride, int dilation) {
  const int c0 = thread_first_channel<V>(y.c);
  if (c0 < 0) return;

  float w[kTaps * kTaps][V];
  ChannelAffine affine[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
#pragma unroll
    for (int t = 0; t < kTaps * kTaps; ++t) w[t][i] = __ldg(weight + (c0 + i) * kTaps * kTaps + t);
    affine[i] = load_channel_affine(scale, bias, c0 + i);
  }

  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(y.pixels())) {
    const PixelCoord o = pixel_coord(p, y.h, y.w);
    const WindowStart start = window_start(o, stride, dilation);  // padding = dilation
    float acc[V];
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.0f;
#pragma unroll
    for (int r = 0; r < kTaps; ++r) {
      const int iy = start.y + r * dilation;
      if (iy < 0 || iy >= x.h) continue;
#pragma unroll
      for (int s = 0; s < kTaps; ++s) {
        const int ix = start.x + s * dilation;
        if (ix < 0 || ix >= x.w) continue;
        float v[V];
        load_as_float<V>(x.pixel(o.n, iy, ix) + c0, v);
#pragma unroll
        for (int i = 0; i < V; ++i) acc[i] = fmaf(v[i], w[r * kTaps + s][i], acc[i]);
      }
    }
    float out[V];
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = relu_if(relu, apply_affine(acc[i], affine[i]));
    store_from_float<V>(y.pixel(p) + c0, out);
  }
}

}  // namespace

void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS) {
  launch_pixel_channel_kernel(ctx, x, y, kPixelsPerThread, "depthwise_atrous_fwd: x",
                              FARSEE_PIXEL_KERNEL_FOR(depthwise3x3_kernel), weight, scale, bias,
                              p.relu, p.stride, p.dilation);
}

void depthwise_atrous_bwd_data(FARSEE_DEPTHWISE_ATROUS_BWD_DATA_ARGS) {
  FARSEE_REQUIRE(false, "depthwise_atrous_bwd_data: kernel not implemented yet");
}

void depthwise_atrous_bwd_weight(FARSEE_DEPTHWISE_ATROUS_BWD_WEIGHT_ARGS) {
  FARSEE_REQUIRE(false, "depthwise_atrous_bwd_weight: kernel not implemented yet");
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
