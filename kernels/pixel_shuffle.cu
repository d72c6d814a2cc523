// Pixel shuffle (forward), NHWC, PyTorch nn.PixelShuffle channel order:
//   y[n, h*r + i, w*r + j, c] = x[n, h, w, c*r*r + i*r + j]
//
// Algorithm: a per-pixel transpose [c][i][j] -> [i][j][c] staged through shared memory, so both
//   the loads and the stores are contiguous runs of NHWC memory:
//   1. load: a tile of `tile_w` consecutive input pixels of one input row and output channels
//      [c0, c0 + tile_c), i.e. the contiguous input channels [c0*r*r, (c0 + tile_c)*r*r) of each
//      pixel, consecutive threads on consecutive elements;
//   2. store: for each of the r output rows, the tile's tile_w*r output pixels x tile_c channels,
//      consecutive threads on consecutive channels.
// Tiling: one block (256 threads) per (input row, pixel tile, channel tile), flattened into
//   blockIdx.x. Shared memory holds tile_w * tile_c slots of r*r + 1 elements: the +1 padding makes
//   the channel-strided reads of step 2 hit distinct banks (r*r + 1 is odd for even r).
// Layout: x [N,H,W,C*r*r], y [N,H*r,W*r,C], either may be a channel slice.
// Precision: a copy; fp32 or fp16 storage, bit-exact.
// Fused: nothing; in the net the shuffle is fused into the producing conv's store (this op is the
//   reference point for that store mode and the fallback).
#include <algorithm>

#include "kernels/core/conv_shape.h"
#include "kernels/core/launch.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/pixel_shuffle.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kStageBytes = 24 * 1024;  // leaves room for several blocks per SM
constexpr int kMaxTileChannels = 64;
constexpr int kMaxTilePixels = 32;

struct ShuffleTiling {
  int tile_w;  // input pixels per tile
  int tile_c;  // output channels per tile
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    pixel_shuffle_kernel(Nhwc<const T> x, Nhwc<T> y, int factor, ShuffleTiling tiling) {
  T* stage = dynamic_smem<T>();
  const int taps = factor * factor;
  const int slot = taps + 1;

  // blockIdx.x = (input row, pixel tile, channel tile), channel tile fastest.
  const int channel_tiles = ceil_div(y.c, tiling.tile_c);
  const int pixel_tiles = ceil_div(x.w, tiling.tile_w);
  const int channel_tile = blockIdx.x % channel_tiles;
  const int pixel_tile = (blockIdx.x / channel_tiles) % pixel_tiles;
  const int input_row = blockIdx.x / (channel_tiles * pixel_tiles);  // n * H + h
  const int n = input_row / x.h;
  const int h = input_row % x.h;
  const int w0 = pixel_tile * tiling.tile_w;
  const int c0 = channel_tile * tiling.tile_c;
  const int tile_w = min(tiling.tile_w, x.w - w0);
  const int tile_c = min(tiling.tile_c, y.c - c0);

  const int input_run = tile_c * taps;  // contiguous input elements per pixel
  for (int e = threadIdx.x; e < tile_w * input_run; e += blockDim.x) {
    const int t = e / input_run;
    const int k = e - t * input_run;
    const int c = k / taps;
    st(&stage[(t * tiling.tile_c + c) * slot + (k - c * taps)],
       ld(&x.pixel(n, h, w0 + t)[c0 * taps + k]));
  }
  __syncthreads();

  const int output_run = tile_w * factor * tile_c;  // per output row: (t, j) pixels x tile_c
  for (int i = 0; i < factor; ++i) {
    for (int e = threadIdx.x; e < output_run; e += blockDim.x) {
      const int q = e / tile_c;  // = t * factor + j
      const int c = e - q * tile_c;
      const int t = q / factor;
      const int j = q - t * factor;
      st(&y.pixel(n, h * factor + i, w0 * factor + q)[c0 + c],
         ld(&stage[(t * tiling.tile_c + c) * slot + i * factor + j]));
    }
  }
}

template <typename T>
void launch_pixel_shuffle(const Context& ctx, int factor, const TensorView& x,
                          const TensorView& y) {
  const int slot_bytes = (factor * factor + 1) * int(sizeof(T));
  ShuffleTiling tiling;
  tiling.tile_c = std::max(1, std::min({y.c(), kMaxTileChannels, kStageBytes / slot_bytes}));
  tiling.tile_w =
      std::max(1, std::min({x.w(), kMaxTilePixels, kStageBytes / (slot_bytes * tiling.tile_c)}));
  const size_t smem = size_t(tiling.tile_w) * tiling.tile_c * slot_bytes;
  const int64_t blocks =
      int64_t(x.n()) * x.h() * ceil_div(x.w(), tiling.tile_w) * ceil_div(y.c(), tiling.tile_c);
  FARSEE_REQUIRE(blocks < (int64_t(1) << 31),
                 "pixel_shuffle_fwd: x " << to_string(x.shape) << " is too large");
  auto kernel = pixel_shuffle_kernel<T>;
  if (smem > 48 * 1024) FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, smem);  // only for huge factors
  FARSEE_LAUNCH(kernel, unsigned(blocks), kThreads, smem, ctx.stream, nhwc<const T>(x), nhwc<T>(y),
                factor, tiling);
}

}  // namespace

void pixel_shuffle_fwd(FARSEE_PIXEL_SHUFFLE_FWD_ARGS) {
  require_int_pixels(y.shape.pixels(), "pixel_shuffle_fwd: y");
  if (x.dtype == DType::F32) {
    launch_pixel_shuffle<float>(ctx, factor, x, y);
  } else {
    launch_pixel_shuffle<__half>(ctx, factor, x, y);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
