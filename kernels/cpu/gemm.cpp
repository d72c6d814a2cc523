#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>

// Declared here rather than taken from <cblas.h>: only OpenBLAS's cblas.h declares it.
extern "C" void openblas_set_num_threads(int num_threads);

namespace farsee::cpu_impl {

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  static std::once_flag single_threaded;
  std::call_once(single_threaded, [] { openblas_set_num_threads(1); });
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, int(lda), b, int(ldb), beta,
              c, int(ldc));
}

int64_t tile_rows(int64_t rows, int64_t row_elements) {
  int64_t t =
      std::clamp<int64_t>((int64_t(1) << 20) / std::max<int64_t>(row_elements, 1), 32, 1024);
  const int64_t quarter = (rows + 3) / 4;
  if (quarter >= 32) t = std::min(t, (quarter + 15) / 16 * 16);
  return std::max<int64_t>(1, std::min(t, rows));
}

}  // namespace farsee::cpu_impl
