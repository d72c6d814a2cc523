// Deterministic block reductions for kernels (CUDA and emu alike; no atomics, no CUB, so both
// builds run the same logic and a result is bitwise reproducible run to run).
//
// reduce_rows_fixed_order<Rows>(value, smem, merge): a block of blockDim.x x Rows threads
//   (blockDim.y == Rows, a power of two) where every thread holds a partial `value` (any trivially
//   copyable state: sums, Welford triples, ...). Row r's partials are merged into row 0 by a
//   fixed binary tree over threadIdx.y (stride Rows/2, Rows/4, ..., 1: row r absorbs row r + s,
//   merge(into, from) with `into` the lower row), independently per column threadIdx.x. On return
//   the threads of row 0 hold the column totals. Every thread of the block must call it (it
//   synchronises); smem needs Rows / 2 * blockDim.x elements of S (dynamic shared memory).
#pragma once

#include <cstddef>

#include "kernels/core/hd.h"

namespace farsee {

template <int Rows, typename S, typename Merge>
FARSEE_DEVICE void reduce_rows_fixed_order(S& value, S* smem, Merge merge) {
  static_assert(Rows >= 1 && (Rows & (Rows - 1)) == 0, "Rows must be a power of two");
  const int lane = int(threadIdx.x), row = int(threadIdx.y), width = int(blockDim.x);
#pragma unroll
  for (int s = Rows / 2; s >= 1; s /= 2) {
    if (row >= s && row < 2 * s) smem[(row - s) * width + lane] = value;
    __syncthreads();
    if (row < s) merge(value, smem[row * width + lane]);
    __syncthreads();
  }
}

// Bytes of shared memory reduce_rows_fixed_order<Rows> needs for a block `width` threads wide.
template <int Rows, typename S>
constexpr size_t reduce_rows_smem_bytes(int width) {
  return size_t(Rows / 2) * size_t(width) * sizeof(S);
}

}  // namespace farsee
