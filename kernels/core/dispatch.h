// One entry point per op, four executors. An op header declares its four implementations, in
// namespaces farsee::reference, farsee::cpu_impl, farsee::emu_impl and farsee::cuda_impl with
// identical signatures (first argument: the Context), by one line inside namespace farsee:
//   FARSEE_DECLARE_OP(op_name, parameters...);
// and defines the public entry as
//   FARSEE_DISPATCH(ctx, op_name, ctx, args...);
// In a build without CUDA the cuda branch throws instead of referencing the missing symbol.
#pragma once

#include <string>

#include "kernels/core/check.h"
#include "kernels/core/executor.h"

#ifndef FARSEE_HAVE_CUDA
#define FARSEE_HAVE_CUDA 0
#endif

#if FARSEE_HAVE_CUDA
#define FARSEE_DISPATCH_CUDA(fn, ...) ::farsee::cuda_impl::fn(__VA_ARGS__)
#else
#define FARSEE_DISPATCH_CUDA(fn, ...)                                           \
  ::farsee::throw_error(__FILE__, __LINE__,                                     \
                        std::string(#fn) +                                      \
                            ": executor 'cuda' requested but FarSee was built " \
                            "without CUDA (nvcc not found at configure time)")
#endif

// The emulated kernels (farsee_kernels_emu, built with AVX2) are a test-only library: the programs
// do not link it, so they run on any x86-64 CPU. FARSEE_DECLARE_OP declares the emu_impl functions
// with FARSEE_EMU_ENTRY (weak): linked into a test, they resolve; in a program their address is
// null and the emu executor throws instead of calling them.
#define FARSEE_EMU_ENTRY __attribute__((weak))
#define FARSEE_DISPATCH_EMU(fn, ...)                                                       \
  do {                                                                                     \
    if (&::farsee::emu_impl::fn == nullptr) {                                              \
      ::farsee::throw_error(__FILE__, __LINE__,                                            \
                            std::string(#fn) +                                             \
                                ": executor 'emu' (the CUDA kernels run on the CPU) is a " \
                                "test-only library that this program does not link; use "  \
                                "'reference' or 'cuda'");                                  \
    }                                                                                      \
    ::farsee::emu_impl::fn(__VA_ARGS__);                                                   \
  } while (0)

// The four implementations of op `fn` (returning void), one signature; the emu one weak. Ends in
// a static_assert so that the use's `;` closes a declaration.
#define FARSEE_DECLARE_OP(fn, ...)       \
  namespace reference {                  \
  void fn(__VA_ARGS__);                  \
  }                                      \
  namespace cpu_impl {                   \
  void fn(__VA_ARGS__);                  \
  }                                      \
  namespace emu_impl {                   \
  FARSEE_EMU_ENTRY void fn(__VA_ARGS__); \
  }                                      \
  namespace cuda_impl {                  \
  void fn(__VA_ARGS__);                  \
  }                                      \
  static_assert(true, #fn " declared for every executor")

#define FARSEE_DISPATCH(ctx, fn, ...)          \
  do {                                         \
    switch ((ctx).executor) {                  \
      case ::farsee::Executor::Reference:      \
        ::farsee::reference::fn(__VA_ARGS__);  \
        break;                                 \
      case ::farsee::Executor::Cpu:            \
        ::farsee::cpu_impl::fn(__VA_ARGS__);   \
        break;                                 \
      case ::farsee::Executor::Emu:            \
        FARSEE_DISPATCH_EMU(fn, __VA_ARGS__);  \
        break;                                 \
      case ::farsee::Executor::Cuda:           \
        FARSEE_DISPATCH_CUDA(fn, __VA_ARGS__); \
        break;                                 \
    }                                          \
  } while (0)

// Inside a .cu file: the namespace its kernels and launchers live in for the current build.
#if defined(__CUDACC__)
#define FARSEE_KERNEL_NS cuda_impl
#else
#define FARSEE_KERNEL_NS emu_impl
#endif
