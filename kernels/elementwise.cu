// Elementwise training helpers (kernels/elementwise.h).
//
// tensor_add_inplace (acc += x): the per-pixel NHWC mapping of launch_pixel_channel_kernel()
//   (kernels/core/pixel_channel_kernel.h): threadIdx.x = group of V consecutive channels,
//   threadIdx.y = pixel, grid-stride over pixels; 16-byte packs (4 floats / 8 halves) when both
//   views allow them, else scalar. Layout NHWC, channel slices allowed. Precision: fp32 add, one
//   rounding to the storage dtype. Fused: nothing.
// fill_zero: the runtime's memset (cudaMemsetAsync on the stream; memset under emu), no kernel.
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/pixel_channel_kernel.h"
#include "kernels/core/runtime.h"
#include "kernels/core/vec.h"
#include "kernels/elementwise.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kPixelsPerThread = 4;

template <typename T, int V>
__global__ void __launch_bounds__(256) add_inplace_kernel(Nhwc<const T> x, Nhwc<T> acc) {
  const int c0 = thread_first_channel<V>(acc.c);
  if (c0 < 0) return;
  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(acc.pixels())) {
    float a[V], b[V];
    load_as_float<V>(acc.pixel(p) + c0, a);
    load_as_float<V>(x.pixel(p) + c0, b);
#pragma unroll
    for (int i = 0; i < V; ++i) a[i] += b[i];
    store_from_float<V>(acc.pixel(p) + c0, a);
  }
}

}  // namespace

void tensor_add_inplace(const Context& ctx, const TensorView& acc, const TensorView& x) {
  launch_pixel_channel_kernel(ctx, x, acc, kPixelsPerThread, "tensor_add_inplace: x",
                              FARSEE_PIXEL_KERNEL_FOR(add_inplace_kernel));
}

void fill_zero(const Context& ctx, void* data, size_t bytes) {
  rt::memset(ctx, data, 0, bytes);
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
