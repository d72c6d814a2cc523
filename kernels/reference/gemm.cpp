#include "kernels/reference/gemm.h"

#include <cblas.h>

#include <mutex>

// Declared here rather than taken from <cblas.h>: only OpenBLAS's cblas.h declares it, and the
// build links OpenBLAS (CMakeLists.txt: BLA_VENDOR OpenBLAS) whichever cblas.h comes first.
extern "C" void openblas_set_num_threads(int num_threads);

namespace farsee::reference {

void gemm_abt(int m, int n, int k, const double* a, int lda, const double* b, int ldb, double* c,
              int ldc) {
  static std::once_flag single_threaded;
  std::call_once(single_threaded, [] { openblas_set_num_threads(1); });
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
}

}  // namespace farsee::reference
