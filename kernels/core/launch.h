// The only place a kernel is launched from (DESIGN.md section 4). Under nvcc a launch is <<<>>>
// followed by a checked cudaGetLastError(); under g++ with kernels/emu/emu.h it runs the kernel on
// the CPU through emu::launch. A templated kernel is launched through a pointer:
//   auto kernel = my_kernel<float, 4>;
//   FARSEE_LAUNCH(kernel, grid, block, smem_bytes, stream, args...);
// Shared memory: static arrays are declared FARSEE_SHARED(float, tile, [32][33]); (16-byte
// aligned), dynamic shared memory is reached through farsee::dynamic_smem<T>(); both work in both
// builds (under emu they come from poisoned per-block arenas, see kernels/emu/emu.h).
//
// FARSEE_LAUNCH_PDL(allowed, kernel, ...): the same launch, with programmatic dependent launch
// (cudaLaunchKernelEx, programmatic stream serialization) when `allowed`, switched on
// (rt::programmatic_dependent_launch: FARSEE_PDL=1) and the device is sm_90+; the kernel must
// ptx::griddepcontrol_wait() before its first access to anything an earlier kernel writes or
// reads. Emu: a plain launch (launches run one after another).
//
// Errors named where they happen: with FARSEE_SYNC_LAUNCHES=1 in the environment, every launch
// outside a graph capture is followed by a stream synchronisation on cuda, so an asynchronous
// fault (an illegal address, say) is reported with this launch's kernel name and file:line instead
// of at a later, innocent call; under emu's asynchronous mode (FARSEE_EMU_ASYNC=1) it runs each
// launch at once. A debug mode: it serialises the host and the GPU. Without it, an asynchronous
// error found at a launch may be an earlier kernel's: the message says so and names the switch
// (kernels/core/cuda_errors.h).
#pragma once

#include "kernels/core/check.h"
#include "kernels/core/hd.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "kernels/core/cuda_errors.h"
#include "kernels/core/runtime.h"

namespace farsee::detail {
inline bool sync_launches() {
  static const bool on = [] {
    const char* v = std::getenv("FARSEE_SYNC_LAUNCHES");
    return v != nullptr && std::strcmp(v, "0") != 0 && *v != '\0';
  }();
  return on;
}

// The launch's own error, and under FARSEE_SYNC_LAUNCHES its asynchronous one (not inside a
// capture, where nothing runs and synchronising is illegal). Without the switch, an asynchronous
// error met here is not blamed on this launch: it may be any earlier kernel's.
inline void check_launch(cudaStream_t stream, const char* kernel, const char* file, int line) {
  cudaError_t st = cudaGetLastError();
  bool ran = false;  // synchronised: an error now is this kernel's
  if (st == cudaSuccess && sync_launches()) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    st = cudaStreamIsCapturing(stream, &capture);
    if (st == cudaSuccess && capture == cudaStreamCaptureStatusNone) {
      st = cudaStreamSynchronize(stream);
      ran = true;
    }
  }
  if (st == cudaSuccess) return;
  std::string what;
  if (ran) {
    what = std::string("kernel '") + kernel + "' failed while running (FARSEE_SYNC_LAUNCHES)";
  } else if (is_asynchronous_error(st)) {
    what = std::string("an asynchronous error surfaced at the launch of kernel '") + kernel + "'" +
           asynchronous_error_hint(st);
  } else {
    what = std::string("kernel '") + kernel + "' failed at launch";
  }
  throw_error(file, line, what + ": " + cudaGetErrorName(st) + ": " + cudaGetErrorString(st));
}
}  // namespace farsee::detail

#define FARSEE_LAUNCH(kernel, grid, block, smem, stream, ...)                            \
  do {                                                                                   \
    kernel<<<(grid), (block), (smem), static_cast<cudaStream_t>(stream)>>>(__VA_ARGS__); \
    ::farsee::detail::check_launch(static_cast<cudaStream_t>(stream), #kernel, __FILE__, \
                                   __LINE__);                                            \
  } while (0)

namespace farsee::detail {
// Whether FARSEE_LAUNCH_PDL launches with the PDL attribute: the launch allows it, it is switched
// on (rt::programmatic_dependent_launch) and the current device is sm_90 or newer.
inline bool pdl_launch(bool allowed) {
  if (!allowed || !rt::programmatic_dependent_launch()) return false;
  int device = 0, major = 0;
  FARSEE_CUDA_CHECK(cudaGetDevice(&device));
  FARSEE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 9;
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialization: the
// kernel may start while the previous one in the stream runs; it must call
// ptx::griddepcontrol_wait() before touching anything that kernel writes or reads.
template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                const char* name, const char* file, int line, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  const cudaError_t st = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (st != cudaSuccess) {
    throw_error(file, line,
                std::string("kernel '") + name + "' failed at launch (programmatic dependent " +
                    "launch): " + cudaGetErrorName(st) + ": " + cudaGetErrorString(st));
  }
  check_launch(stream, name, file, line);
}
}  // namespace farsee::detail

// FARSEE_LAUNCH for kernels written for programmatic dependent launch (they call
// ptx::griddepcontrol_wait before their first dependent access): with the PDL attribute when
// `allowed`, rt::programmatic_dependent_launch() is on and the device is sm_90+, else plain.
#define FARSEE_LAUNCH_PDL(allowed, kernel, grid, block, smem, stream, ...)                         \
  do {                                                                                             \
    if (::farsee::detail::pdl_launch(allowed)) {                                                   \
      ::farsee::detail::launch_pdl((kernel), dim3(grid), dim3(block), (smem),                      \
                                   static_cast<cudaStream_t>(stream), #kernel, __FILE__, __LINE__, \
                                   __VA_ARGS__);                                                   \
    } else {                                                                                       \
      FARSEE_LAUNCH(kernel, grid, block, smem, stream, __VA_ARGS__);                               \
    }                                                                                              \
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

#define FARSEE_LAUNCH(kernel, grid, block, smem, stream, ...)                           \
  ::emu::launch(__FILE__, __LINE__, #kernel, (kernel), dim3(grid), dim3(block), (smem), \
                static_cast<void*>(stream), __VA_ARGS__)

// Emu runs launches one after another: no programmatic dependent launch to model.
#define FARSEE_LAUNCH_PDL(allowed, ...) FARSEE_LAUNCH(__VA_ARGS__)

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
