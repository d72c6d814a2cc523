// Streams, queues and graph capture of the emu executor (DESIGN.md section 4), shared by the
// runtime API (kernels/core/runtime.cpp: copies, memsets, synchronisation, graphs) and the kernel
// launcher (kernels/emu/emu_runtime.cpp). Built into farsee_core, so it needs no fibers.
//
// Every piece of stream work is a StreamOp handed to submit():
//   - on a stream that is being captured it is recorded into the graph, not run;
//   - in asynchronous mode (FARSEE_EMU_ASYNC=1) it is queued and runs, in stream order, when the
//     stream is flushed: rt::synchronize, a synchronous copy to host, Timer::elapsed_ms, rt::free
//     (cudaFree waits for the device), stream destruction; FARSEE_SYNC_LAUNCHES=1 flushes after
//     every launch;
//   - otherwise (the default, for debugging) it runs at once.
// Streams are ordered only by events (rt::event_record / rt::stream_wait_event, CUDA's semantics:
// a wait covers the work submitted to the recording stream before the record): a flush runs its
// own stream's queue only, and flush_all runs the streams newest first (the stream whose last op
// was submitted latest), so work that reads another stream's results without a wait reads them
// before they are written (poison) instead of after, as a GPU may.
// An error thrown by a queued op surfaces at the next flush of its stream, naming the op; where
// the flush cannot throw (rt::free, stream destruction) it is kept and thrown by the next flush.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "kernels/emu/emu_control.h"

namespace emu {

struct StreamOp {
  OpKind kind = OpKind::Launch;
  std::string name;  // kernel name, or the rt call
  std::string site;  // file:line where it was issued
  int args = 0;      // launches: kernel arguments, and those that are not pointers
  int scalar_args = 0;
  std::function<void()> run;
  uint64_t seq = 0;  // submission order over all streams (set by submit)
};

// True when an op submitted to `stream` now would not run at once (async mode, or capturing).
bool deferred(void* stream);
void submit(void* stream, StreamOp op);
// Runs the queued work of one stream / of every stream; throws the first error.
void flush(void* stream);
void flush_all();
// flush_all for noexcept callers: an error is kept for the next flush.
void flush_all_noexcept() noexcept;

// Graph-capture rules: throws (and invalidates the capture) when this thread is capturing.
// `call` names the forbidden call ("rt::alloc", ...).
void forbid_in_capture(const char* call);
// For noexcept callers (rt::free): only invalidates the capture; graph_end_capture reports it.
void invalidate_capture(const char* call) noexcept;
bool capturing(void* stream);

// Events (cudaEventCreate / cudaEventRecord / cudaStreamWaitEvent). A wait queued on a stream
// runs, when its stream reaches it, the recording stream's work up to the record; waiting on an
// event never recorded does nothing. Inside a graph capture both throw (not emulated).
void* event_create();
void event_destroy(void* event) noexcept;
void event_record(void* stream, void* event, const std::string& site);
void stream_wait_event(void* stream, void* event, const std::string& site);

void* stream_create();
void stream_destroy(void* stream) noexcept;

void graph_begin_capture(void* stream);
void* graph_end_capture(void* stream);
void graph_launch(void* stream, void* graph);
// False when `graph` is not an emu graph (the caller then treats it as a CUDA one).
bool graph_destroy(void* graph) noexcept;

// The runtime's stream work (`site`: the caller's file:line).
void submit_memset(void* stream, void* p, int value, size_t bytes, const std::string& site);
void submit_copy_device(void* stream, void* dst, const void* src, size_t bytes,
                        const std::string& site);
void submit_copy_to_device(void* stream, void* dst, const void* src, size_t bytes,
                           const std::string& site);

// Environment switches, read once.
bool poison_enabled();
bool sync_launches_enabled();

}  // namespace emu
