// Pixel unshuffle, NHWC, PyTorch nn.PixelUnshuffle channel order (kernels/pixel_unshuffle.h):
//   y[n, h, w, c*r*r + i*r + j] = x[n, h*r + i, w*r + j, c]
//
// Algorithm: a gather, one thread per output element, grid-stride over the N*H*W*C*r*r outputs
//   (pixel-major, channels fastest), so the stores are coalesced; each thread reads its one input
//   element (consecutive threads read the r*r pixels of a window, then the next channel: strided
//   loads inside a few cache lines). No shared memory, no reduction. A shared-memory transpose as
//   in pixel_shuffle.cu would also coalesce the loads; this op moves ~1/300 of a training step's
//   bytes (paper preset: up1's 4096-channel gradient at stride 32), so the simple form is kept.
// Layout: x [N,H*r,W*r,C], y [N,H,W,C*r*r]; either may be a channel slice.
// Precision: a copy; fp32 or fp16 storage, bit-exact.
// Fused: nothing. Used by the training graph as the backward of pixel_shuffle_fwd.
#include <algorithm>

#include "kernels/core/conv_shape.h"
#include "kernels/core/launch.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/pixel_unshuffle.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride beyond this

template <typename T>
__global__ void __launch_bounds__(kThreads)
    pixel_unshuffle_kernel(Nhwc<const T> x, Nhwc<T> y, int factor) {
  const int taps = factor * factor;
  const int64_t total = y.pixels() * y.c;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int p = int(e / y.c);
    const int k = int(e - int64_t(p) * y.c);
    const PixelCoord o = pixel_coord(p, y.h, y.w);
    const int c = k / taps;
    const int t = k - c * taps;
    const int i = t / factor;
    const int j = t - i * factor;
    st(&y.pixel(p)[k], ld(&x.pixel(o.n, o.y * factor + i, o.x * factor + j)[c]));
  }
}

template <typename T>
void launch_pixel_unshuffle(const Context& ctx, int factor, const TensorView& x,
                            const TensorView& y) {
  const int64_t total = y.shape.elements();
  if (total == 0) return;
  const int64_t blocks = std::min<int64_t>(kMaxBlocks, (total + kThreads - 1) / kThreads);
  auto kernel = pixel_unshuffle_kernel<T>;
  FARSEE_LAUNCH(kernel, unsigned(blocks), kThreads, 0, ctx.stream, nhwc<const T>(x), nhwc<T>(y),
                factor);
}

}  // namespace

void pixel_unshuffle_fwd(FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS) {
  require_int_pixels(x.shape.pixels(), "pixel_unshuffle_fwd: x");
  if (x.dtype == DType::F32) {
    launch_pixel_unshuffle<float>(ctx, factor, x, y);
  } else {
    launch_pixel_unshuffle<__half>(ctx, factor, x, y);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
