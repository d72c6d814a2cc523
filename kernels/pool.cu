// Max pooling (forward), NHWC, PyTorch nn.MaxPool2d semantics: implicit -inf padding, floor
// output size, NaN propagates (a NaN in the window is the maximum, as in PyTorch).
//
// Algorithm: one thread owns V consecutive channels and walks output pixels (grid-stride); per
//   pixel it reads the kernel x kernel window's input vectors that lie inside the image and keeps
//   the running maximum. The net's case is 3x3 / stride 2 / pad 1 after the stem.
// Tiling / thread mapping: pixel_channel_launch() (kernels/core/nhwc_index.h): threadIdx.x =
//   channel group, threadIdx.y = pixel: warps read contiguous channels, coalesced for any C.
// Layout: x, y NHWC, either may be a channel slice (pixel_stride != C, offset data).
// Precision: fp32 or fp16 storage, compared in fp32 (exact: the maximum is one of the inputs).
// Vectors: 16-byte packs (4 floats / 8 halves) when C, strides and addresses allow, else scalar.
// Fused: nothing (a candidate for the stem conv's epilogue later, DESIGN.md section 5).
#include <cmath>

#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/pixel_channel_kernel.h"
#include "kernels/core/vec.h"
#include "kernels/pool.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kPixelsPerThread = 2;

// PyTorch's max rule: take v when it is larger or NaN.
FARSEE_HD float max_keep_nan(float running, float v) {
  return (v > running || v != v) ? v : running;
}

template <typename T, int V>
__global__ void __launch_bounds__(256)
    max_pool_kernel(Nhwc<const T> x, Nhwc<T> y, int window, int stride, int pad) {
  const int c0 = thread_first_channel<V>(y.c);
  if (c0 < 0) return;

  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(y.pixels())) {
    const PixelCoord o = pixel_coord(p, y.h, y.w);
    const WindowStart start = window_start(o, stride, pad);
    float m[V];
#pragma unroll
    for (int i = 0; i < V; ++i) m[i] = -INFINITY;
    // pad <= window / 2 (checked by the entry point): every window holds at least one input.
    for (int iy = max(start.y, 0); iy < min(start.y + window, x.h); ++iy) {
      for (int ix = max(start.x, 0); ix < min(start.x + window, x.w); ++ix) {
        float v[V];
        load_as_float<V>(x.pixel(o.n, iy, ix) + c0, v);
#pragma unroll
        for (int i = 0; i < V; ++i) m[i] = max_keep_nan(m[i], v[i]);
      }
    }
    store_from_float<V>(y.pixel(p) + c0, m);
  }
}

}  // namespace

void max_pool_fwd(FARSEE_MAX_POOL_FWD_ARGS) {
  launch_pixel_channel_kernel(ctx, x, y, kPixelsPerThread, "max_pool_fwd: x",
                              FARSEE_PIXEL_KERNEL_FOR(max_pool_kernel), p.kernel, p.stride, p.pad);
}

void max_pool_bwd(FARSEE_MAX_POOL_BWD_ARGS) {
  FARSEE_REQUIRE(false, "max_pool_bwd: kernel not implemented yet");
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
