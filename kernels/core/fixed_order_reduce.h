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
//
// Split-K in one launch (the "last CTA reduces" scheme; conv_bn_act): the S CTAs of one output
// tile each store their raw fp32 partial tile to a workspace slice, then count themselves on an
// integer counter of that tile (atomicAdd on an int: no float atomics). The CTA that arrives
// last (splitk_last_arrival returns true for it, whatever the block order) sums the S slices with
// splitk_sum in slice order 0..S-1 (fixed: bitwise reproducible, the order of the former separate
// reduce kernel) and runs the epilogue; it also resets the counter to 0, so a counter array
// zero-filled once at allocation serves every later launch and graph replay.
// Memory order: each thread fences (__threadfence) after its partial stores and before the
// block's count; the last CTA fences after reading the count and reads the partials with
// L1-bypassing loads (ld.global.cg): the other CTAs' stores are in L2.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/core/hd.h"
#include "kernels/core/launch.h"

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

// Every thread of the block calls it after storing its share of the block's partial tile; true
// (block-uniform) in the one block of the `splits` sharing `counter` that arrives last.
FARSEE_DEVICE bool splitk_last_arrival(int* counter, int splits) {
  FARSEE_SHARED(int, last_arrival, [1]);
  __threadfence();  // this thread's partials visible device-wide before the block is counted
  __syncthreads();  // every thread of the block has stored and fenced
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
    const int arrived = atomicAdd(counter, 1);
    const bool last = arrived == splits - 1;
    if (last) *counter = 0;  // all `splits` blocks have counted: ready for the next launch
    last_arrival[0] = last ? 1 : 0;
  }
  __syncthreads();
  const bool last = last_arrival[0] != 0;
  if (last) __threadfence();  // the count is read before any partial below
  return last;
}

// A partial written by another block of this launch: from L2 (ld.global.cg), never a stale L1 line.
FARSEE_DEVICE float load_partial(const float* p) {
#if defined(__CUDA_ARCH__)
  return __ldcg(p);
#else
  return *p;
#endif
}

// sum_{z = 0 .. splits-1} first[z * slice_stride], added in z order from 0.0f.
FARSEE_DEVICE float splitk_sum(const float* first, int64_t slice_stride, int splits) {
  float sum = 0.0f;
  for (int z = 0; z < splits; ++z) sum += load_partial(first + int64_t(z) * slice_stride);
  return sum;
}

}  // namespace farsee
