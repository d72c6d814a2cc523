// Naming asynchronous CUDA errors honestly (issue 26 hazard 2). A kernel's fault (an illegal
// address, a trap, a device assert) is sticky: it surfaces at whatever CUDA call comes next, a
// later launch's error check or a synchronisation, which did nothing wrong. The checks of those
// calls (kernels/core/launch.h, kernels/core/runtime.cpp) add asynchronous_error_hint, which says
// so and how to find the kernel: FARSEE_SYNC_LAUNCHES=1 synchronises after every launch, and the
// launch that faulted is then named with its file and line. Only where CUDA is compiled in.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

namespace farsee::detail {

// The errors a kernel raises while running (all sticky: the context is unusable afterwards).
inline bool is_asynchronous_error(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorAssert:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorLaunchTimeout:
      return true;
    default:
      return false;
  }
}

// "" for other errors; else why this call may be innocent and how to find the culprit.
inline std::string asynchronous_error_hint(cudaError_t e) {
  if (!is_asynchronous_error(e)) return "";
  return " (an asynchronous error: it may come from any earlier kernel launch, not from this "
         "call; rerun with FARSEE_SYNC_LAUNCHES=1 to have the faulting launch named with its "
         "kernel, file and line)";
}

}  // namespace farsee::detail
