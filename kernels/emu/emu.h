// kernels/emu: CUDA kernels on the CPU (DESIGN.md section 4).
//
// This header is force-included (g++ -include kernels/emu/emu.h) in front of every kernel .cu file
// of the emu build. It turns the CUDA dialect into plain C++:
//   - __global__/__device__/__host__/__forceinline__ vanish; dim3 and the fp16/bf16 types come
//     from CUDA's own host-usable headers (or kernels/emu/host_fp16.h where no toolkit exists).
//   - threadIdx/blockIdx/blockDim/gridDim read the state of the running fiber: every CUDA thread
//     is a fiber (Boost.Context), the threads of one block run on one host thread, one block after
//     the other, in an order chosen by the schedule.
//   - shared arrays (FARSEE_SHARED, the static ones, and farsee::dynamic_smem<T>(), the extern
//     one) come from per-block arenas poisoned with 0xFF bytes (NaN as fp32, fp16 and bf16) when
//     the block starts, so a read before a write shows up as NaN; the 48 KiB static and the
//     opt-in dynamic limits are enforced. (A static local cannot be used: g++ ignores a section
//     attribute on the statics of template functions, so they could not be found to be poisoned.)
//   - __syncthreads() is a barrier checked per call site; warp collectives go through a per-warp
//     exchange that checks op and mask. Fibers switch only at these points, so the schedule decides
//     which thread runs ahead: a missing barrier gives a wrong answer under greedy order.
//   - performance counters (kernels/emu/emu_counters.h, off by default): accesses through
//     farsee::ld/st, vec.h and ptx.h, barriers and MMAs, per launch.
// Not modelled: registers, caches, timing, memory-model subtleties beyond barriers.
#pragma once

#define FARSEE_EMU 1

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

// From the CUDA toolkit, or from kernels/emu/no_toolkit/ (host_fp16.h) on machines without one.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_types.h>

// ---- the CUDA dialect, as plain C++ (after the CUDA headers, which define these themselves) ----
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Shared arrays are declared with FARSEE_SHARED(T, name, dims) (kernels/core/launch.h), which
// takes them from the per-block arena; a raw __shared__ fails to compile with this message:
#define __shared__ \
  FARSEE_SHARED_required__declare_shared_arrays_with_FARSEE_SHARED_from_kernels_core_launch_h

#include "kernels/emu/emu_control.h"
#include "kernels/emu/emu_counters.h"

namespace emu {

// Per-thread (fiber) and per-block state.
struct ThreadState {
  uint3 thread_idx;
};
struct BlockState {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  unsigned char* dynamic_smem;
};
ThreadState* current_thread();
BlockState* current_block();
unsigned char* dynamic_smem_base();

// Address of the static shared array identified by `key` (one per declaration and template
// instance) in the running block: the first thread to reach the declaration allocates and poisons
// it, the others get the same address.
struct SharedSlot {
  char unused;
};
void* static_shared(const SharedSlot* key, size_t bytes, const char* name, const char* file,
                    int line);

// Records the opt-in dynamic shared-memory size of a kernel (cudaFuncSetAttribute equivalent).
void set_max_dynamic_smem(const void* kernel, size_t bytes);

// Launch: runs body() once per CUDA thread of the grid. Throws farsee::Error on barrier or warp
// misuse, deadlock, or bad launch parameters, naming file:line.
struct LaunchInfo {
  const char* file;
  int line;
  const char* kernel_name;
  const void* kernel;
  dim3 grid;
  dim3 block;
  size_t dynamic_smem;
};
using BodyFn = void (*)(void* closure);
void run_grid(const LaunchInfo& info, BodyFn body, void* closure);
// Checks the launch parameters and, inside a graph capture, that the kernel was launched before
// (CUDA loads a kernel lazily at its first launch, which a capture forbids); remembers the kernel.
// True when the launch must be deferred (asynchronous mode or capture, kernels/emu/emu_stream.h).
bool prepare_launch(const LaunchInfo& info, void* stream);
// Queues or records a launch whose arguments `closure` owns.
void defer_launch(const LaunchInfo& info, BodyFn body, std::shared_ptr<void> closure, void* stream,
                  int args, int scalar_args);

template <typename... P, typename... A>
void launch(const char* file, int line, const char* name, void (*kernel)(P...), dim3 grid,
            dim3 block, size_t smem, void* stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  // Arguments are copied once, at the launch, as CUDA copies them into the parameter buffer.
  struct Closure {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> args;
  };
  LaunchInfo info{file, line, name, reinterpret_cast<const void*>(kernel), grid, block, smem};
  BodyFn body = [](void* c) {
    auto* cl = static_cast<Closure*>(c);
    std::apply(cl->kernel, cl->args);
  };
  if (!prepare_launch(info, stream)) {
    Closure closure{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    run_grid(info, body, &closure);
    return;
  }
  auto closure = std::make_shared<Closure>(
      Closure{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)});
  constexpr int scalars = (0 + ... + int(!std::is_pointer<std::decay_t<P>>::value));
  defer_launch(info, body, std::move(closure), stream, int(sizeof...(P)), scalars);
}

// ---- performance counters (kernels/emu/emu_counters.h) ----
// count_access: one flag test inline (farsee::ld/st, the hot loops). count_access_call: always a
// call, no branch in the caller (vec.h's packed loads: with a branch there, g++ lost track of
// conditionally loaded registers and warned -Wmaybe-uninitialized in batchnorm.cu).
[[gnu::noinline, gnu::cold]] inline void count_access_call(const void* p, int bytes, bool store) {
  if (!counters_on() || !counters_in_launch()) return;  // host code shares vec.h
  const uint3 t = current_thread()->thread_idx;
  const dim3 b = current_block()->block_dim;
  counters_access(int(t.x + b.x * (t.y + b.y * t.z)), p, bytes, store);
}
inline void count_access(const void* p, int bytes, bool store) {
  if (__builtin_expect(counters_on(), false)) count_access_call(p, bytes, store);
}
int lane_id();
inline void count_mma() {
  if (counters_on() && lane_id() == 0) counters_mma();  // one per warp-wide instruction
}

// ---- synchronisation ----
void syncthreads(const char* file, int line);

enum class WarpOp { Shfl, ShflUp, ShflDown, ShflXor, Ballot, Any, All, SyncWarp, Gather };
const char* warp_op_name(WarpOp op);
constexpr int kWarpPayloadBytes = 64;
struct WarpPayload {
  alignas(16) unsigned char bytes[kWarpPayloadBytes];
};
// Every lane of `mask` contributes `bytes` bytes; returns the 32 lanes' payloads (valid until this
// lane's next collective). The last lane of the mask to arrive checks that all lanes of the mask
// are at the same op with the same mask, then wakes them.
const WarpPayload* warp_exchange(WarpOp op, unsigned mask, const void* payload, size_t bytes,
                                 const char* file, int line);
int lane_id();

template <typename T>
T shfl_generic(WarpOp op, unsigned mask, T v, int param, int width, const char* file, int line) {
  static_assert(sizeof(T) <= kWarpPayloadBytes, "shuffle of a too large type");
  const WarpPayload* all = warp_exchange(op, mask, &v, sizeof(T), file, line);
  int lane = lane_id();
  int base = lane / width * width;
  int src = lane;
  switch (op) {
    case WarpOp::Shfl:
      src = base + ((param % width) + width) % width;
      break;
    case WarpOp::ShflUp:
      src = (lane - base >= param) ? lane - param : lane;
      break;
    case WarpOp::ShflDown:
      src = (lane - base + param < width) ? lane + param : lane;
      break;
    case WarpOp::ShflXor: {
      int s = lane ^ param;
      src = (s >= base && s < base + width) ? s : lane;
      break;
    }
    default:
      break;
  }
  if (!((mask >> src) & 1u)) src = lane;  // reading an inactive lane: undefined on hardware
  T out;
  std::memcpy(&out, all[src].bytes, sizeof(T));
  return out;
}
unsigned vote(WarpOp op, unsigned mask, int predicate, const char* file, int line);

// ---- cp.async emulation: copies are deferred until the group is waited for ----
void cp_async_enqueue(void* dst, const void* src, int src_bytes, int total_bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups_allowed);

}  // namespace emu

#define threadIdx (::emu::current_thread()->thread_idx)
#define blockIdx (::emu::current_block()->block_idx)
#define blockDim (::emu::current_block()->block_dim)
#define gridDim (::emu::current_block()->grid_dim)
#ifndef warpSize
#define warpSize 32
#endif

#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) \
  ::emu::vote(::emu::WarpOp::SyncWarp, ::emu::detail_mask(__VA_ARGS__), 0, __FILE__, __LINE__)
#define __shfl_sync(mask, v, src, ...)                                                     \
  ::emu::shfl_generic(::emu::WarpOp::Shfl, mask, v, src, ::emu::detail_width(__VA_ARGS__), \
                      __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, d, ...)                                                    \
  ::emu::shfl_generic(::emu::WarpOp::ShflUp, mask, v, d, ::emu::detail_width(__VA_ARGS__), \
                      __FILE__, __LINE__)
#define __shfl_down_sync(mask, v, d, ...)                                                    \
  ::emu::shfl_generic(::emu::WarpOp::ShflDown, mask, v, d, ::emu::detail_width(__VA_ARGS__), \
                      __FILE__, __LINE__)
#define __shfl_xor_sync(mask, v, m, ...)                                                    \
  ::emu::shfl_generic(::emu::WarpOp::ShflXor, mask, v, m, ::emu::detail_width(__VA_ARGS__), \
                      __FILE__, __LINE__)
#define __ballot_sync(mask, p) ::emu::vote(::emu::WarpOp::Ballot, mask, (p), __FILE__, __LINE__)
#define __any_sync(mask, p) (::emu::vote(::emu::WarpOp::Any, mask, (p), __FILE__, __LINE__) != 0)
#define __all_sync(mask, p) (::emu::vote(::emu::WarpOp::All, mask, (p), __FILE__, __LINE__) != 0)

namespace emu {
inline int detail_width() {
  return 32;
}
inline int detail_width(int w) {
  return w;
}
inline unsigned detail_mask() {
  return 0xffffffffu;
}
inline unsigned detail_mask(unsigned m) {
  return m;
}
}  // namespace emu

// ---- memory fences: blocks run one after another and fibers switch only at barriers ----
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- atomics: fibers of one host thread never interleave inside a call, so these are exact ----
namespace emu {
template <typename T, typename F>
inline T atomic_update(T* p, F next) {
  T old = *p;
  *p = next(old);
  return old;
}
template <typename To, typename From>
inline To bit_cast(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To y;
  std::memcpy(&y, &x, sizeof y);
  return y;
}
}  // namespace emu
template <typename T>
inline T atomicAdd(T* p, T v) {
  return emu::atomic_update(p, [v](T o) { return o + v; });
}
template <typename T>
inline T atomicSub(T* p, T v) {
  return emu::atomic_update(p, [v](T o) { return o - v; });
}
template <typename T>
inline T atomicMax(T* p, T v) {
  return emu::atomic_update(p, [v](T o) { return std::max(o, v); });
}
template <typename T>
inline T atomicMin(T* p, T v) {
  return emu::atomic_update(p, [v](T o) { return std::min(o, v); });
}
template <typename T>
inline T atomicExch(T* p, T v) {
  return emu::atomic_update(p, [v](T) { return v; });
}
template <typename T>
inline T atomicCAS(T* p, T cmp, T v) {
  return emu::atomic_update(p, [=](T o) { return o == cmp ? v : o; });
}
template <typename T>
inline T atomicOr(T* p, T v) {
  return emu::atomic_update(p, [v](T o) { return o | v; });
}
template <typename T>
inline T atomicAnd(T* p, T v) {
  return emu::atomic_update(p, [v](T o) { return o & v; });
}

// ---- device math and bit intrinsics that the host lacks ----
template <typename T>
inline T __ldg(const T* p) {
  emu::count_access(p, int(sizeof(T)), false);
  return *p;
}
inline float __expf(float x) {
  return std::exp(x);
}
inline float __logf(float x) {
  return std::log(x);
}
inline float __fdividef(float a, float b) {
  return a / b;
}
inline float __frcp_rn(float x) {
  return 1.0f / x;
}
inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline float __saturatef(float x) {
  return std::min(1.0f, std::max(0.0f, x));
}
inline float __fmaf_rn(float a, float b, float c) {
  return std::fma(a, b, c);
}
inline int __float_as_int(float x) {
  return emu::bit_cast<int>(x);
}
inline float __int_as_float(int i) {
  return emu::bit_cast<float>(i);
}
inline unsigned __float_as_uint(float x) {
  return emu::bit_cast<unsigned>(x);
}
inline float __uint_as_float(unsigned i) {
  return emu::bit_cast<float>(i);
}
inline int __popc(unsigned x) {
  return __builtin_popcount(x);
}
inline int __clz(int x) {
  return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x));
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline int min(int a, int b) {
  return a < b ? a : b;
}
inline int max(int a, int b) {
  return a > b ? a : b;
}
inline unsigned min(unsigned a, unsigned b) {
  return a < b ? a : b;
}
inline unsigned max(unsigned a, unsigned b) {
  return a > b ? a : b;
}
inline long long min(long long a, long long b) {
  return a < b ? a : b;
}
inline long long max(long long a, long long b) {
  return a > b ? a : b;
}
inline float min(float a, float b) {
  return std::fmin(a, b);
}
inline float max(float a, float b) {
  return std::fmax(a, b);
}

// ---- fp16 intrinsics that cuda_fp16.h declares for the device only ----
inline __half __hfma(__half a, __half b, __half c) {
  // One rounding, as the hardware's fused multiply-add: the fp32 product of two halves is exact.
  return __float2half(std::fma(__half2float(a), __half2float(b), __half2float(c)));
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return __halves2half2(__hfma(__low2half(a), __low2half(b), __low2half(c)),
                        __hfma(__high2half(a), __high2half(b), __high2half(c)));
}
inline __half hexp(__half a) {
  return __float2half(std::exp(__half2float(a)));
}
inline __half hsqrt(__half a) {
  return __float2half(std::sqrt(__half2float(a)));
}
inline __half __hrelu(__half a) {
  return __half2float(a) > 0.0f ? a : __float2half(0.0f);
}
