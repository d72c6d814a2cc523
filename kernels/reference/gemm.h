// The reference executor's one GEMM: C = A * B^T in double (row-major), through OpenBLAS dgemm.
//
// Threading: the reference ops parallelise with OpenMP over independent blocks of rows and call
// this from each thread; OpenBLAS itself is kept single-threaded. Two thread pools on the same
// cores (OpenMP workers spinning after a loop while OpenBLAS's threads run a GEMM) made the
// ResNet-18 convs of a 64x128 image ~15x slower on a loaded 2-core machine than either alone.
#pragma once

#include <cstdint>

namespace farsee::reference {

// c[i][j] = sum_l a[i][l] * b[j][l] for i < m, j < n, l < k; leading dimensions in elements.
void gemm_abt(int m, int n, int k, const double* a, int lda, const double* b, int ldb, double* c,
              int ldc);

}  // namespace farsee::reference
