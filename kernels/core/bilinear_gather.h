// Gather form of the bilinear resize's transpose (resize_bilinear_bwd, softmax_ce_upsample): the
// blocks own the INPUT (low-resolution) side and each input element sums over the output pixels
// whose taps read it, so no two threads ever write the same element (no atomics).
//
// A block owns `tile_w` consecutive input columns of one input row (n, iy). Along each axis the
// output coordinates reading input coordinate i form a contiguous range (bilinear_source_range,
// kernels/core/bilinear.h); the block stages in shared memory
//   - the output-row range of iy and the output-column range of each of its columns,
//   - the taps of those output rows and of the union of those output columns,
// so the inner loops only read shared memory for the weights. The host sizes the staging with
// the same tap function (bilinear_gather_geometry), so host and kernel agree exactly.
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
  int tile_w;    // input columns per block (< the block's thread count)
  int max_rows;  // output rows reading one input row, at most
  int max_cols;  // output columns reading one tile of input columns, at most
};

// Host: the geometry for input in_h x in_w resized to out_h x out_w, kernels of `threads`.
inline BilinearGatherGeometry bilinear_gather_geometry(int in_h, int in_w, int out_h, int out_w,
                                                       bool align_corners, int tile_w) {
  BilinearGatherGeometry g{};
  g.in_h = in_h;
  g.in_w = in_w;
  g.out_h = out_h;
  g.out_w = out_w;
  g.align_corners = align_corners;
  g.scale_h = bilinear_scale(in_h, out_h, align_corners);
  g.scale_w = bilinear_scale(in_w, out_w, align_corners);
  g.tile_w = tile_w;
  g.max_rows = 1;
  for (int iy = 0; iy < in_h; ++iy) {
    const BilinearRange r = bilinear_source_range(iy, g.scale_h, in_h, out_h, align_corners);
    g.max_rows = std::max(g.max_rows, r.end - r.begin);
  }
  g.max_cols = 1;
  for (int ix0 = 0; ix0 < in_w; ix0 += tile_w) {
    const int last = std::min(ix0 + tile_w, in_w) - 1;
    const int cols = bilinear_source_range(last, g.scale_w, in_w, out_w, align_corners).end -
                     bilinear_source_range(ix0, g.scale_w, in_w, out_w, align_corners).begin;
    g.max_cols = std::max(g.max_cols, cols);
  }
  return g;
}

// Host: dynamic shared memory of a gather block, and the grid (column tiles, rows, images).
inline size_t bilinear_gather_smem_bytes(const BilinearGatherGeometry& g) {
  return size_t(g.max_rows + g.max_cols) * sizeof(BilinearTap) +
         size_t(g.tile_w + 1) * sizeof(BilinearRange);
}
inline dim3 bilinear_gather_grid(const BilinearGatherGeometry& g, int images) {
  FARSEE_REQUIRE(
      g.in_h <= 65535 && images <= 65535,
      "bilinear gather: " << g.in_h << " rows x " << images << " images exceed the grid limits");
  return dim3(unsigned((g.in_w + g.tile_w - 1) / g.tile_w), unsigned(g.in_h), unsigned(images));
}

// Device: what a block staged. For input column ix0 + j of the tile, the output columns reading
// it are [col_range[j].begin, col_range[j].end), their taps col_tap[ox - col_begin]; the output
// rows reading iy are [row_begin, row_end), their taps row_tap[oy - row_begin].
struct BilinearGatherTile {
  int n, iy, ix0, width;  // image, input row, first input column, columns in this tile
  int row_begin, row_end, col_begin;
  const BilinearTap* row_tap;
  const BilinearTap* col_tap;
  const BilinearRange* col_range;
};

// Every thread of the block must call it (it holds two barriers). blockDim.x * blockDim.y must
// exceed g.tile_w.
FARSEE_DEVICE BilinearGatherTile bilinear_gather_stage(const BilinearGatherGeometry& g) {
  BilinearTap* row_tap = dynamic_smem<BilinearTap>();
  BilinearTap* col_tap = row_tap + g.max_rows;
  BilinearRange* ranges = reinterpret_cast<BilinearRange*>(col_tap + g.max_cols);  // + row range
  const int thread = int(threadIdx.y * blockDim.x + threadIdx.x);
  const int threads = int(blockDim.x * blockDim.y);
  BilinearGatherTile t;
  t.n = int(blockIdx.z);
  t.iy = int(blockIdx.y);
  t.ix0 = int(blockIdx.x) * g.tile_w;
  t.width = min(g.tile_w, g.in_w - t.ix0);
  if (thread < t.width) {
    ranges[thread] =
        bilinear_source_range(t.ix0 + thread, g.scale_w, g.in_w, g.out_w, g.align_corners);
  } else if (thread == threads - 1) {
    ranges[g.tile_w] = bilinear_source_range(t.iy, g.scale_h, g.in_h, g.out_h, g.align_corners);
  }
  __syncthreads();
  t.row_begin = ranges[g.tile_w].begin;
  t.row_end = ranges[g.tile_w].end;
  t.col_begin = ranges[0].begin;
  const int col_end = ranges[t.width - 1].end;
  for (int i = thread; i < t.row_end - t.row_begin; i += threads) {
    row_tap[i] = bilinear_tap(t.row_begin + i, g.scale_h, g.in_h, g.align_corners);
  }
  for (int i = thread; i < col_end - t.col_begin; i += threads) {
    col_tap[i] = bilinear_tap(t.col_begin + i, g.scale_w, g.in_w, g.align_corners);
  }
  __syncthreads();
  t.row_tap = row_tap;
  t.col_tap = col_tap;
  t.col_range = ranges;
  return t;
}

}  // namespace farsee
