// Unscale and non-finite check of the gradient arena (kernels/grad_scaler.h), one launch.
//
// Algorithm: unscale_element() (shared with the reference: bitwise equal) applied by a
//   grid-stride loop; each thread ORs its elements' non-finite flags in a register, the warp
//   combines them with one vote, and lane 0 of a warp that saw one stores 1 to found_inf (a plain
//   store of the same value by any number of warps: no atomics, order-independent).
// Tiling / vectors: packs of 4 floats (16-byte loads/stores) when grads is 16-byte aligned, else
//   single floats; the count % 4 tail is done by the first threads of the grid in the same
//   launch. The grid is capped (kMaxBlocks, ~8 blocks of 256 threads per SM of an H100/H200).
// Layout: flat fp32. Precision: one fp32 multiply. Fused: the check and the scaling, one pass;
//   the optional factor in memory (CUDA graphs) is read by every thread first.
#include <cstdint>

#include "kernels/core/launch.h"
#include "kernels/core/vec.h"
#include "kernels/grad_scaler.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 132 * 8;

template <int V>
__global__ void __launch_bounds__(kThreads)
    unscale_check_kernel(int64_t count, float* grads, float inv_scale, int32_t* found_inf,
                         const float* inv_scale_in_memory) {
  if (inv_scale_in_memory != nullptr) inv_scale = *inv_scale_in_memory;
  const int64_t vectors = count / V;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  bool bad = false;
  for (int64_t v = first; v < vectors; v += step) {
    Pack<float, V> g = reinterpret_cast<const Pack<float, V>*>(grads)[v];
#pragma unroll
    for (int i = 0; i < V; ++i) bad = unscale_element(g.v[i], inv_scale) || bad;
    reinterpret_cast<Pack<float, V>*>(grads)[v] = g;
  }
  // The tail (count % V elements) of the vector path.
  const int64_t i = vectors * V + first;
  if (i < count) bad = unscale_element(grads[i], inv_scale) || bad;
  // Every thread of the (full) warp reaches the vote: the loops above have no early exit.
  if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0) *found_inf = 1;
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void grad_unscale_check(FARSEE_GRAD_UNSCALE_CHECK_ARGS) {
  const int width = aligned16(grads) ? 4 : 1;
  const int64_t work = count / width > 0 ? count / width : 1;
  int64_t blocks = (work + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  if (width == 4) {
    auto kernel = unscale_check_kernel<4>;
    FARSEE_LAUNCH(kernel, dim3(unsigned(blocks)), dim3(kThreads), 0, ctx.stream, count, grads,
                  inv_scale, found_inf, inv_scale_in_memory);
  } else {
    auto kernel = unscale_check_kernel<1>;
    FARSEE_LAUNCH(kernel, dim3(unsigned(blocks)), dim3(kThreads), 0, ctx.stream, count, grads,
                  inv_scale, found_inf, inv_scale_in_memory);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
