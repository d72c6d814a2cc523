// The reduction tiles of `tile` halves (32; 64 for the 8-warp 128x128 main loop) that
// conv_bn_act's fp16 cp.async loader walks (kernels/conv_bn_act.cu), shared by the kernel and the
// host plan (kernels/conv_bn_act.cpp). C (the gathered operand's channels) is a multiple of 8 on
// that loader. Per tap, ceil(C / tile) tiles of `tile` channels; when C divides the tile (8 or 16,
// and 32 for tiles of 64) one tile holds tile / C whole taps instead, so no half of every tile is
// zero (the space-to-depth stem's 16 channels, net/stem.h: 8 tiles for its 16 taps, not 16).
#pragma once

#include "kernels/core/conv_shape.h"
#include "kernels/core/hd.h"

namespace farsee {

constexpr int kCpAsyncTileHalves = 32;

FARSEE_HD int cp_async_taps_per_tile(int in_c, int tile = kCpAsyncTileHalves) {
  return in_c < tile && tile % in_c == 0 ? tile / in_c : 1;
}

FARSEE_HD int cp_async_reduction_tiles(int taps, int in_c, int tile = kCpAsyncTileHalves) {
  const int per_tile = cp_async_taps_per_tile(in_c, tile);
  return per_tile > 1 ? ceil_div(taps, per_tile) : taps * ceil_div(in_c, tile);
}

}  // namespace farsee
