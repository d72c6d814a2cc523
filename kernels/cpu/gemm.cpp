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

GemmTiling conv_gemm_tiling(int64_t P, int K, int64_t rsc, int channel_multiple,
                            int64_t want_items) {
  constexpr int64_t kTileFloats = int64_t(1) << 20, kWholeFloats = int64_t(1) << 22;
  constexpr int64_t kMaxRows = 1024, kMinRows = 32;
  GemmTiling best{tile_rows(P, rsc), K};
  double best_cost = 0;
  int64_t best_items = 0;
  for (int blocks = 1; blocks <= 8; blocks *= 2) {
    if (K % blocks != 0) break;
    const int kb = K / blocks;
    if (blocks > 1 && (kb % channel_multiple != 0 || kb < 64 || P * rsc > kWholeFloats)) break;
    // The fewest tiles the size limits allow, more up to want_items items while tiles keep
    // kMinRows rows.
    int64_t tiles =
        std::max((P + kMaxRows - 1) / kMaxRows, (P * rsc + kTileFloats - 1) / kTileFloats);
    tiles = std::max(tiles, std::min((want_items + blocks - 1) / blocks, P / kMinRows));
    tiles = std::max<int64_t>(tiles, 1);
    // An even item count for the threads (9 equal items keep one core idle a ninth of the time).
    if (want_items > 1 && tiles * blocks % 2 == 1 && tiles > 1) ++tiles;
    const int64_t rows = std::min(P, ((P + tiles - 1) / tiles + 15) / 16 * 16);
    tiles = (P + rows - 1) / rows;
    const int64_t items = std::min(tiles * blocks, want_items);
    const double cost = (double(tiles) * K + double(blocks) * P) * double(rsc);
    if (best_items == 0 || items > best_items || (items == best_items && cost < best_cost)) {
      best = GemmTiling{rows, kb};
      best_cost = cost;
      best_items = items;
    }
  }
  return best;
}

}  // namespace farsee::cpu_impl
