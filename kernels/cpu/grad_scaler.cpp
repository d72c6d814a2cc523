// cpu executor, unscale and non-finite check (kernels/grad_scaler.h): unscale_element() (one fp32
// multiply, bitwise the reference's) over fixed 64 Ki-element chunks on the OpenMP threads. Each
// chunk ORs its own flag; the flags are combined in chunk order (an OR: the result cannot depend
// on the order or the thread count). No atomics.
#include "kernels/grad_scaler.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void grad_unscale_check(FARSEE_GRAD_UNSCALE_CHECK_ARGS) {
  (void)ctx;
  if (inv_scale_in_memory != nullptr) inv_scale = *inv_scale_in_memory;
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  std::vector<uint8_t> chunk_found(size_t(chunks), 0);
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(count))
  for (int64_t c = 0; c < chunks; ++c) {
    bool any = false;
    const int64_t end = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) any = unscale_element(grads[i], inv_scale) || any;
    chunk_found[size_t(c)] = any ? 1 : 0;
  }
  if (std::find(chunk_found.begin(), chunk_found.end(), uint8_t(1)) != chunk_found.end()) {
    *found_inf = 1;
  }
}

}  // namespace farsee::cpu_impl
