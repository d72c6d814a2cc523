// cpu executor, SGD step (kernels/sgd.h): the same per-element update as the reference
// (sgd_update: three fp32 FMAs, bitwise equal to it), OpenMP over fixed 64 Ki-element chunks.
// The element loop is compiled for AVX-512, Haswell-class and generic x86-64 CPUs
// (FARSEE_CPU_CLONES, kernels/cpu/parallel.h): with FMA hardware fmaf is one vfmadd instruction
// and the loop vectorises; generic x86-64 calls libm. fma is correctly rounded either way:
// identical results.
#include "kernels/sgd.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {
namespace {

FARSEE_CPU_CLONES void sgd_range(const SgdHyper& h, int64_t begin, int64_t end, float* params,
                                 const float* grads, float* momentum_buf) {
  if (h.use_buffer) {
    for (int64_t i = begin; i < end; ++i) sgd_update(h, params[i], grads[i], momentum_buf + i);
  } else {
    for (int64_t i = begin; i < end; ++i) sgd_update(h, params[i], grads[i], nullptr);
  }
}

}  // namespace

void sgd_step(FARSEE_SGD_STEP_ARGS) {
  (void)ctx;
  const SgdHyper h{lr, momentum, weight_decay, first_step, momentum != 0.0f};
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(count * 3))
  for (int64_t c = 0; c < chunks; ++c) {
    sgd_range(h, c * kChunk, std::min(count, (c + 1) * kChunk), params, grads, momentum_buf);
  }
}

}  // namespace farsee::cpu_impl
