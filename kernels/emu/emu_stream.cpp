// Streams, queues and graph capture of the emu executor: see emu_stream.h.
#include "kernels/emu/emu_stream.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/core/check.h"

namespace emu {
namespace {

struct Stream {
  std::deque<StreamOp> queue;
  bool capturing = false;
  std::vector<StreamOp> recorded;
  std::string invalid;  // the first forbidden call while capturing
};

struct Graph {
  std::vector<StreamOp> ops;
};

// An event's records: `recorded` counts the records issued, `completed` the latest one its stream
// has run; `stream` is where the latest record was issued.
struct EventState {
  void* stream = nullptr;
  uint64_t recorded = 0;
  uint64_t completed = 0;
};

struct State {
  std::mutex m;
  std::map<void*, Stream> streams;  // key nullptr: the default stream
  std::map<void*, std::unique_ptr<Graph>> graphs;
  std::map<void*, std::shared_ptr<EventState>> events;  // queued ops hold theirs past destroy
  uint64_t next_seq = 0;
  std::string pending_error;  // from a flush that could not throw
  GraphCounters counters;
  int async = -1;  // -1: not yet read from the environment
};

State& state() {
  static State s;
  return s;
}

bool run_next(void* stream, bool at_launch);  // below, with flush

// The stream this thread is capturing (CUDA's thread-local capture mode), if any.
thread_local void* t_capture_stream = nullptr;
thread_local bool t_capturing = false;

bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::string(v) != "0";
}

bool async_locked(State& s) {
  if (s.async < 0) s.async = env_flag("FARSEE_EMU_ASYNC", false) ? 1 : 0;
  return s.async == 1;
}

std::string describe(const StreamOp& op) {
  if (op.kind == OpKind::Launch) return "emu: kernel '" + op.name + "' launched at " + op.site;
  return "emu: " + op.name + " issued at " + op.site;
}

void throw_pending_locked(State& s) {
  if (s.pending_error.empty()) return;
  std::string e = std::move(s.pending_error);
  s.pending_error.clear();
  throw farsee::Error(e);
}

// Reads host memory without faulting on a freed (unmapped) buffer: false when it is gone. Under
// ASan a plain copy, so that ASan itself reports the use after free with both stacks.
bool read_host(void* dst, const void* src, size_t n) {
#if defined(__SANITIZE_ADDRESS__)
  std::memcpy(dst, src, n);
  return true;
#else
  iovec local{dst, n};
  iovec remote{const_cast<void*>(src), n};
  const ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (r == static_cast<ssize_t>(n)) return true;
  if (r < 0 && errno != EFAULT) {  // the system call is not allowed here: copy plainly
    std::memcpy(dst, src, n);
    return true;
  }
  return false;
#endif
}

}  // namespace

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::Launch:
      return "launch";
    case OpKind::CopyToDevice:
      return "copy_to_device";
    case OpKind::CopyDevice:
      return "copy_device";
    case OpKind::Memset:
      return "memset";
    case OpKind::Timestamp:
      return "timestamp";
    case OpKind::EventRecord:
      return "event_record";
    case OpKind::EventWait:
      return "event_wait";
  }
  return "?";
}

bool async_enabled() {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  return async_locked(s);
}

void set_async(bool on) {
  flush_all();
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  s.async = on ? 1 : 0;
}

namespace {
std::atomic<int> g_poison{-1};
}  // namespace

bool poison_enabled() {
  int v = g_poison.load();
  if (v < 0) {
    v = env_flag("FARSEE_EMU_POISON", true) ? 1 : 0;
    g_poison.store(v);
  }
  return v == 1;
}

void set_poison(bool on) {
  g_poison.store(on ? 1 : 0);
}

namespace {
std::atomic<int> g_device_count{0};  // 0: not yet read from the environment
thread_local int t_device = 0;       // cudaSetDevice is per host thread
}  // namespace

int device_count() {
  int n = g_device_count.load();
  if (n > 0) return n;
  const char* v = std::getenv("FARSEE_EMU_DEVICES");
  n = v && *v ? std::atoi(v) : 1;
  FARSEE_REQUIRE(n >= 1 && n <= 64, "FARSEE_EMU_DEVICES='" << v << "': expected 1..64");
  g_device_count.store(n);
  return n;
}

void set_device_count(int n) {
  FARSEE_REQUIRE(n >= 1 && n <= 64, "emu::set_device_count(" << n << "): expected 1..64");
  g_device_count.store(n);
  if (t_device >= n) t_device = 0;
}

void set_device(int device) {
  const int n = device_count();
  FARSEE_REQUIRE(device >= 0 && device < n,
                 "emu: cudaSetDevice(" << device << "): invalid device ordinal; the emulator has "
                                       << n
                                       << " device(s) (FARSEE_EMU_DEVICES, emu::set_device_count)");
  t_device = device;
}

int current_device() {
  return t_device;
}

namespace {
std::atomic<int> g_sync_launches{-1};
}  // namespace

bool sync_launches_enabled() {
  int v = g_sync_launches.load();
  if (v < 0) {
    v = env_flag("FARSEE_SYNC_LAUNCHES", false) ? 1 : 0;
    g_sync_launches.store(v);
  }
  return v == 1;
}

void set_sync_launches(bool on) {
  g_sync_launches.store(on ? 1 : 0);
}

bool deferred(void* stream) {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  return async_locked(s) || s.streams[stream].capturing;
}

bool capturing(void* stream) {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  auto it = s.streams.find(stream);
  return it != s.streams.end() && it->second.capturing;
}

void submit(void* stream, StreamOp op) {
  State& s = state();
  std::unique_lock<std::mutex> l(s.m);
  Stream& st = s.streams[stream];
  op.seq = ++s.next_seq;
  if (st.capturing) {
    st.recorded.push_back(std::move(op));
    return;
  }
  if (!async_locked(s)) {
    l.unlock();
    op.run();
    return;
  }
  const bool launch = op.kind == OpKind::Launch;
  st.queue.push_back(std::move(op));
  l.unlock();
  if (launch && sync_launches_enabled()) {
    while (run_next(stream, true)) {
    }
  }
}

namespace {
// Runs the next queued op of `stream`; false when its queue is empty. `at_launch`: run by
// FARSEE_SYNC_LAUNCHES right after a launch (the error then says so).
bool run_next(void* stream, bool at_launch) {
  State& s = state();
  StreamOp op;
  {
    std::lock_guard<std::mutex> l(s.m);
    throw_pending_locked(s);
    Stream& st = s.streams[stream];
    if (st.queue.empty()) return false;
    op = std::move(st.queue.front());
    st.queue.pop_front();
  }
  try {
    op.run();
  } catch (const std::exception& e) {
    size_t dropped = 0;
    {
      std::lock_guard<std::mutex> l(s.m);
      Stream& st = s.streams[stream];
      dropped = st.queue.size();
      st.queue.clear();  // as after a sticky CUDA error, the stream's later work never runs
    }
    const bool named_at_launch = at_launch && op.kind == OpKind::Launch;
    std::string what = describe(op) +
                       (named_at_launch ? " failed while running (FARSEE_SYNC_LAUNCHES): "
                                        : " failed (reported at a later synchronisation): ") +
                       e.what();
    if (dropped) what += " (" + std::to_string(dropped) + " later operation(s) discarded)";
    throw farsee::Error(what);
  }
  return true;
}
}  // namespace

void flush(void* stream) {
  while (run_next(stream, false)) {
  }
}

// Newest first: see emu_stream.h (missing cross-stream waits read poison).
void flush_all() {
  std::vector<std::pair<uint64_t, void*>> order;  // (last op's seq, stream)
  {
    State& s = state();
    std::lock_guard<std::mutex> l(s.m);
    throw_pending_locked(s);
    for (auto& kv : s.streams)
      if (!kv.second.queue.empty()) order.emplace_back(kv.second.queue.back().seq, kv.first);
  }
  std::sort(order.rbegin(), order.rend());
  for (const auto& o : order) flush(o.second);
}

void flush_all_noexcept() noexcept {
  try {
    flush_all();
  } catch (const std::exception& e) {
    State& s = state();
    std::lock_guard<std::mutex> l(s.m);
    if (s.pending_error.empty()) s.pending_error = e.what();
  }
}

void invalidate_capture(const char* call) noexcept {
  if (!t_capturing) return;
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  Stream& st = s.streams[t_capture_stream];
  if (st.invalid.empty()) st.invalid = call;
}

void forbid_in_capture(const char* call) {
  if (!t_capturing) return;
  invalidate_capture(call);
  throw farsee::Error(std::string("emu: ") + call +
                      " inside a graph capture on this thread (CUDA forbids it while capturing in "
                      "thread-local mode; do it before rt::graph_begin_capture)");
}

// ---- events ----

namespace {
std::shared_ptr<EventState> find_event(void* event, const char* call) {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  auto it = s.events.find(event);
  FARSEE_REQUIRE(it != s.events.end(), call << ": not an event from rt::event_create (emu)");
  return it->second;
}

void forbid_event_in_capture(void* stream, const char* call) {
  if (!capturing(stream)) return;
  throw farsee::Error(std::string("emu: ") + call +
                      " on a capturing stream is not emulated (cross-stream capture); record and "
                      "wait outside the capture");
}
}  // namespace

void* event_create() {
  auto e = std::make_shared<EventState>();
  void* handle = e.get();
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  s.events[handle] = std::move(e);
  return handle;
}

void event_destroy(void* event) noexcept {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  s.events.erase(event);
}

void event_record(void* stream, void* event, const std::string& site) {
  forbid_event_in_capture(stream, "rt::event_record");
  std::shared_ptr<EventState> e = find_event(event, "rt::event_record");
  uint64_t target = 0;
  {
    State& s = state();
    std::lock_guard<std::mutex> l(s.m);
    target = ++e->recorded;
    e->stream = stream;
  }
  StreamOp op{OpKind::EventRecord, "rt::event_record", site, 0, 0, [e, target] {
                State& s = state();
                std::lock_guard<std::mutex> l(s.m);
                e->completed = std::max(e->completed, target);
              }};
  submit(stream, std::move(op));
}

// The wait covers the records issued so far (CUDA's semantics); it runs the recording stream's
// queue up to the record when its own stream reaches it.
void stream_wait_event(void* stream, void* event, const std::string& site) {
  forbid_event_in_capture(stream, "rt::stream_wait_event");
  std::shared_ptr<EventState> e = find_event(event, "rt::stream_wait_event");
  uint64_t target = 0;
  void* source = nullptr;
  {
    State& s = state();
    std::lock_guard<std::mutex> l(s.m);
    target = e->recorded;
    source = e->stream;
  }
  if (target == 0) return;  // never recorded: complete
  StreamOp op{OpKind::EventWait, "rt::stream_wait_event", site, 0, 0, [e, target, source] {
                for (;;) {
                  {
                    State& s = state();
                    std::lock_guard<std::mutex> l(s.m);
                    if (e->completed >= target) return;
                  }
                  if (!run_next(source, false))
                    throw farsee::Error("the event's record never ran (its stream was destroyed)");
                }
              }};
  submit(stream, std::move(op));
}

void* stream_create() {
  void* handle = new char;  // a unique address; the stream's state lives in the map
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  s.streams[handle];
  return handle;
}

void stream_destroy(void* stream) noexcept {
  if (!stream) return;
  try {
    flush(stream);
  } catch (const std::exception& e) {
    State& s = state();
    std::lock_guard<std::mutex> l(s.m);
    if (s.pending_error.empty()) s.pending_error = e.what();
  }
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  if (t_capturing && t_capture_stream == stream) t_capturing = false;
  s.streams.erase(stream);
  delete static_cast<char*>(stream);
}

void graph_begin_capture(void* stream) {
  FARSEE_REQUIRE(stream != nullptr,
                 "rt::graph_begin_capture: the default stream cannot be captured (create one "
                 "with rt::stream_create)");
  FARSEE_REQUIRE(!t_capturing, "rt::graph_begin_capture: this thread is already capturing");
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  Stream& st = s.streams[stream];
  st.capturing = true;
  st.recorded.clear();
  st.invalid.clear();
  t_capturing = true;
  t_capture_stream = stream;
}

void* graph_end_capture(void* stream) {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  Stream& st = s.streams[stream];
  FARSEE_REQUIRE(st.capturing && t_capturing && t_capture_stream == stream,
                 "rt::graph_end_capture: this thread is not capturing this stream");
  st.capturing = false;
  t_capturing = false;
  auto g = std::make_unique<Graph>();
  g->ops = std::move(st.recorded);
  st.recorded.clear();
  FARSEE_REQUIRE(st.invalid.empty(), "rt::graph_end_capture: the capture was invalidated by "
                                         << st.invalid << " inside it");
  void* handle = g.get();
  s.graphs[handle] = std::move(g);
  ++s.counters.instantiated;
  ++s.counters.alive;
  return handle;
}

void graph_launch(void* stream, void* graph) {
  std::vector<StreamOp> ops;
  {
    State& s = state();
    std::lock_guard<std::mutex> l(s.m);
    auto it = s.graphs.find(graph);
    FARSEE_REQUIRE(it != s.graphs.end(),
                   "rt::graph_launch: not a graph from rt::graph_end_capture (emu)");
    ops = it->second->ops;  // the ops share their kernels' argument copies
    ++s.counters.launched;
  }
  for (StreamOp& op : ops) submit(stream, std::move(op));
}

bool graph_destroy(void* graph) noexcept {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  if (s.graphs.erase(graph) == 0) return false;
  --s.counters.alive;
  return true;
}

std::vector<RecordedOp> graph_ops(void* graph) {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  auto it = s.graphs.find(graph);
  FARSEE_REQUIRE(it != s.graphs.end(), "emu::graph_ops: not an emu graph");
  std::vector<RecordedOp> out;
  for (const StreamOp& op : it->second->ops)
    out.push_back(RecordedOp{op.kind, op.name, op.site, op.args, op.scalar_args});
  return out;
}

GraphCounters graph_counters() {
  State& s = state();
  std::lock_guard<std::mutex> l(s.m);
  return s.counters;
}

// ---- the runtime's copies and memsets ----

void submit_memset(void* stream, void* p, int value, size_t bytes, const std::string& site) {
  StreamOp op{OpKind::Memset, "rt::memset of " + std::to_string(bytes) + " bytes", site, 0, 0, [=] {
                std::memset(p, value, bytes);
              }};
  submit(stream, std::move(op));
}

void submit_copy_device(void* stream, void* dst, const void* src, size_t bytes,
                        const std::string& site) {
  StreamOp op{OpKind::CopyDevice,
              "rt::copy_device of " + std::to_string(bytes) + " bytes",
              site,
              0,
              0,
              [=] { std::memmove(dst, src, bytes); }};
  submit(stream, std::move(op));
}

// The host memory is read when the copy runs, as a GPU reads pinned memory. A queued copy also
// keeps the bytes seen at the call and checks them then: a host buffer freed or changed before the
// copy ran (legal only for pageable memory) is an error naming the copy.
void submit_copy_to_device(void* stream, void* dst, const void* src, size_t bytes,
                           const std::string& site) {
  StreamOp op{OpKind::CopyToDevice,
              "rt::copy_to_device of " + std::to_string(bytes) + " bytes",
              site,
              0,
              0,
              nullptr};
  const bool check = deferred(stream) && !capturing(stream);
  if (!check) {
    op.run = [=] { std::memcpy(dst, src, bytes); };
  } else {
    auto at_call = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + bytes);
    op.run = [=] {
      std::vector<unsigned char> now(bytes);
      if (!read_host(now.data(), src, bytes) || now != *at_call) {
        throw farsee::Error(
            "the host buffer was freed or changed between the call and the copy (keep it alive "
            "and unchanged until the stream is synchronised)");
      }
      std::memcpy(dst, now.data(), bytes);
    };
  }
  submit(stream, std::move(op));
}

}  // namespace emu
