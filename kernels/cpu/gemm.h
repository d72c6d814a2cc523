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

}  // namespace farsee::cpu_impl
