// FARSEE_HD marks small helpers (index math, epilogues) callable from host code, CUDA kernels and
// emulated kernels alike. Under nvcc it is __host__ __device__ __forceinline__; under g++
// (reference code and kernels/emu builds) a plain inline.
#pragma once

#if defined(__CUDACC__)
#define FARSEE_HD __host__ __device__ __forceinline__
#define FARSEE_DEVICE __device__ __forceinline__
#else
#define FARSEE_HD inline
#define FARSEE_DEVICE inline
#endif
