// Gather form of the bilinear resize's transpose (the gradient of softmax_ce_upsample): the
// blocks own the INPUT (low-resolution) side and each input element sums over the output pixels
// whose taps read it, so no two threads ever write the same element (no atomics).
//
// A block owns a tile of tile_h x tile_w input pixels of one image. Along each axis the output
// coordinates reading input coordinate i form a contiguous range (bilinear_source_range,
// kernels/core/bilinear.h), monotone in i; the block stages in shared memory
//   - the output-row range of each of its rows and the output-column range of each of its columns,
//   - the taps of the union of those output rows and of the union of those output columns,
// so the inner loops read their weights from shared memory. The host sizes the staging with the
// same tap function (bilinear_gather_geometry), so host and kernel agree exactly.
// For .cu files only (kernels use __syncthreads and dynamic shared memory).
#pragma once

#include <algorithm>

#include "kernels/core/bilinear.h"
#include "kernels/core/check.h"
#include "kernels/core/launch.h"

namespace farsee {

struct BilinearGatherGeometry {
  int in_h, in_w, out_h, out_w;
  float scale_h, scale_w;
  bool align_corners;
  int tile_h, tile_w;  // input pixels per block (tile_h + tile_w <= the block's thread count)
  int max_rows;        // output rows reading one tile's input rows, at most
  int max_cols;        // output columns reading one tile's input columns, at most
};

// Host: the most output coordinates that read one tile of `tile` consecutive input coordinates.
inline int bilinear_gather_span(int in, int out, float scale, bool align_corners, int tile) {
  int worst = 1;
  for (int i0 = 0; i0 < in; i0 += tile) {
    const int last = std::min(i0 + tile, in) - 1;
    const int span = bilinear_source_range(last, scale, in, out, align_corners).end -
                     bilinear_source_range(i0, scale, in, out, align_corners).begin;
    worst = std::max(worst, span);
  }
  return worst;
}

// Host: the geometry for input in_h x in_w resized to out_h x out_w, tiles of tile_h x tile_w.
inline BilinearGatherGeometry bilinear_gather_geometry(int in_h, int in_w, int out_h, int out_w,
                                                       bool align_corners, int tile_h, int tile_w) {
  BilinearGatherGeometry g{};
  g.in_h = in_h;
  g.in_w = in_w;
  g.out_h = out_h;
  g.out_w = out_w;
  g.align_corners = align_corners;
  g.scale_h = bilinear_scale(in_h, out_h, align_corners);
  g.scale_w = bilinear_scale(in_w, out_w, align_corners);
  g.tile_h = tile_h;
  g.tile_w = tile_w;
  g.max_rows = bilinear_gather_span(in_h, out_h, g.scale_h, align_corners, tile_h);
  g.max_cols = bilinear_gather_span(in_w, out_w, g.scale_w, align_corners, tile_w);
  return g;
}

// Bytes of the staging (a kernel may put its own shared arrays after it: the size is a
// multiple of 16), and the grid (column tiles, row tiles, images).
FARSEE_HD size_t bilinear_gather_smem_bytes(const BilinearGatherGeometry& g) {
  const size_t bytes = size_t(g.max_rows + g.max_cols) * sizeof(BilinearTap) +
                       size_t(g.tile_w + g.tile_h) * sizeof(BilinearRange);
  return (bytes + 15) / 16 * 16;
}
inline dim3 bilinear_gather_grid(const BilinearGatherGeometry& g, int images) {
  const int row_tiles = (g.in_h + g.tile_h - 1) / g.tile_h;
  FARSEE_REQUIRE(row_tiles <= 65535 && images <= 65535,
                 "bilinear gather: " << row_tiles << " row tiles x " << images
                                     << " images exceed the grid limits");
  return dim3(unsigned((g.in_w + g.tile_w - 1) / g.tile_w), unsigned(row_tiles), unsigned(images));
}

// Device: what a block staged. Input row iy0 + r of the tile is read by output rows
// [row_range[r].begin, row_range[r].end), input column ix0 + j by output columns
// [col_range[j].begin, col_range[j].end); the taps of output row oy and column ox are
// row_tap[oy - row_begin] and col_tap[ox - col_begin], for oy in [row_begin, row_end) and ox in
// [col_begin, col_end) (the unions).
struct BilinearGatherTile {
  int n, iy0, ix0, height, width;  // image, first input row and column, tile size here
  int row_begin, row_end, col_begin, col_end;
  const BilinearTap* row_tap;
  const BilinearTap* col_tap;
  const BilinearRange* row_range;
  const BilinearRange* col_range;
};

// Every thread of the block must call it (it holds two barriers).
FARSEE_DEVICE BilinearGatherTile bilinear_gather_stage(const BilinearGatherGeometry& g) {
  BilinearTap* row_tap = dynamic_smem<BilinearTap>();
  BilinearTap* col_tap = row_tap + g.max_rows;
  BilinearRange* col_range = reinterpret_cast<BilinearRange*>(col_tap + g.max_cols);
  BilinearRange* row_range = col_range + g.tile_w;
  const int thread = int(threadIdx.y * blockDim.x + threadIdx.x);
  const int threads = int(blockDim.x * blockDim.y);
  BilinearGatherTile t;
  t.n = int(blockIdx.z);
  t.iy0 = int(blockIdx.y) * g.tile_h;
  t.ix0 = int(blockIdx.x) * g.tile_w;
  t.height = min(g.tile_h, g.in_h - t.iy0);
  t.width = min(g.tile_w, g.in_w - t.ix0);
  if (thread < t.width) {
    col_range[thread] =
        bilinear_source_range(t.ix0 + thread, g.scale_w, g.in_w, g.out_w, g.align_corners);
  } else if (thread < t.width + t.height) {
    const int r = thread - t.width;
    row_range[r] = bilinear_source_range(t.iy0 + r, g.scale_h, g.in_h, g.out_h, g.align_corners);
  }
  __syncthreads();
  t.row_begin = row_range[0].begin;
  t.row_end = row_range[t.height - 1].end;
  t.col_begin = col_range[0].begin;
  t.col_end = col_range[t.width - 1].end;
  for (int i = thread; i < t.row_end - t.row_begin; i += threads) {
    row_tap[i] = bilinear_tap(t.row_begin + i, g.scale_h, g.in_h, g.align_corners);
  }
  for (int i = thread; i < t.col_end - t.col_begin; i += threads) {
    col_tap[i] = bilinear_tap(t.col_begin + i, g.scale_w, g.in_w, g.align_corners);
  }
  __syncthreads();
  t.row_tap = row_tap;
  t.col_tap = col_tap;
  t.row_range = row_range;
  t.col_range = col_range;
  return t;
}

}  // namespace farsee
