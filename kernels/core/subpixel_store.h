// Sub-pixel store order of conv_bn_act (pack_subpixel_conv_weights, kernels/conv_bn_act.h): the
// GEMM column order and the store width of the pixel-shuffling epilogue. Index math only, shared
// by the kernels (kernels/conv_bn_act.cu, ConvStore::store_subpixel) and the tests.
#pragma once

#include <cstdint>

#include "kernels/core/hd.h"

namespace farsee {

// A conv whose epilogue pixel-shuffles by t stores conv channel k = c*t*t + ij (ij = i*t + j) at
// channel c of output pixel (y*t + i, x*t + j). In natural order a tile's consecutive columns
// are t*t apart in y, so with t = 4 a 64-wide tile holds only 4 consecutive c per (i, j): scalar
// stores. Sub-pixel packing orders the GEMM columns (i, j)-major instead:
//   column n = ij * stride + c   holds conv channel c*t*t + ij   (c < channels; zero rows beyond)
// with stride = channels rounded up to V (8 halves or 4 floats = 16 bytes), so the V columns of
// every V-aligned group are V consecutive channels c of ONE output pixel: one 16-byte store. A
// group that runs past `channels` (the 19 logits classes -> stride 24) still stores V elements,
// zeros in the padding channels [channels, stride) that y's pixel stride must own.
struct SubpixelColumns {
  int t2 = 0;        // shuffle factor squared; 0: natural column order (not sub-pixel packed)
  int channels = 0;  // real channels c per (i, j) block = K / t^2
  int stride = 0;    // columns per (i, j) block, channels rounded up to 16 bytes
};

// Conv channel of GEMM column n (n < t2 * stride, n % stride < channels).
FARSEE_HD int subpixel_conv_channel(const SubpixelColumns& s, int n) {
  const int ij = n / s.stride;
  return (n - ij * s.stride) * s.t2 + ij;
}
// Real channels among the V columns [n, n + V) (n a multiple of V): V, fewer at the padding, 0
// past the last column.
FARSEE_HD int subpixel_group_count(const SubpixelColumns& s, int n, int V) {
  if (n >= s.t2 * s.stride) return 0;
  const int c = n % s.stride;
  const int count = s.channels - c;
  return count < 0 ? 0 : (count < V ? count : V);
}
// Elements per store the sub-pixel epilogue uses for a group whose first channel lands at dst:
// V (one 16-byte vector, padding included) when dst is 16-byte aligned, else 1 (element stores of
// the real channels only: an unaligned y, e.g. an odd slice offset).
template <int V, typename T>
FARSEE_HD int subpixel_store_width(const T* dst) {
  return reinterpret_cast<uintptr_t>(dst) % (V * sizeof(T)) == 0 ? V : 1;
}

}  // namespace farsee
