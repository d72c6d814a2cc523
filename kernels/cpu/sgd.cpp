// cpu executor, SGD step (kernels/sgd.h): the same per-element update as the reference
// (sgd_update: three fp32 FMAs, bitwise equal to it), OpenMP over fixed 64 Ki-element chunks.
// The loop has x86-64-v3/v4 clones (fmaf a libm call in generic x86-64 code, one vfmadd there).
#include "kernels/sgd.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {
namespace {

// x86-64-v4 (AVX-512) and v3 (AVX2 + FMA) clones beside the generic one: there fmaf is one
// vfmadd instruction and the loop vectorises; fmaf rounds once everywhere, so every clone gives
// the reference's bits.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void sgd_range(
    const SgdHyper& h, int64_t begin, int64_t end, float* params, const float* grads,
    float* momentum_buf) {
  if (h.use_buffer) {
    for (int64_t i = begin; i < end; ++i) sgd_update(h, params[i], grads[i], momentum_buf + i);
  } else {
    for (int64_t i = begin; i < end; ++i) sgd_update(h, params[i], grads[i], nullptr);
  }
}

}  // namespace

void sgd_step(FARSEE_SGD_STEP_ARGS) {
  (void)ctx;
  if (skip_if_set != nullptr && *skip_if_set != 0) return;  // mixed precision: a skipped step
  const SgdHyper h{lr_in_memory ? *lr_in_memory : lr, momentum, weight_decay, first_step,
                   momentum != 0.0f};
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(count * 3))
  for (int64_t c = 0; c < chunks; ++c) {
    sgd_range(h, c * kChunk, std::min(count, (c + 1) * kChunk), params, grads, momentum_buf);
  }
}

}  // namespace farsee::cpu_impl
