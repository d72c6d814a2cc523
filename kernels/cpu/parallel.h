// When a cpu op uses its OpenMP threads. A parallel region costs microseconds on an idle machine
// but milliseconds on a loaded one (its end waits for a worker that shares a core with another
// process; the reference measured the same: kernels/reference/index.h), so small ops stay on the
// calling thread: below ~0.3-0.5 ms of single-thread work (on the quiet machine the deep layers'
// and the heads' sub-millisecond ops gained nearly 2x from both threads; 1-2 ms thresholds left
// them on one core). Which tiles and segments an op uses never
// depends on this (results are the same either way).
#pragma once

#include <emmintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace farsee::cpu_impl {

// GEMM multiply-adds: 2^25 is ~0.4 ms of single-thread SGEMM.
inline bool worth_threads_gemm(int64_t macs) {
  return macs >= (int64_t(1) << 25);
}
// Element visits of the memory-bound loops (a few flops per element): 2^19 is ~0.3-0.5 ms.
inline bool worth_threads_elements(int64_t visits) {
  return visits >= (int64_t(1) << 19);
}

// A per-call scratch buffer of n elements left uninitialised (null for n = 0): std::vector
// value-initialises, a memset of every im2col / accumulator buffer that is overwritten before it is
// read anyway.
template <typename T>
std::unique_ptr<T[]> scratch(size_t n) {
  return n == 0 ? nullptr : std::unique_ptr<T[]>(new T[n]);
}

// memcpy / memset of a large buffer in 256 KiB chunks over the threads (a single thread's copy
// does not reach the memory bandwidth: the weight repack after every SGD step, the gradient
// zeroing).
inline void copy_bytes(void* dst, const void* src, size_t bytes) {
  constexpr size_t kChunk = size_t(1) << 18;
  const int64_t chunks = int64_t((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(int64_t(bytes / 4)))
  for (int64_t i = 0; i < chunks; ++i) {
    const size_t at = size_t(i) * kChunk, n = std::min(kChunk, bytes - at);
    char* d = static_cast<char*>(dst) + at;
    const char* s = static_cast<const char*>(src) + at;
    // Streaming (non-temporal) 16-byte stores for the aligned middle: no read of the destination
    // lines before they are overwritten (the memory-bound weight repack).
    const size_t head = std::min(n, size_t((16 - reinterpret_cast<uintptr_t>(d) % 16) % 16));
    std::memcpy(d, s, head);
    size_t k = head;
    for (; k + 16 <= n; k += 16)
      _mm_stream_ps(reinterpret_cast<float*>(d + k),
                    _mm_loadu_ps(reinterpret_cast<const float*>(s + k)));
    std::memcpy(d + k, s + k, n - k);
  }
  _mm_sfence();
}
inline void zero_bytes(void* dst, size_t bytes) {
  constexpr size_t kChunk = size_t(1) << 18;
  const int64_t chunks = int64_t((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(int64_t(bytes / 4)))
  for (int64_t i = 0; i < chunks; ++i) {
    const size_t at = size_t(i) * kChunk;
    std::memset(static_cast<char*>(dst) + at, 0, std::min(kChunk, bytes - at));
  }
}

}  // namespace farsee::cpu_impl
