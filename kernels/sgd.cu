// SGD step over the parameter arena (kernels/sgd.h), one launch.
//
// Algorithm: the per-element update sgd_update() (three fp32 FMAs, shared with the reference, so
//   emu and cuda are bitwise equal to it) applied by a grid-stride loop.
// Tiling / vectors: each thread takes packs of 4 floats (16-byte loads/stores of params, grads and
//   the buffer) when all pointers are 16-byte aligned, else single floats; the count % 4 tail of
//   the vector path is done by the first threads of the grid in the same launch. The grid is capped
//   (kMaxBlocks, ~8 blocks of 256 threads per SM of an H100/H200) and walks the rest.
// Layout: flat fp32 arrays. Precision: fp32 (master weights). Fused: weight decay, momentum
//   buffer (created on the first step as a copy of d) and the parameter update in one pass; the
//   optional skip flag (mixed precision) and the optional learning rate in memory (CUDA graphs)
//   are read by every thread first.
#include <cstdint>

#include "kernels/core/launch.h"
#include "kernels/core/vec.h"
#include "kernels/sgd.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 132 * 8;

template <int V>
__global__ void __launch_bounds__(kThreads)
    sgd_kernel(int64_t count, float* params, const float* grads, float* buf, SgdHyper h,
               const int32_t* skip_if_set, const float* lr_in_memory) {
  if (skip_if_set != nullptr && *skip_if_set != 0) return;  // uniform: the whole grid leaves
  if (lr_in_memory != nullptr) h.lr = *lr_in_memory;
  const int64_t vectors = count / V;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t v = first; v < vectors; v += step) {
    Pack<float, V> p = reinterpret_cast<const Pack<float, V>*>(params)[v];
    const Pack<float, V> g = reinterpret_cast<const Pack<float, V>*>(grads)[v];
    Pack<float, V> b{};
    if (h.use_buffer && !h.first_step) b = reinterpret_cast<const Pack<float, V>*>(buf)[v];
#pragma unroll
    for (int i = 0; i < V; ++i) sgd_update(h, p.v[i], g.v[i], &b.v[i]);
    reinterpret_cast<Pack<float, V>*>(params)[v] = p;
    if (h.use_buffer) reinterpret_cast<Pack<float, V>*>(buf)[v] = b;
  }
  // The tail (count % V elements) of the vector path.
  const int64_t i = vectors * V + first;
  if (i < count) sgd_update(h, params[i], grads[i], h.use_buffer ? buf + i : nullptr);
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void sgd_step(const Context& ctx, int64_t count, float* params, const float* grads,
              float* momentum_buf, float lr, float momentum, float weight_decay, bool first_step,
              const int32_t* skip_if_set, const float* lr_in_memory) {
  const SgdHyper h{lr, momentum, weight_decay, first_step, momentum != 0.0f};
  const bool vec4 =
      aligned16(params) && aligned16(grads) && (!h.use_buffer || aligned16(momentum_buf));
  const int width = vec4 ? 4 : 1;
  const int64_t work = count / width > 0 ? count / width : 1;
  int64_t blocks = (work + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  float* buf = h.use_buffer ? momentum_buf : nullptr;
  if (vec4) {
    auto kernel = sgd_kernel<4>;
    FARSEE_LAUNCH(kernel, dim3(unsigned(blocks)), dim3(kThreads), 0, ctx.stream, count, params,
                  grads, buf, h, skip_if_set, lr_in_memory);
  } else {
    auto kernel = sgd_kernel<1>;
    FARSEE_LAUNCH(kernel, dim3(unsigned(blocks)), dim3(kThreads), 0, ctx.stream, count, params,
                  grads, buf, h, skip_if_set, lr_in_memory);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
