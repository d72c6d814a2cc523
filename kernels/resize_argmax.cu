// Bilinear resize of logits fused with argmax over channels -> uint8 labels (forward).
// PyTorch F.interpolate(mode='bilinear', align_corners = true or false) followed by
// torch.argmax(dim=channels); the full-resolution logits are never materialised.
//
// Algorithm: bilinear interpolation is separable and PyTorch evaluates it horizontally first:
//   v = l0y * (l0x * a + l1x * b) + l1y * (l0x * c + l1x * d)            (kernels/core/bilinear.h)
// so the horizontal terms of one source row are shared by every output row that reads that row
// (4 output rows per source row at the net's x4 upsampling). Per block, an output tile of
// tile_h x tile_w pixels of one image:
//   0. compute_taps: the tile's column and row taps (source indices, weights) are computed once
//      into shared memory;
//   1. stage_source_rows: for every source row the tile touches ([i0 of the first output row,
//      i1 of the last]) and every output column of the tile: the horizontal interpolation of all
//      C channels, in fp32, into shared memory (consecutive threads on consecutive channels:
//      coalesced NHWC reads);
//   2. each thread takes output pixels of the tile; argmax_pixel mixes the two staged rows its
//      pixel needs, channel by channel (16-byte shared loads of 4 channels), and keeps the
//      running argmax (strictly greater wins: ties keep the lowest channel).
// The result is bitwise the nested formula above; only the work is shared.
// Tiling: 256 threads, blockDim = (tile_w, 256 / tile_w); grid = (column tiles, row tiles, N).
//   The host picks the largest tile whose staged rows fit the shared-memory budget (the number of
//   source rows a tile touches is computed on the host with the same tap function the kernel uses,
//   so the two agree exactly); downsampling falls back to 1-row tiles, which need 2 source rows.
// Layout: logits NHWC (a channel slice is fine), C <= 255; labels uint8 [N][out_h][out_w].
// Precision: logits fp32 or fp16, interpolated in fp32; argmax with ties to the lowest channel
//   and NaN as the maximum (torch.argmax). Compiled with --fmad=false (kernels/CMakeLists.txt):
//   bilinear_mix rounds every product and sum as written, as the reference and emu do (nvcc's
//   default fused them into fmas, and a near-tie could then pick another label).
// Fused: the resize and the argmax (and the fp16 -> fp32 conversion).
#include <algorithm>
#include <cmath>

#include "kernels/core/bilinear.h"
#include "kernels/core/conv_shape.h"
#include "kernels/core/launch.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/vec.h"
#include "kernels/resize_argmax.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kStageBytes = 32 * 1024;
constexpr int kChannelPack = 4;  // staged rows are read 4 channels (16 bytes) at a time

struct ResizeTiling {
  int tile_w, tile_h;
  int max_rows;        // source rows any tile touches, at most
  int channel_stride;  // C rounded up to kChannelPack: floats per staged (row, column), so each
                       // staged channel vector starts 16-byte aligned
};

// 0. The tile's column and row taps, into shared memory.
FARSEE_DEVICE void compute_taps(BilinearTap* tap_x, BilinearTap* tap_y, int ox0, int oy0,
                                int tile_w, int tile_h, float scale_h, float scale_w, int in_h,
                                int in_w, bool align_corners, int thread, int threads) {
  for (int i = thread; i < tile_w; i += threads) {
    tap_x[i] = bilinear_tap(ox0 + i, scale_w, in_w, align_corners);
  }
  for (int i = thread; i < tile_h; i += threads) {
    tap_y[i] = bilinear_tap(oy0 + i, scale_h, in_h, align_corners);
  }
}

// 1. Horizontal interpolation of source rows [first_row, first_row + row_count) of image n at the
// tile's columns, into rows [row][column][stride]. Within a row, element k = column * C + c; a
// thread steps k by `threads` with incremental (column, channel) carries instead of a division
// per element (one carry suffices: threads % C < C).
template <typename T>
FARSEE_DEVICE void stage_source_rows(const Nhwc<const T>& logits, int n, int first_row,
                                     int row_count, const BilinearTap* tap_x, int tile_w,
                                     const ResizeTiling& tiling, float* rows, int thread,
                                     int threads) {
  const int stride = tiling.channel_stride;
  const int channels = logits.c;
  const int step_columns = threads / channels;
  const int step_channels = threads - step_columns * channels;
  const int start_column = thread / channels;
  const int start_channel = thread - start_column * channels;
  for (int r = 0; r < row_count; ++r) {
    const T* source_row = logits.pixel(n, first_row + r, 0);
    float* staged_row = rows + r * tiling.tile_w * stride;
    int column = start_column, c = start_channel;
    while (column < tile_w) {
      const BilinearTap tx = tap_x[column];
      const float a = to_float(ld(&source_row[int64_t(tx.i0) * logits.pixel_stride + c]));
      const float b = to_float(ld(&source_row[int64_t(tx.i1) * logits.pixel_stride + c]));
      st(&staged_row[column * stride + c], tx.l0 * a + tx.l1 * b);
      column += step_columns;
      c += step_channels;
      if (c >= channels) {
        c -= channels;
        ++column;
      }
    }
  }
}

// 2. Vertical interpolation of one output pixel from its two staged rows, and the argmax over
// the channels. NaN is tracked by a running sum (one add per channel, NaN if any value is NaN,
// or from inf - inf) and resolved by a second pass only in that rare case.
FARSEE_DEVICE int argmax_pixel(const float* upper, const float* lower, BilinearTap ty,
                               int channels) {
  float best = -INFINITY;
  int best_channel = 0;
  float nan_probe = 0.0f;
  int c = 0;
  for (; c + kChannelPack <= channels; c += kChannelPack) {
    float u[kChannelPack], d[kChannelPack];
    load_as_float<kChannelPack>(upper + c, u);
    load_as_float<kChannelPack>(lower + c, d);
#pragma unroll
    for (int k = 0; k < kChannelPack; ++k) {
      const float v = ty.l0 * u[k] + ty.l1 * d[k];
      nan_probe += v;
      if (v > best) {
        best = v;
        best_channel = c + k;
      }
    }
  }
  for (; c < channels; ++c) {
    const float v = ty.l0 * ld(&upper[c]) + ty.l1 * ld(&lower[c]);
    nan_probe += v;
    if (v > best) {
      best = v;
      best_channel = c;
    }
  }
  if (nan_probe != nan_probe) {
    // torch.argmax: a NaN is the maximum; the first NaN wins.
    for (c = 0; c < channels; ++c) {
      const float v = ty.l0 * upper[c] + ty.l1 * lower[c];
      if (v != v) return c;
    }
  }
  return best_channel;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    resize_argmax_kernel(Nhwc<const T> logits, uint8_t* __restrict__ labels, int out_h, int out_w,
                         float scale_h, float scale_w, bool align_corners, ResizeTiling tiling) {
  const int stride = tiling.channel_stride;
  float* rows = dynamic_smem<float>();  // [max_rows][tile_w][stride]
  BilinearTap* tap_x =
      reinterpret_cast<BilinearTap*>(rows + tiling.max_rows * tiling.tile_w * stride);
  BilinearTap* tap_y = tap_x + tiling.tile_w;

  const int n = blockIdx.z;
  const int ox0 = blockIdx.x * tiling.tile_w;
  const int oy0 = blockIdx.y * tiling.tile_h;
  const int tile_w = min(tiling.tile_w, out_w - ox0);
  const int tile_h = min(tiling.tile_h, out_h - oy0);
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  const int threads = blockDim.x * blockDim.y;

  compute_taps(tap_x, tap_y, ox0, oy0, tile_w, tile_h, scale_h, scale_w, logits.h, logits.w,
               align_corners, thread, threads);
  __syncthreads();
  const int first_row = tap_y[0].i0;
  const int row_count = tap_y[tile_h - 1].i1 - first_row + 1;  // i0, i1 are monotone in oy
  stage_source_rows(logits, n, first_row, row_count, tap_x, tile_w, tiling, rows, thread, threads);
  __syncthreads();

  // One output pixel per thread at a time.
  const int lx = threadIdx.x;
  if (lx >= tile_w) return;  // no barrier follows
  for (int ly = threadIdx.y; ly < tile_h; ly += blockDim.y) {
    const BilinearTap ty = tap_y[ly];
    const float* upper = rows + ((ty.i0 - first_row) * tiling.tile_w + lx) * stride;
    const float* lower = rows + ((ty.i1 - first_row) * tiling.tile_w + lx) * stride;
    st(&labels[(int64_t(n) * out_h + oy0 + ly) * out_w + ox0 + lx],
       uint8_t(argmax_pixel(upper, lower, ty, logits.c)));
  }
}

// Source rows touched by the worst row tile of height tile_h (same taps as the kernel).
int max_rows_per_tile(int in_h, int out_h, float scale_h, bool align_corners, int tile_h) {
  int worst = 0;
  for (int oy0 = 0; oy0 < out_h; oy0 += tile_h) {
    const int last = std::min(oy0 + tile_h, out_h) - 1;
    const int rows = bilinear_tap(last, scale_h, in_h, align_corners).i1 -
                     bilinear_tap(oy0, scale_h, in_h, align_corners).i0 + 1;
    worst = std::max(worst, rows);
  }
  return worst;
}

size_t staged_bytes(const ResizeTiling& t) {
  return size_t(t.max_rows) * t.tile_w * t.channel_stride * sizeof(float) +
         size_t(t.tile_w + t.tile_h) * sizeof(BilinearTap);
}

template <typename T>
void launch_resize_argmax(const Context& ctx, bool align_corners, const TensorView& logits,
                          int out_h, int out_w, uint8_t* labels) {
  const float scale_h = bilinear_scale(logits.h(), out_h, align_corners);
  const float scale_w = bilinear_scale(logits.w(), out_w, align_corners);
  // Largest tile first; the last candidate (8 x 1: two source rows of 8 columns, <= 16 KiB for
  // 255 channels) always fits.
  static const int kCandidates[][2] = {{32, 32}, {32, 16}, {32, 8}, {32, 4},
                                       {32, 2},  {32, 1},  {16, 1}, {8, 1}};
  ResizeTiling tiling{};
  tiling.channel_stride = ceil_div(logits.c(), kChannelPack) * kChannelPack;
  for (const auto& candidate : kCandidates) {
    tiling.tile_w = candidate[0];
    tiling.tile_h = candidate[1];
    tiling.max_rows = max_rows_per_tile(logits.h(), out_h, scale_h, align_corners, tiling.tile_h);
    if (staged_bytes(tiling) <= size_t(kStageBytes)) break;
  }
  FARSEE_REQUIRE(staged_bytes(tiling) <= size_t(kStageBytes),
                 "resize_argmax_fwd: internal tiling error (" << staged_bytes(tiling) << " bytes)");
  const dim3 grid(unsigned(ceil_div(out_w, tiling.tile_w)),
                  unsigned(ceil_div(out_h, tiling.tile_h)), unsigned(logits.n()));
  FARSEE_REQUIRE(grid.y <= 65535 && grid.z <= 65535,
                 "resize_argmax_fwd: output " << out_h << "x" << out_w << " with batch "
                                              << logits.n() << " exceeds the grid limits");
  const dim3 block(unsigned(tiling.tile_w), unsigned(kThreads / tiling.tile_w));
  auto kernel = resize_argmax_kernel<T>;
  FARSEE_LAUNCH(kernel, grid, block, staged_bytes(tiling), ctx.stream, nhwc<const T>(logits),
                labels, out_h, out_w, scale_h, scale_w, align_corners, tiling);
}

}  // namespace

void resize_argmax_fwd(FARSEE_RESIZE_ARGMAX_FWD_ARGS) {
  require_int_pixels(int64_t(logits.n()) * out_h * out_w, "resize_argmax_fwd: labels");
  if (logits.dtype == DType::F32) {
    launch_resize_argmax<float>(ctx, align_corners, logits, out_h, out_w, labels);
  } else {
    launch_resize_argmax<__half>(ctx, align_corners, logits, out_h, out_w, labels);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
