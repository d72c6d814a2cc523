// The only place a kernel is launched from (DESIGN.md section 4). Under nvcc a launch is <<<>>>
// followed by a checked cudaGetLastError(); under g++ with kernels/emu/emu.h it runs the kernel on
// the CPU through emu::launch. A templated kernel is launched through a pointer:
//   auto kernel = my_kernel<float, 4>;
//   FARSEE_LAUNCH(kernel, grid, block, smem_bytes, stream, args...);
// Shared memory: static arrays are declared FARSEE_SHARED(float, tile, [32][33]); (16-byte
// aligned), dynamic shared memory is reached through farsee::dynamic_smem<T>(); both work in both
// builds (under emu they come from poisoned per-block arenas, see kernels/emu/emu.h).
#pragma once

#include "kernels/core/check.h"
#include "kernels/core/hd.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#define FARSEE_LAUNCH(kernel, grid, block, smem, stream, ...)                            \
  do {                                                                                   \
    kernel<<<(grid), (block), (smem), static_cast<cudaStream_t>(stream)>>>(__VA_ARGS__); \
    FARSEE_CUDA_CHECK(cudaGetLastError());                                               \
  } while (0)

// Opt in to more than 48 KiB of dynamic shared memory for `kernel`.
#define FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, bytes)                                              \
  FARSEE_CUDA_CHECK(cudaFuncSetAttribute((kernel), cudaFuncAttributeMaxDynamicSharedMemorySize, \
                                         static_cast<int>(bytes)))

#define FARSEE_SHARED(T, name, dims) __shared__ __align__(16) T name dims

namespace farsee {
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char farsee_dynamic_smem[];
  return reinterpret_cast<T*>(farsee_dynamic_smem);
}
}  // namespace farsee

#else  // emulation build: emu.h is force-included

// (The stream is evaluated and ignored: emulated launches are synchronous.)
#define FARSEE_LAUNCH(kernel, grid, block, smem, stream, ...)                                  \
  (static_cast<void>(stream), ::emu::launch(__FILE__, __LINE__, #kernel, (kernel), dim3(grid), \
                                            dim3(block), (smem), __VA_ARGS__))

#define FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, bytes) \
  ::emu::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), static_cast<size_t>(bytes))

#define FARSEE_SHARED(T, name, dims)                  \
  static ::emu::SharedSlot farsee_shared_slot_##name; \
  T(&name)                                            \
  dims = *reinterpret_cast<T(*) dims>(                \
      ::emu::static_shared(&farsee_shared_slot_##name, sizeof(T dims), #name, __FILE__, __LINE__))

namespace farsee {
template <typename T>
inline T* dynamic_smem() {
  return reinterpret_cast<T*>(::emu::dynamic_smem_base());
}
}  // namespace farsee

#endif
