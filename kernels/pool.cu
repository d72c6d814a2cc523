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
// Fused: nothing here; inference on emu/cuda in fp16 fuses the pool after the stem into the stem
//   conv's epilogue instead (ConvEpilogue::max_pool, kernels/core/fused_max_pool.h: the same
//   max_keep_nan rule, the same window order), so this kernel runs for training and fp32/tf32.
//
// Backward (max_pool_bwd), gather form, no atomics: one thread owns V channels of a dx pixel
//   (same mapping, launch_pixel_channel_kernel2 over dx) and visits the windows that contain it
//   (output rows ceil((iy + pad - k + 1) / s) .. floor((iy + pad) / s), likewise columns, in
//   row-major order); for each it re-scans the window with PyTorch's rule (first strictly greater
//   or NaN wins, starting from the first in-image input) and adds dy when the winner is this
//   pixel. fp32 sums in window order, dx rounded once (fp16) and written. Up to 4 windows x 9
//   reads per pixel at 3x3 / s2; all reads are L1/L2 hits of neighbouring threads' data.
#include <cmath>

#include "kernels/core/fused_max_pool.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/pixel_channel_kernel.h"
#include "kernels/core/vec.h"
#include "kernels/pool.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kPixelsPerThread = 2;

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

template <typename T, int V>
__global__ void __launch_bounds__(256)
    max_pool_bwd_kernel(Nhwc<const T> x, Nhwc<const T> dy, Nhwc<T> dx, int window, int stride,
                        int pad) {
  const int c0 = thread_first_channel<V>(dx.c);
  if (c0 < 0) return;

  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(dx.pixels())) {
    const PixelCoord in = pixel_coord(p, dx.h, dx.w);
    const int oy_end = min(dy.h, last_window_containing(in.y, stride, pad) + 1);
    const int ox_end = min(dy.w, last_window_containing(in.x, stride, pad) + 1);
    float acc[V];
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.0f;
    for (int oy = first_window_containing(in.y, window, stride, pad); oy < oy_end; ++oy) {
      for (int ox = first_window_containing(in.x, window, stride, pad); ox < ox_end; ++ox) {
        const WindowStart start = window_start(PixelCoord{in.n, oy, ox}, stride, pad);
        // The window's winner per channel, tracked only as "is it this pixel?" (PyTorch's index
        // starts at the first in-image input, then moves to each strictly greater or NaN value).
        float best[V];
        bool mine[V];
#pragma unroll
        for (int i = 0; i < V; ++i) {
          best[i] = -INFINITY;
          mine[i] = false;
        }
        bool first = true;
        for (int iy = max(start.y, 0); iy < min(start.y + window, x.h); ++iy) {
          for (int ix = max(start.x, 0); ix < min(start.x + window, x.w); ++ix) {
            const bool here = iy == in.y && ix == in.x;
            float v[V];
            load_as_float<V>(x.pixel(in.n, iy, ix) + c0, v);
#pragma unroll
            for (int i = 0; i < V; ++i) {
              if (first) mine[i] = here;
              if (v[i] > best[i] || v[i] != v[i]) {
                best[i] = v[i];
                mine[i] = here;
              }
            }
            first = false;
          }
        }
        float g[V];
        load_as_float<V>(dy.pixel(in.n, oy, ox) + c0, g);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          if (mine[i]) acc[i] += g[i];
        }
      }
    }
    store_from_float<V>(dx.pixel(p) + c0, acc);
  }
}

}  // namespace

void max_pool_fwd(FARSEE_MAX_POOL_FWD_ARGS) {
  launch_pixel_channel_kernel(ctx, x, y, kPixelsPerThread, "max_pool_fwd: x",
                              FARSEE_PIXEL_KERNEL_FOR(max_pool_kernel), p.kernel, p.stride, p.pad);
}

void max_pool_bwd(FARSEE_MAX_POOL_BWD_ARGS) {
  launch_pixel_channel_kernel2(ctx, x, dy, dx, kPixelsPerThread, "max_pool_bwd: x",
                               FARSEE_PIXEL_KERNEL_FOR(max_pool_bwd_kernel), p.kernel, p.stride,
                               p.pad);
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
