// One entry point per op, three executors. An op header declares its three implementations in
// namespaces farsee::reference, farsee::emu_impl and farsee::cuda_impl with identical signatures
// (first argument: the Context) and defines the public entry as
//   FARSEE_DISPATCH(ctx, op_name, ctx, args...);
// In a build without CUDA the cuda branch throws instead of referencing the missing symbol.
#pragma once

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

#define FARSEE_DISPATCH(ctx, fn, ...)          \
  do {                                         \
    switch ((ctx).executor) {                  \
      case ::farsee::Executor::Reference:      \
        ::farsee::reference::fn(__VA_ARGS__);  \
        break;                                 \
      case ::farsee::Executor::Emu:            \
        ::farsee::emu_impl::fn(__VA_ARGS__);   \
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
