#include "kernels/core/runtime.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/core/check.h"
#include "kernels/emu/emu_counters.h"
#include "kernels/emu/emu_stream.h"

#if FARSEE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/core/cuda_errors.h"

// FARSEE_CUDA_CHECK for the calls where a kernel's asynchronous error surfaces (copies, memsets,
// synchronisations, graph launches): the message adds that it may be an earlier kernel's.
#define FARSEE_CUDA_CHECK_ASYNC(expr)                                                   \
  do {                                                                                  \
    const cudaError_t farsee_st_ = (expr);                                              \
    if (farsee_st_ != cudaSuccess) {                                                    \
      ::farsee::throw_error(__FILE__, __LINE__,                                         \
                            std::string("CUDA call failed: ") + #expr + ": " +          \
                                cudaGetErrorName(farsee_st_) + ": " +                   \
                                cudaGetErrorString(farsee_st_) +                        \
                                ::farsee::detail::asynchronous_error_hint(farsee_st_)); \
    }                                                                                   \
  } while (0)
#endif

namespace farsee {

const char* executor_name(Executor e) {
  switch (e) {
    case Executor::Cuda:
      return "cuda";
    case Executor::Emu:
      return "emu";
    case Executor::Reference:
      return "reference";
    case Executor::Cpu:
      return "cpu";
  }
  return "?";
}

Executor parse_executor(const std::string& s, const char* what) {
  if (s == "cuda") return Executor::Cuda;
  if (s == "emu") return Executor::Emu;
  if (s == "reference") return Executor::Reference;
  if (s == "cpu") return Executor::Cpu;
  FARSEE_REQUIRE(false, what << ": '" << s << "' is not one of cuda, emu, reference, cpu");
}

bool built_with_cuda() {
  return FARSEE_HAVE_CUDA != 0;
}

int cuda_device_count() {
#if FARSEE_HAVE_CUDA
  int n = 0;
  // Without a driver this returns an error code (cudaErrorInsufficientDriver / NoDevice); it does
  // not crash. Clear the sticky error so later calls are not confused by it.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

std::string cuda_unavailable_reason() {
#if FARSEE_HAVE_CUDA
  int n = 0;
  cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("no usable CUDA device (cudaGetDeviceCount: ") + cudaGetErrorName(st) + ")";
  }
  if (n == 0) return "no CUDA device present";
  return "";
#else
  return "FarSee was built without CUDA (nvcc not found at configure time)";
#endif
}

}  // namespace farsee

namespace farsee::rt {
namespace {

[[maybe_unused]] [[noreturn]] void no_cuda(const char* what) {
  throw_error(__FILE__, __LINE__,
              std::string(what) + ": executor 'cuda' is not available in this build");
}

std::string call_site(const char* file, int line) {
  return std::string(file ? file : "?") + ":" + std::to_string(line);
}

}  // namespace

void* alloc(Executor e, size_t bytes) {
  if (bytes == 0) return nullptr;
  if (e == Executor::Cuda) {
#if FARSEE_HAVE_CUDA
    void* p = nullptr;
    FARSEE_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
#else
    no_cuda("rt::alloc");
#endif
  }
  if (e == Executor::Emu) emu::forbid_in_capture("rt::alloc");
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  FARSEE_REQUIRE(p != nullptr, "host allocation of " << bytes << " bytes failed");
  // Device memory is not zeroed: emu shows a read before a write as NaN (0xFF bytes).
  if (e == Executor::Emu && emu::poison_enabled()) std::memset(p, 0xFF, rounded);
  return p;
}

void free(Executor e, void* p) noexcept {
  if (!p) return;
  if (e == Executor::Cuda) {
#if FARSEE_HAVE_CUDA
    (void)cudaFree(p);  // noexcept: a failure here cannot be reported usefully
#endif
    return;
  }
  if (e == Executor::Emu) {
    emu::invalidate_capture("rt::free");
    emu::flush_all_noexcept();  // cudaFree waits for the device's work
  }
  std::free(p);
}

void* alloc_pinned_host(Executor e, size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  if (e == Executor::Cuda) {
#if FARSEE_HAVE_CUDA
    FARSEE_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    return p;
#else
    no_cuda("rt::PinnedHostBuffer");
#endif
  }
  p = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  FARSEE_REQUIRE(p != nullptr, "host allocation of " << bytes << " bytes failed");
  return p;
}

void free_pinned_host(Executor e, void* p) noexcept {
  if (!p) return;
#if FARSEE_HAVE_CUDA
  if (e == Executor::Cuda) {
    (void)cudaFreeHost(p);  // noexcept: a failure here cannot be reported usefully
    return;
  }
#endif
  (void)e;
  std::free(p);
}

void memset(const Context& ctx, void* p, int value, size_t bytes, const char* file, int line) {
  if (ctx.executor == Executor::Cuda) {
#if FARSEE_HAVE_CUDA
    FARSEE_CUDA_CHECK_ASYNC(
        cudaMemsetAsync(p, value, bytes, static_cast<cudaStream_t>(ctx.stream)));
    return;
#else
    no_cuda("rt::memset");
#endif
  }
  if (ctx.executor == Executor::Emu) {
    return emu::submit_memset(ctx.stream, p, value, bytes, call_site(file, line));
  }
  std::memset(p, value, bytes);
}

#if FARSEE_HAVE_CUDA
static void cuda_copy(const Context& ctx, void* dst, const void* src, size_t bytes,
                      cudaMemcpyKind kind) {
  FARSEE_CUDA_CHECK_ASYNC(
      cudaMemcpyAsync(dst, src, bytes, kind, static_cast<cudaStream_t>(ctx.stream)));
  if (kind == cudaMemcpyDeviceToHost) {
    FARSEE_CUDA_CHECK_ASYNC(cudaStreamSynchronize(static_cast<cudaStream_t>(ctx.stream)));
  }
}
#endif

#if FARSEE_HAVE_CUDA
#define FARSEE_COPY(kind) cuda_copy(ctx, dst, src, bytes, kind)
#else
#define FARSEE_COPY(kind) no_cuda("rt::copy")
#endif

void copy_to_device(const Context& ctx, void* dst, const void* src, size_t bytes, const char* file,
                    int line) {
  if (ctx.executor == Executor::Cuda) return FARSEE_COPY(cudaMemcpyHostToDevice);
  if (bytes == 0) return;
  if (ctx.executor == Executor::Emu) {
    return emu::submit_copy_to_device(ctx.stream, dst, src, bytes, call_site(file, line));
  }
  std::memcpy(dst, src, bytes);
}

void copy_to_host(const Context& ctx, void* dst, const void* src, size_t bytes) {
  if (ctx.executor == Executor::Cuda) return FARSEE_COPY(cudaMemcpyDeviceToHost);
  if (ctx.executor == Executor::Emu) {
    emu::forbid_in_capture("rt::copy_to_host (a synchronous copy)");
    emu::flush(ctx.stream);
  }
  if (bytes) std::memcpy(dst, src, bytes);
}

void copy_device(const Context& ctx, void* dst, const void* src, size_t bytes, const char* file,
                 int line) {
  if (ctx.executor == Executor::Cuda) return FARSEE_COPY(cudaMemcpyDeviceToDevice);
  if (bytes == 0) return;
  if (ctx.executor == Executor::Emu) {
    return emu::submit_copy_device(ctx.stream, dst, src, bytes, call_site(file, line));
  }
  std::memmove(dst, src, bytes);
}

void synchronize(const Context& ctx) {
  if (ctx.executor == Executor::Emu) {
    emu::forbid_in_capture("rt::synchronize");
    emu::flush(ctx.stream);
  }
  if (ctx.executor != Executor::Cuda) return;
#if FARSEE_HAVE_CUDA
  FARSEE_CUDA_CHECK_ASYNC(cudaStreamSynchronize(static_cast<cudaStream_t>(ctx.stream)));
#else
  no_cuda("rt::synchronize");
#endif
}

void* stream_create(Executor e) {
  if (e == Executor::Emu) return emu::stream_create();
  if (e != Executor::Cuda) return nullptr;
#if FARSEE_HAVE_CUDA
  cudaStream_t s = nullptr;
  FARSEE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
#else
  no_cuda("rt::stream_create");
#endif
}

void stream_destroy(Executor e, void* stream) noexcept {
  if (e == Executor::Emu) return emu::stream_destroy(stream);
#if FARSEE_HAVE_CUDA
  if (e == Executor::Cuda && stream) (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream));
#else
  (void)e;
  (void)stream;
#endif
}

void* event_create(Executor e) {
  if (e == Executor::Emu) return emu::event_create();
  if (e != Executor::Cuda) return nullptr;
#if FARSEE_HAVE_CUDA
  cudaEvent_t ev = nullptr;
  FARSEE_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  return ev;
#else
  no_cuda("rt::event_create");
#endif
}

void event_destroy(Executor e, void* event) noexcept {
  if (e == Executor::Emu) return emu::event_destroy(event);
#if FARSEE_HAVE_CUDA
  if (e == Executor::Cuda && event) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event));
#else
  (void)event;
#endif
}

void event_record(const Context& ctx, void* event, const char* file, int line) {
  if (ctx.executor == Executor::Emu)
    return emu::event_record(ctx.stream, event, call_site(file, line));
  if (ctx.executor != Executor::Cuda) return;
#if FARSEE_HAVE_CUDA
  FARSEE_CUDA_CHECK_ASYNC(
      cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(ctx.stream)));
#else
  no_cuda("rt::event_record");
#endif
}

void stream_wait_event(const Context& ctx, void* event, const char* file, int line) {
  if (ctx.executor == Executor::Emu)
    return emu::stream_wait_event(ctx.stream, event, call_site(file, line));
  if (ctx.executor != Executor::Cuda) return;
#if FARSEE_HAVE_CUDA
  FARSEE_CUDA_CHECK_ASYNC(cudaStreamWaitEvent(static_cast<cudaStream_t>(ctx.stream),
                                              static_cast<cudaEvent_t>(event), 0));
#else
  no_cuda("rt::stream_wait_event");
#endif
}

namespace {
using Clock = std::chrono::steady_clock;
// Under emu the stamp is taken when the stream reaches it (queued in asynchronous mode).
struct HostStamp {
  Clock::time_point t;
  void* stream = nullptr;
};

void host_stamp(Executor e, const Context& ctx, void* stamp_ptr, const char* call) {
  auto* stamp = static_cast<HostStamp*>(stamp_ptr);
  stamp->stream = ctx.stream;
  if (e != Executor::Emu) {
    stamp->t = Clock::now();
    return;
  }
  emu::StreamOp op{emu::OpKind::Timestamp, call, "rt::Timer", 0, 0, [stamp] {
                     stamp->t = Clock::now();
                     emu::counters_marker();  // farsee-emu-profile's step boundaries
                   }};
  emu::submit(ctx.stream, std::move(op));
}
}  // namespace

Timer::Timer(Executor e) : executor(e) {
  if (e == Executor::Cuda) {
#if FARSEE_HAVE_CUDA
    cudaEvent_t a, b;
    FARSEE_CUDA_CHECK(cudaEventCreate(&a));
    FARSEE_CUDA_CHECK(cudaEventCreate(&b));
    start = a;
    stop = b;
#else
    no_cuda("rt::Timer");
#endif
  } else {
    start = new HostStamp;
    stop = new HostStamp;
  }
}

Timer::~Timer() {
  if (executor == Executor::Cuda) {
#if FARSEE_HAVE_CUDA
    (void)cudaEventDestroy(static_cast<cudaEvent_t>(start));
    (void)cudaEventDestroy(static_cast<cudaEvent_t>(stop));
#endif
  } else {
    if (executor == Executor::Emu) emu::flush_all_noexcept();  // queued stamps point here
    delete static_cast<HostStamp*>(start);
    delete static_cast<HostStamp*>(stop);
  }
}

void Timer::record_start(const Context& ctx) {
#if FARSEE_HAVE_CUDA
  if (executor == Executor::Cuda) {
    FARSEE_CUDA_CHECK(
        cudaEventRecord(static_cast<cudaEvent_t>(start), static_cast<cudaStream_t>(ctx.stream)));
    return;
  }
#endif
  host_stamp(executor, ctx, start, "rt::Timer::record_start");
}

void Timer::record_stop(const Context& ctx) {
#if FARSEE_HAVE_CUDA
  if (executor == Executor::Cuda) {
    FARSEE_CUDA_CHECK(
        cudaEventRecord(static_cast<cudaEvent_t>(stop), static_cast<cudaStream_t>(ctx.stream)));
    return;
  }
#endif
  host_stamp(executor, ctx, stop, "rt::Timer::record_stop");
}

float Timer::elapsed_ms() {
#if FARSEE_HAVE_CUDA
  if (executor == Executor::Cuda) {
    FARSEE_CUDA_CHECK_ASYNC(cudaEventSynchronize(static_cast<cudaEvent_t>(stop)));
    float ms = 0;
    FARSEE_CUDA_CHECK(
        cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(stop)));
    return ms;
  }
#endif
  if (executor == Executor::Emu) emu::flush(static_cast<HostStamp*>(stop)->stream);
  auto d = static_cast<HostStamp*>(stop)->t - static_cast<HostStamp*>(start)->t;
  return std::chrono::duration<float, std::milli>(d).count();
}

// ---- CUDA graphs ----

void graph_begin_capture(const Context& ctx) {
  if (ctx.executor == Executor::Emu) return emu::graph_begin_capture(ctx.stream);
  FARSEE_REQUIRE(ctx.executor == Executor::Cuda, "rt::graph_begin_capture: executor '"
                                                     << executor_name(ctx.executor)
                                                     << "' has no CUDA graphs");
#if FARSEE_HAVE_CUDA
  FARSEE_REQUIRE(ctx.stream != nullptr,
                 "rt::graph_begin_capture: the legacy default stream cannot be captured");
  FARSEE_CUDA_CHECK(cudaStreamBeginCapture(static_cast<cudaStream_t>(ctx.stream),
                                           cudaStreamCaptureModeThreadLocal));
#else
  no_cuda("rt::graph_begin_capture");
#endif
}

void* graph_end_capture(const Context& ctx) {
  if (ctx.executor == Executor::Emu) return emu::graph_end_capture(ctx.stream);
  FARSEE_REQUIRE(ctx.executor == Executor::Cuda, "rt::graph_end_capture: executor '"
                                                     << executor_name(ctx.executor)
                                                     << "' has no CUDA graphs");
#if FARSEE_HAVE_CUDA
  cudaGraph_t graph = nullptr;
  FARSEE_CUDA_CHECK(cudaStreamEndCapture(static_cast<cudaStream_t>(ctx.stream), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t st = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph keeps what it needs
  FARSEE_CUDA_CHECK(st);
  return exec;
#else
  no_cuda("rt::graph_end_capture");
#endif
}

void graph_launch(const Context& ctx, void* graph_exec) {
  if (ctx.executor == Executor::Emu && graph_exec != nullptr) {
    return emu::graph_launch(ctx.stream, graph_exec);
  }
  FARSEE_REQUIRE(ctx.executor == Executor::Cuda && graph_exec != nullptr,
                 "rt::graph_launch: needs executor 'cuda' or 'emu' and a graph from "
                 "graph_end_capture");
#if FARSEE_HAVE_CUDA
  FARSEE_CUDA_CHECK_ASYNC(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec),
                                          static_cast<cudaStream_t>(ctx.stream)));
#else
  no_cuda("rt::graph_launch");
#endif
}

namespace {
std::atomic<int>& pdl_state() {  // -1: not read from the environment yet; 0 / 1
  static std::atomic<int> state{-1};
  return state;
}
}  // namespace

void set_programmatic_dependent_launch(bool on) {
  pdl_state() = on ? 1 : 0;
}

bool programmatic_dependent_launch() {
  int s = pdl_state();
  if (s < 0) {
    const char* v = std::getenv("FARSEE_PDL");
    s = v != nullptr && std::strcmp(v, "1") == 0 ? 1 : 0;
    int expected = -1;
    pdl_state().compare_exchange_strong(expected, s);
    s = pdl_state();
  }
  return s == 1;
}

void graph_destroy(void* graph_exec) noexcept {
  if (emu::graph_destroy(graph_exec)) return;  // an emu graph; otherwise a CUDA one
#if FARSEE_HAVE_CUDA
  if (graph_exec) (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec));
#else
  (void)graph_exec;
#endif
}

}  // namespace farsee::rt
