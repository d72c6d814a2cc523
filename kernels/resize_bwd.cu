// Bilinear resize backward (kernels/resize_bwd.h): the exact transpose of the bilinear forward
// with the kernels' taps (kernels/core/bilinear.h, PyTorch's F.interpolate(mode='bilinear') for
// both align_corners).
//
// Algorithm: gather, no atomics (kernels/core/bilinear_gather.h): a block owns kTileW columns of
//   one dx row (tiles of 1 x kTileW); it stages the taps of the dy rows and columns that read them,
//   then each thread takes (column, channel) pairs of the tile, channel fastest, and sums over the
//   dy rows oy and columns ox whose taps include its pixel: dx += (wy * wx) * dy[oy][ox][c], with
//   wy, wx the forward's weights of this pixel (l0, l1, or l0 + l1 where both taps coincide at the
//   border).
// Tiling: 256 threads, blockDim = (256); grid = (column tiles, dx rows, N). Consecutive threads
//   read consecutive channels of the same dy pixel: coalesced NHWC reads for any C.
// Layout: dy [N, H_out, W_out, C], dx [N, H_in, W_in, C], NHWC, channel slices allowed.
// Precision: dy and dx fp32 or fp16 each (4 instantiations), sums in fp32 in (oy, ox) order, dx
//   rounded once and written.
// Fused: the dtype conversions.
#include "kernels/core/bilinear.h"
#include "kernels/core/bilinear_gather.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/vec.h"
#include "kernels/resize_bwd.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kTileW = 32;

template <typename TIn, typename TOut>
__global__ void __launch_bounds__(kThreads)
    resize_bilinear_bwd_kernel(Nhwc<const TIn> dy, Nhwc<TOut> dx, BilinearGatherGeometry g) {
  const BilinearGatherTile t = bilinear_gather_stage(g);  // one row: t.iy0, t.row_range[0]
  const BilinearRange rows = t.row_range[0];
  const int channels = dx.c;
  for (int k = int(threadIdx.x); k < t.width * channels; k += kThreads) {
    const int j = k / channels;
    const int c = k - j * channels;
    const int ix = t.ix0 + j;
    const BilinearRange cols = t.col_range[j];
    float acc = 0.0f;
    for (int oy = rows.begin; oy < rows.end; ++oy) {
      const float wy = bilinear_tap_weight(t.row_tap[oy - t.row_begin], t.iy0);
      const TIn* row = dy.pixel(t.n, oy, 0) + c;
      for (int ox = cols.begin; ox < cols.end; ++ox) {
        const float wx = bilinear_tap_weight(t.col_tap[ox - t.col_begin], ix);
        acc = fmaf(wy * wx, to_float(row[int64_t(ox) * dy.pixel_stride]), acc);
      }
    }
    dx.pixel(t.n, t.iy0, ix)[c] = from_float<TOut>(acc);
  }
}

template <typename TIn, typename TOut>
void launch(const Context& ctx, const BilinearGatherGeometry& g, const TensorView& dy,
            const TensorView& dx) {
  auto kernel = resize_bilinear_bwd_kernel<TIn, TOut>;
  FARSEE_LAUNCH(kernel, bilinear_gather_grid(g, dx.n()), dim3(kThreads),
                bilinear_gather_smem_bytes(g), ctx.stream, nhwc<const TIn>(dy), nhwc<TOut>(dx), g);
}

}  // namespace

void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS) {
  require_int_pixels(dy.shape.pixels(), "resize_bilinear_bwd: dy");
  require_int_pixels(dx.shape.pixels(), "resize_bilinear_bwd: dx");
  const BilinearGatherGeometry g =
      bilinear_gather_geometry(dx.h(), dx.w(), dy.h(), dy.w(), align_corners, 1, kTileW);
  FARSEE_REQUIRE(bilinear_gather_smem_bytes(g) <= 48 * 1024,
                 "resize_bilinear_bwd: " << dx.h() << "x" << dx.w() << " <- " << dy.h() << "x"
                                         << dy.w() << " is too large a scale factor");
  const bool in32 = dy.dtype == DType::F32, out32 = dx.dtype == DType::F32;
  if (in32 && out32) launch<float, float>(ctx, g, dy, dx);
  if (in32 && !out32) launch<float, __half>(ctx, g, dy, dx);
  if (!in32 && out32) launch<__half, float>(ctx, g, dy, dx);
  if (!in32 && !out32) launch<__half, __half>(ctx, g, dy, dx);
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
