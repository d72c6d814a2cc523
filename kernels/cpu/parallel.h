// When a cpu op uses its OpenMP threads. A parallel region costs microseconds on an idle machine
// but milliseconds on a loaded one (its end waits for a worker that shares a core with another
// process; the reference measured the same: kernels/reference/index.h). So small ops stay on the
// calling thread: below ~0.3-0.5 ms of single-thread work while the cores are free (the deep
// layers' and the heads' sub-millisecond ops gained nearly 2x from both threads; a paper 256x512
// batch-2 training step ~375 vs ~400 ms with 1-2 ms thresholds), below ~1.5-2 ms while other
// processes compete for them (machine_busy: there the low thresholds made a 128x256 batch-4 step
// next to two 2-thread training runs ~1.5x slower). Which tiles and segments an op uses never
// depends on this (results are the same either way): the splits that are made for the threads
// follow the shape-only thresholds (split_gemm_for_threads).
#pragma once

#include <emmintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace farsee::cpu_impl {

// Whether more threads are runnable than the machine has cores (+1): the instantaneous count of
// /proc/loadavg (ours included), sampled at most every 50 ms. False where it cannot be read.
bool machine_busy();

// GEMM multiply-adds: 2^25 is ~0.4 ms of single-thread SGEMM. Shape-only: the work splits.
inline bool split_gemm_for_threads(int64_t macs) {
  return macs >= (int64_t(1) << 25);
}
inline bool worth_threads_gemm(int64_t macs) {
  return macs >= (int64_t(1) << (machine_busy() ? 27 : 25));
}
// Element visits of the memory-bound loops (a few flops per element): 2^19 is ~0.3-0.5 ms.
inline bool worth_threads_elements(int64_t visits) {
  return visits >= (int64_t(1) << (machine_busy() ? 21 : 19));
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
  if (bytes < (size_t(1) << 20)) {  // small: stays in cache for its next reader
    std::memcpy(dst, src, bytes);
    return;
  }
  const int64_t chunks = int64_t((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(dynamic) if (worth_threads_elements(int64_t(bytes / 4)))
  for (int64_t i = 0; i < chunks; ++i) {
    const size_t at = size_t(i) * kChunk, n = std::min(kChunk, bytes - at);
    char* d = static_cast<char*>(dst) + at;
    const char* s = static_cast<const char*>(src) + at;
    // Streaming (non-temporal) 16-byte stores for the aligned middle of a large copy: no read of
    // the destination lines before they are overwritten (the memory-bound weight repack).
    const size_t head = std::min(n, size_t((16 - reinterpret_cast<uintptr_t>(d) % 16) % 16));
    std::memcpy(d, s, head);
    size_t k = head;
    for (; k + 16 <= n; k += 16)
      _mm_stream_ps(reinterpret_cast<float*>(d + k),
                    _mm_loadu_ps(reinterpret_cast<const float*>(s + k)));
    std::memcpy(d + k, s + k, n - k);
    _mm_sfence();  // the streamed stores ordered before this thread's later stores and the join
  }
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
