// The thin runtime API the library needs (DESIGN.md section 3): memory, copies, memset, streams,
// events. Each call takes the executor: `cuda` goes to the CUDA runtime (every call checked);
// `emu`, `reference` and `cpu` use host memory (256-byte aligned, like cudaMalloc), so net/ runs
// unchanged on every executor. `emu` behaves like a GPU (kernels/emu/emu_stream.h): fresh memory
// is poisoned (NaN), and with FARSEE_EMU_ASYNC=1 the work on a stream is queued and runs at the
// next synchronisation; graphs can be captured with CUDA's rules. Copies and memsets are
// asynchronous except copy_to_host, which waits for the stream like cudaMemcpy. Every failure
// throws farsee::Error; `file`/`line` default to the caller's, to name a copy that failed later.
// On cuda, an asynchronous kernel error met by a synchronising call says it may be an earlier
// kernel's and how to name it (FARSEE_SYNC_LAUNCHES=1, kernels/core/cuda_errors.h).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels/core/executor.h"

namespace farsee::rt {

constexpr size_t kAlignment = 256;

void* alloc(Executor e, size_t bytes);
void free(Executor e, void* p) noexcept;
void memset(const Context& ctx, void* p, int value, size_t bytes,
            const char* file = __builtin_FILE(), int line = __builtin_LINE());
// The host buffer must stay alive and unchanged until the stream is synchronised (pinned memory
// is read when the copy runs).
void copy_to_device(const Context& ctx, void* dst, const void* host_src, size_t bytes,
                    const char* file = __builtin_FILE(), int line = __builtin_LINE());
void copy_to_host(const Context& ctx, void* host_dst, const void* src, size_t bytes);
void copy_device(const Context& ctx, void* dst, const void* src, size_t bytes,
                 const char* file = __builtin_FILE(), int line = __builtin_LINE());
void synchronize(const Context& ctx);

void* stream_create(Executor e);
void stream_destroy(Executor e, void* stream) noexcept;

// Ordering across streams (cudaEventRecord / cudaStreamWaitEvent; streams are non-blocking, so
// nothing else orders them): the work submitted to ctx.stream after stream_wait_event runs after
// the work submitted to the recording stream before the latest event_record. Under emu a missing
// wait shows (kernels/emu/emu_stream.h); reference and cpu run everything at once (no-ops).
void* event_create(Executor e);
void event_destroy(Executor e, void* event) noexcept;
void event_record(const Context& ctx, void* event, const char* file = __builtin_FILE(),
                  int line = __builtin_LINE());
void stream_wait_event(const Context& ctx, void* event, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE());

// Elapsed-time measurement: CUDA events on cuda, a steady clock elsewhere.
struct Timer {
  Executor executor;
  void* start = nullptr;
  void* stop = nullptr;
  explicit Timer(Executor e);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void record_start(const Context& ctx);
  void record_stop(const Context& ctx);
  float elapsed_ms();  // waits for the stop event
};

// Host memory the executor copies from asynchronously: page-locked (cudaHostAlloc) on cuda, so a
// copy_to_device from it is a true asynchronous DMA; plain aligned host memory elsewhere.
void* alloc_pinned_host(Executor e, size_t bytes);
void free_pinned_host(Executor e, void* p) noexcept;

// Owning, movable memory from Alloc, given back to Free.
template <void* (*Alloc)(Executor, size_t), void (*Free)(Executor, void*) noexcept>
class OwnedMemory {
 public:
  OwnedMemory() = default;
  OwnedMemory(Executor e, size_t bytes) : executor_(e), bytes_(bytes), data_(Alloc(e, bytes)) {}
  ~OwnedMemory() { Free(executor_, data_); }
  OwnedMemory(OwnedMemory&& o) noexcept { swap(o); }
  OwnedMemory& operator=(OwnedMemory&& o) noexcept {
    swap(o);
    return *this;
  }
  OwnedMemory(const OwnedMemory&) = delete;
  OwnedMemory& operator=(const OwnedMemory&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }
  Executor executor() const { return executor_; }
  // At least `bytes` on `e` afterwards: when empty or smaller, a new allocation (at least
  // kAlignment bytes; the old contents are dropped). Reused buffers of varying sizes.
  void reserve(Executor e, size_t bytes) {
    if (data_ == nullptr || bytes_ < bytes) *this = OwnedMemory(e, std::max(bytes, kAlignment));
  }

 private:
  void swap(OwnedMemory& o) noexcept {
    std::swap(executor_, o.executor_);
    std::swap(bytes_, o.bytes_);
    std::swap(data_, o.data_);
  }
  Executor executor_ = Executor::Reference;
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// Owning, movable stream or event (Create / Destroy: stream_create / stream_destroy,
// event_create / event_destroy); empty (get() null) when default-constructed; a move swaps.
template <void* (*Create)(Executor), void (*Destroy)(Executor, void*) noexcept>
class OwnedHandle {
 public:
  OwnedHandle() = default;
  explicit OwnedHandle(Executor e) : executor_(e), handle_(Create(e)) {}
  ~OwnedHandle() {
    if (handle_) Destroy(executor_, handle_);
  }
  OwnedHandle(OwnedHandle&& o) noexcept { swap(o); }
  OwnedHandle& operator=(OwnedHandle&& o) noexcept {
    swap(o);
    return *this;
  }
  OwnedHandle(const OwnedHandle&) = delete;
  OwnedHandle& operator=(const OwnedHandle&) = delete;

  void* get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }

 private:
  void swap(OwnedHandle& o) noexcept {
    std::swap(executor_, o.executor_);
    std::swap(handle_, o.handle_);
  }
  Executor executor_ = Executor::Reference;
  void* handle_ = nullptr;
};

// Owning buffer in the executor's memory space.
using Buffer = OwnedMemory<alloc, free>;
// Owning page-locked host staging (alloc_pinned_host).
using PinnedHostBuffer = OwnedMemory<alloc_pinned_host, free_pinned_host>;
// Owning stream and event (the executors with streams: cuda, emu; elsewhere null handles).
using Stream = OwnedHandle<stream_create, stream_destroy>;
using Event = OwnedHandle<event_create, event_destroy>;

// ---- CUDA graphs (cuda and emu; reference and cpu have nothing to capture and throw) ----
// Everything launched on ctx.stream between begin and end is recorded, not run (thread-local
// capture mode: unsafe calls such as cudaMalloc from this thread fail instead of being recorded).
// end returns an executable graph handle; launch replays it on ctx.stream. Under emu the forbidden
// calls (alloc, free, copy_to_host, synchronize, FARSEE_SET_MAX_DYNAMIC_SMEM, a kernel's first
// launch) throw naming the call (free, noexcept, makes graph_end_capture throw instead).
// The executors with streams and graphs (net/ captures its steps on them).
inline bool uses_graphs(Executor e) {
  return e == Executor::Cuda || e == Executor::Emu;
}
void graph_begin_capture(const Context& ctx);
void* graph_end_capture(const Context& ctx);
void graph_launch(const Context& ctx, void* graph_exec);
void graph_destroy(void* graph_exec) noexcept;

// Programmatic dependent launch (sm_90, cuda only; kernels/core/launch.h FARSEE_LAUNCH_PDL: the
// conv kernels fetch their first weight tiles while the previous kernel finishes). OFF unless
// FARSEE_PDL=1 is in the environment or a caller switches it on (the GPU test compares it with
// the plain launches): it has not been verified on a GPU yet. Process-wide.
void set_programmatic_dependent_launch(bool on);
bool programmatic_dependent_launch();

}  // namespace farsee::rt
