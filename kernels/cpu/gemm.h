// The cpu executor's GEMM: fp32 row-major C = alpha * op(A) * op(B) + beta * C through OpenBLAS
// cblas_sgemm, which picks its AVX2 / AVX-512 kernels at run time (the programs stay generic
// x86-64).
//
// Threading: like the reference (kernels/reference/gemm.h), the cpu ops parallelise with OpenMP
// over fixed tiles of pixels and call this from each thread with OpenBLAS single-threaded: two
// thread pools on the same cores fight. Tiles are a function of the problem shape only, never of
// the thread count, so every result is bitwise the same for any OMP_NUM_THREADS.
#pragma once

#include <cstdint>

namespace farsee::cpu_impl {

// c = alpha * op(a) * op(b) + beta * c; op(a) is m x k, op(b) k x n; leading dimensions in
// elements of the row-major storage.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Rows per tile for a GEMM over `rows` rows of `row_elements` gathered floats each: a tile's
// gathered operand stays near 4 MiB (1 Mi floats), at least 32 and at most 1024 rows, and the
// rows are split into at least 4 tiles when there are enough (both cores busy on the small maps).
// Depends only on the shape (reproducible for any thread count).
int64_t tile_rows(int64_t rows, int64_t row_elements);

// How a convolution's forward GEMM [P x rsc] * [rsc x K] is cut into work items: tiles of `rows`
// output pixels times blocks of `k_block` output channels. Every SGEMM call packs both of its
// operands, so the weights are packed once per pixel tile and the patches once per channel block:
// the split minimises (tiles * K + blocks * P) * rsc floats packed among those with the most items
// up to want_items (4 for a threaded op: both cores busy, room for a dynamic schedule; 1 for one
// on the calling thread), and an even item count when threaded. Channel blocks are multiples of
// `channel_multiple` (16 and the pixel-shuffle group; the whole K when it does not divide) and are
// only used when all P patch rows fit one gathered buffer (4 Mi floats). Shape-only (reproducible
// for any thread count). Deep layers (few pixels, big weights) get channel blocks, early ones
// pixel tiles.
struct GemmTiling {
  int64_t rows;  // output pixels per tile
  int k_block;   // output channels per block (divides K)
};
GemmTiling conv_gemm_tiling(int64_t P, int K, int64_t rsc, int channel_multiple,
                            int64_t want_items);

}  // namespace farsee::cpu_impl
