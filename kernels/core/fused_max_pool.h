// The max-pool rule of kernels/pool.cu and the tiling of the 3x3 / stride 2 / pad 1 max-pool fused
// into the stem conv's epilogue (kernels/conv_bn_act.cu, ConvEpilogue::max_pool).
//
// Fused tiling: a block owns kFusedPoolTile x kFusedPoolTile pooled pixels starting at (py0, px0)
// of image n. Pooled pixel (py, px) is the maximum over conv output rows 2py - 1 .. 2py + 1 and
// columns 2px - 1 .. 2px + 1 that lie inside the conv output (the pool's -inf padding), so the
// block computes the conv on the patch of kFusedPoolPatch x kFusedPoolPatch conv pixels
// 2py0 - 1 + i, 2px0 - 1 + j (GEMM row i * kFusedPoolPatch + j): the patch borders are computed
// twice, by the neighbouring blocks too (5 x 5 pooled pixels from 11 x 11 conv pixels: 121 / 100
// of the unfused conv's rows), and the conv output never goes to memory.
#pragma once

#include "kernels/core/conv_gemm.h"
#include "kernels/core/conv_shape.h"
#include "kernels/core/hd.h"

namespace farsee {

// PyTorch's max rule: take v when it is larger or NaN (a NaN in the window is the maximum).
FARSEE_HD float max_keep_nan(float running, float v) {
  return (v > running || v != v) ? v : running;
}

constexpr int kFusedPoolTile = 5;                        // pooled pixels per block side
constexpr int kFusedPoolPatch = 2 * kFusedPoolTile + 1;  // conv pixels per block side
constexpr int kFusedPoolRows = kFusedPoolPatch * kFusedPoolPatch;

// Blocks of the fused conv + pool for n images pooled to pooled_h x pooled_w.
FARSEE_HD int fused_pool_blocks(int n, int pooled_h, int pooled_w) {
  return n * ceil_div(pooled_h, kFusedPoolTile) * ceil_div(pooled_w, kFusedPoolTile);
}

struct FusedPoolTile {
  int n, py0, px0;
  // Conv output coordinate of patch row / column i.
  FARSEE_HD int conv_y(int i) const { return 2 * py0 - 1 + i; }
  FARSEE_HD int conv_x(int j) const { return 2 * px0 - 1 + j; }
};
FARSEE_HD FusedPoolTile fused_pool_tile(int block, int pooled_h, int pooled_w) {
  const int tiles_x = ceil_div(pooled_w, kFusedPoolTile);
  const int tiles_y = ceil_div(pooled_h, kFusedPoolTile);
  const int rest = block / tiles_x;
  return FusedPoolTile{rest / tiles_y, (rest % tiles_y) * kFusedPoolTile,
                       (block % tiles_x) * kFusedPoolTile};
}

// Whether conv output pixel (y, x) exists (out_h x out_w).
FARSEE_HD bool inside_conv_output(int y, int x, int out_h, int out_w) {
  return y >= 0 && y < out_h && x >= 0 && x < out_w;
}

// GEMM row m (conv output pixel of g) of patch row `row`; g.M (no pixel: the loaders read zeros)
// past the patch or outside the conv output.
FARSEE_HD int fused_pool_patch_pixel(const ConvGeometry& g, const FusedPoolTile& t, int row) {
  if (row >= kFusedPoolRows) return g.M;
  const int i = row / kFusedPoolPatch, j = row - i * kFusedPoolPatch;
  const int y = t.conv_y(i), x = t.conv_x(j);
  if (!inside_conv_output(y, x, g.out_h, g.out_w)) return g.M;
  return (t.n * g.out_h + y) * g.out_w + x;
}

}  // namespace farsee
