// Launching the per-pixel NHWC kernels (depthwise_atrous, pool): kernels shaped
//   template <typename T, int V> __global__ void k(Nhwc<const T> x, Nhwc<T> y, args...)
// that map x to y pixel by pixel with the thread mapping of pixel_channel_launch()
// (kernels/core/nhwc_index.h). For .cu files only (it launches).
#pragma once

#include "kernels/core/executor.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"

namespace farsee {

// Device side of the mapping: this thread's first channel (V consecutive channels per thread), or
// -1 when its channel group lies past the last channel.
template <int V>
FARSEE_DEVICE int thread_first_channel(int channels) {
  const int c0 = int(blockIdx.x * blockDim.x + threadIdx.x) * V;
  return c0 < channels ? c0 : -1;
}

// This thread's output pixels: a grid-stride loop over blockIdx.y / threadIdx.y.
#define FARSEE_FOR_EACH_THREAD_PIXEL(p, pixels)                          \
  for (int p = int(blockIdx.y * blockDim.y + threadIdx.y); p < (pixels); \
       p += int(gridDim.y * blockDim.y))

// First input row and column of output pixel o's window (PyTorch: out * stride - pad).
struct WindowStart {
  int y, x;
};
FARSEE_DEVICE WindowStart window_start(PixelCoord o, int stride, int pad) {
  return WindowStart{window_first(o.y, stride, pad), window_first(o.x, stride, pad)};
}

// Checks the pixel count, picks the storage type and the 16-byte vector width when both views
// allow it (else V = 1), and launches pick(StorageVector<T, V>{}) over y on ctx.stream.
template <typename Pick, typename... Args>
void launch_pixel_channel_kernel(const Context& ctx, const TensorView& x, const TensorView& y,
                                 int pixels_per_thread, const char* what, Pick&& pick,
                                 Args... args) {
  require_int_pixels(x.shape.pixels(), what);
  const int vec = vector16_width(x.dtype);
  with_storage_vector(x.dtype, packs_fit(x, vec) && packs_fit(y, vec), [&](auto sv) {
    using T = typename decltype(sv)::type;
    constexpr int V = decltype(sv)::width;
    const PixelChannelLaunch l =
        pixel_channel_launch(y.shape.pixels(), y.c() / V, pixels_per_thread);
    auto kernel = pick(sv);
    FARSEE_LAUNCH(kernel, l.grid, l.block, 0, ctx.stream, nhwc<const T>(x), nhwc<T>(y), args...);
  });
}

// `pick` for launch_pixel_channel_kernel: the instance of a kernel template for a StorageVector.
#define FARSEE_PIXEL_KERNEL_FOR(kernel_template) \
  [](auto sv) { return kernel_template<typename decltype(sv)::type, decltype(sv)::width>; }

}  // namespace farsee

namespace farsee {

// The same launch for kernels with two inputs, shaped
//   template <typename T, int V> __global__ void k(Nhwc<const T> a, Nhwc<const T> b, Nhwc<T> y,
//                                                  args...)
// (backward kernels: e.g. x and dy in, dx out): one dtype, vector width only when all three views
// allow it; the thread mapping covers y.
template <typename Pick, typename... Args>
void launch_pixel_channel_kernel2(const Context& ctx, const TensorView& a, const TensorView& b,
                                  const TensorView& y, int pixels_per_thread, const char* what,
                                  Pick&& pick, Args... args) {
  require_int_pixels(a.shape.pixels(), what);
  require_int_pixels(b.shape.pixels(), what);
  require_int_pixels(y.shape.pixels(), what);
  const int vec = vector16_width(y.dtype);
  with_storage_vector(y.dtype, packs_fit(a, vec) && packs_fit(b, vec) && packs_fit(y, vec),
                      [&](auto sv) {
                        using T = typename decltype(sv)::type;
                        constexpr int V = decltype(sv)::width;
                        const PixelChannelLaunch l =
                            pixel_channel_launch(y.shape.pixels(), y.c() / V, pixels_per_thread);
                        auto kernel = pick(sv);
                        FARSEE_LAUNCH(kernel, l.grid, l.block, 0, ctx.stream, nhwc<const T>(a),
                                      nhwc<const T>(b), nhwc<T>(y), args...);
                      });
}

}  // namespace farsee
