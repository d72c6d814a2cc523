// The scheduler behind kernels/emu/emu.h.
//
// A launch runs its blocks one after another on the calling host thread (in x-fastest order, or
// reversed under the greedy-reverse schedule). The threads of a block are fibers on reused 64 KiB
// stacks (Boost.Context fcontext, with a guard page). A fiber runs until it reaches a
// synchronisation point (__syncthreads, a warp collective, cp.async wait is not one) or exits; the
// scheduler then picks the next runnable fiber by the schedule:
//   round-robin     the next runnable thread after the one that just ran,
//   greedy-forward  the lowest-numbered runnable thread (runs each thread as far as it can),
//   greedy-reverse  the highest-numbered runnable thread,
//   random          a random runnable thread (seeded; reproducible).
// When no fiber is runnable the scheduler resolves the block: release a barrier when every live
// thread waits at the same __syncthreads call site, finish when all have exited, otherwise report
// a divergent barrier, an early exit, or a deadlock with the file:line of every waiting thread.
//
// Blocks run sequentially (DESIGN.md section 4; a thread pool was the first plan): it makes every
// schedule, including random, exactly reproducible and keeps the scheduler state single-threaded.
// Tests get their parallelism from ctest -j instead.
#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/emu/emu.h"
#include "kernels/emu/emu_stream.h"

namespace ctx = boost::context::detail;

// AddressSanitizer must be told about every stack switch, and a reused fiber stack must be
// unpoisoned (an abandoned fiber leaves its redzones behind), or ASan builds report false errors.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define FARSEE_ASAN_START_SWITCH(fake, bottom, size) \
  __sanitizer_start_switch_fiber(fake, bottom, size)
#define FARSEE_ASAN_FINISH_SWITCH(fake, bottom, size) \
  __sanitizer_finish_switch_fiber(fake, bottom, size)
#define FARSEE_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define FARSEE_ASAN_START_SWITCH(fake, bottom, size) ((void)(fake), (void)(bottom), (void)(size))
#define FARSEE_ASAN_FINISH_SWITCH(fake, bottom, size) ((void)(fake), (void)(bottom), (void)(size))
#define FARSEE_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace emu {
namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kMaxThreadsPerBlock = 1024;
constexpr size_t kStaticSmemLimit = 48 * 1024;
constexpr size_t kDynamicSmemDefaultLimit = 48 * 1024;
constexpr size_t kSmemOptInLimit = 227 * 1024;  // H100 (sm_90) per-block maximum
constexpr unsigned char kPoison = 0xFF;         // NaN as fp32, fp16 and bf16
constexpr int kSlots = 32;

enum class Status { Runnable, AtBarrier, AtWarp, Exited };

struct PendingCopy {
  void* dst;
  const void* src;
  int src_bytes;
  int total_bytes;
};

struct Fiber {
  ThreadState state;
  int linear = 0;
  Status status = Status::Runnable;
  ctx::fcontext_t context = nullptr;    // where to resume this fiber
  ctx::fcontext_t scheduler = nullptr;  // where to return to
  const char* site_file = nullptr;      // barrier or warp-op call site while waiting
  int site_line = 0;
  // warp exchange
  WarpOp warp_op = WarpOp::Shfl;
  unsigned warp_mask = 0;
  WarpPayload payload;
  // cp.async groups: copies not yet committed, then committed groups oldest first
  std::vector<PendingCopy> open_group;
  std::vector<std::vector<PendingCopy>> committed;
  int held_slot = -1;  // snapshot slot of this lane's last collective (released at the next one)
  void* asan_fake_stack = nullptr;
  const void* stack_bottom = nullptr;
};

struct Stack {
  void* base = nullptr;  // mmap base (guard page first)
  size_t bytes = 0;
  void* top() const { return static_cast<char*>(base) + bytes; }
};

struct Scheduler {
  Schedule schedule = Schedule::RoundRobin;
  uint64_t seed = 1;
  std::mt19937_64 rng{1};
  std::vector<Stack> stacks;
  std::vector<Fiber> fibers;
  // Snapshots of completed warp collectives: per warp kSlots slots of 32 payloads each, with the
  // number of lanes that may still read a slot. A lane holds one slot until its next collective, so
  // kSlots = 32 (one per lane) can never run out; the copy makes disjoint-mask collectives safe.
  std::vector<WarpPayload> snapshots;
  std::vector<int> snapshot_readers;
  std::vector<unsigned char> dynamic_arena;
  alignas(16) unsigned char static_arena[kStaticSmemLimit];
  std::vector<std::pair<const SharedSlot*, size_t>> static_slots;  // this block's arrays: offset
  size_t static_used = 0;
  // Per (device, kernel), as CUDA keeps them: the dynamic shared-memory opt-in, and every kernel
  // launched so far (lazy loading).
  std::map<std::pair<int, const void*>, size_t> max_dynamic_smem;
  std::set<std::pair<int, const void*>> launched;
  BlockState block;
  Fiber* current = nullptr;
  const LaunchInfo* launch = nullptr;
  BodyFn body = nullptr;
  const void* scheduler_stack_bottom = nullptr;  // for ASan's fiber switch annotations
  size_t scheduler_stack_size = 0;
  void* closure = nullptr;
  std::string error;  // set by a fiber; raised by the scheduler
  int last_run = -1;
  bool schedule_from_env_done = false;
};

Scheduler& sched() {
  static Scheduler s;
  return s;
}

std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

std::string site(const char* file, int line) {
  std::ostringstream o;
  o << (file ? file : "?") << ":" << line;
  return o.str();
}

std::string thread_name(const Fiber& f) {
  std::ostringstream o;
  o << "thread (" << f.state.thread_idx.x << "," << f.state.thread_idx.y << ","
    << f.state.thread_idx.z << ")";
  return o.str();
}

std::string block_name(const BlockState& b) {
  std::ostringstream o;
  o << "block (" << b.block_idx.x << "," << b.block_idx.y << "," << b.block_idx.z << ")";
  return o.str();
}

[[noreturn]] void fail(const std::string& what) {
  Scheduler& s = sched();
  std::ostringstream o;
  o << "emu: kernel '" << s.launch->kernel_name << "' launched at "
    << site(s.launch->file, s.launch->line) << ", " << block_name(s.block) << ": " << what;
  throw farsee::Error(o.str());
}

Stack make_stack() {
  long page = sysconf(_SC_PAGESIZE);
  size_t bytes = kStackBytes + page;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw farsee::Error("emu: cannot map a fiber stack");
  mprotect(p, page, PROT_NONE);  // overflow faults instead of corrupting the neighbour
  return Stack{p, bytes};
}

// Fiber side: give control back to the scheduler; returns when scheduled again.
void yield_to_scheduler() {
  Scheduler& s = sched();
  Fiber* f = s.current;
  FARSEE_ASAN_START_SWITCH(&f->asan_fake_stack, s.scheduler_stack_bottom, s.scheduler_stack_size);
  ctx::transfer_t t = ctx::jump_fcontext(f->scheduler, nullptr);
  FARSEE_ASAN_FINISH_SWITCH(f->asan_fake_stack, nullptr, nullptr);
  // The scheduler resumed us: its context is new each time.
  s.current->scheduler = t.fctx;
}

void fiber_entry(ctx::transfer_t t) {
  Scheduler& s = sched();
  Fiber* f = static_cast<Fiber*>(t.data);
  FARSEE_ASAN_FINISH_SWITCH(nullptr, &s.scheduler_stack_bottom, &s.scheduler_stack_size);
  f->scheduler = t.fctx;
  try {
    s.body(s.closure);
  } catch (const std::exception& e) {
    s.error = std::string(thread_name(*f)) + " threw: " + e.what();
  } catch (...) {
    s.error = thread_name(*f) + " threw an unknown exception";
  }
  f->status = Status::Exited;
  FARSEE_ASAN_START_SWITCH(nullptr, s.scheduler_stack_bottom, s.scheduler_stack_size);  // dying
  ctx::jump_fcontext(f->scheduler, nullptr);
  std::abort();  // never resumed
}

int pick_runnable(Scheduler& s) {
  const int n = static_cast<int>(s.fibers.size());
  switch (s.schedule) {
    case Schedule::GreedyForward:
      for (int i = 0; i < n; ++i)
        if (s.fibers[i].status == Status::Runnable) return i;
      return -1;
    case Schedule::GreedyReverse:
      for (int i = n - 1; i >= 0; --i)
        if (s.fibers[i].status == Status::Runnable) return i;
      return -1;
    case Schedule::RoundRobin:
      for (int k = 1; k <= n; ++k) {
        int i = (s.last_run + k) % n;
        if (s.fibers[i].status == Status::Runnable) return i;
      }
      return -1;
    case Schedule::Random: {
      int count = 0;
      for (auto& f : s.fibers) count += f.status == Status::Runnable;
      if (count == 0) return -1;
      int k = static_cast<int>(s.rng() % static_cast<uint64_t>(count));
      for (int i = 0; i < n; ++i)
        if (s.fibers[i].status == Status::Runnable && k-- == 0) return i;
      return -1;
    }
  }
  return -1;
}

// No fiber can run: release a barrier, finish, or report what is wrong. Returns false when done.
bool resolve_block(Scheduler& s) {
  int exited = 0, at_barrier = 0, at_warp = 0;
  const Fiber* first_barrier = nullptr;
  const Fiber* first_exited = nullptr;
  for (auto& f : s.fibers) {
    if (f.status == Status::Exited) {
      ++exited;
      if (!first_exited) first_exited = &f;
    } else if (f.status == Status::AtBarrier) {
      ++at_barrier;
      if (!first_barrier) first_barrier = &f;
    } else if (f.status == Status::AtWarp) {
      ++at_warp;
    }
  }
  const int n = static_cast<int>(s.fibers.size());
  if (exited == n) return false;
  if (at_barrier > 0 && exited > 0) {
    fail(thread_name(*first_exited) + " exited while " + std::to_string(at_barrier) +
         " thread(s) wait at __syncthreads() at " +
         site(first_barrier->site_file, first_barrier->site_line) +
         " (a barrier must be reached by every thread of the block)");
  }
  if (at_barrier == n) {
    for (auto& f : s.fibers) {
      if (f.site_file != first_barrier->site_file || f.site_line != first_barrier->site_line) {
        fail("divergent __syncthreads(): " + thread_name(*first_barrier) + " waits at " +
             site(first_barrier->site_file, first_barrier->site_line) + " but " + thread_name(f) +
             " waits at " + site(f.site_file, f.site_line));
      }
    }
    for (auto& f : s.fibers) f.status = Status::Runnable;
    return true;
  }
  // Deadlock: some threads wait at warp collectives that can never complete.
  std::ostringstream o;
  o << "deadlock: no thread can proceed;";
  int listed = 0;
  for (auto& f : s.fibers) {
    if (f.status == Status::Exited || listed >= 8) continue;
    ++listed;
    o << " " << thread_name(f) << " waits at "
      << (f.status == Status::AtBarrier ? "__syncthreads()" : warp_op_name(f.warp_op));
    if (f.status == Status::AtWarp) {
      char mask[16];
      std::snprintf(mask, sizeof mask, "0x%08x", f.warp_mask);
      o << " (mask " << mask << ")";
    }
    o << " at " << site(f.site_file, f.site_line) << ";";
  }
  if (exited)
    o << " " << exited << " thread(s) have exited (first: " << thread_name(*first_exited) << ")";
  fail(o.str());
}

// Static arrays are poisoned when first allocated in the block (nothing can touch them before).
void poison_shared(Scheduler& s, size_t dynamic_bytes) {
  s.static_slots.clear();
  s.static_used = 0;
  if (dynamic_bytes) std::memset(s.dynamic_arena.data(), kPoison, dynamic_bytes);
}

void run_block(Scheduler& s, uint3 block_idx) {
  s.block.block_idx = block_idx;
  poison_shared(s, s.launch->dynamic_smem);
  const dim3 bd = s.launch->block;
  int i = 0;
  for (unsigned z = 0; z < bd.z; ++z)
    for (unsigned y = 0; y < bd.y; ++y)
      for (unsigned x = 0; x < bd.x; ++x, ++i) {
        Fiber& f = s.fibers[i];
        f.state.thread_idx = uint3{x, y, z};
        f.linear = i;
        f.status = Status::Runnable;
        f.site_file = nullptr;
        f.site_line = 0;
        f.open_group.clear();
        f.committed.clear();
        f.held_slot = -1;
        f.stack_bottom = static_cast<char*>(s.stacks[i].top()) - kStackBytes;
        FARSEE_ASAN_UNPOISON(f.stack_bottom, kStackBytes);
        f.context = ctx::make_fcontext(s.stacks[i].top(), kStackBytes, fiber_entry);
      }
  std::fill(s.snapshot_readers.begin(), s.snapshot_readers.end(), 0);
  s.last_run = -1;
  for (;;) {
    int next = pick_runnable(s);
    if (next < 0) {
      if (!resolve_block(s)) return;
      continue;
    }
    Fiber& f = s.fibers[next];
    s.current = &f;
    s.last_run = next;
    void* scheduler_fake_stack = nullptr;
    FARSEE_ASAN_START_SWITCH(&scheduler_fake_stack, f.stack_bottom, kStackBytes);
    ctx::transfer_t t = ctx::jump_fcontext(f.context, &f);
    FARSEE_ASAN_FINISH_SWITCH(scheduler_fake_stack, nullptr, nullptr);
    f.context = t.fctx;
    s.current = nullptr;
    if (!s.error.empty()) {
      std::string e = s.error;
      s.error.clear();
      fail(e);
    }
  }
}

void validate_launch(Scheduler& s, const LaunchInfo& info) {
  std::ostringstream o;
  const uint64_t threads = uint64_t(info.block.x) * info.block.y * info.block.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock || info.block.z > 64) {
    o << "block (" << info.block.x << "," << info.block.y << "," << info.block.z << ") has "
      << threads << " threads; CUDA allows 1..1024 (z <= 64)";
  } else if (info.grid.x == 0 || info.grid.y == 0 || info.grid.z == 0 || info.grid.y > 65535 ||
             info.grid.z > 65535) {
    o << "grid (" << info.grid.x << "," << info.grid.y << "," << info.grid.z
      << ") is empty or exceeds 65535 in y/z";
  } else {
    size_t limit = kDynamicSmemDefaultLimit;
    auto it = s.max_dynamic_smem.find({current_device(), info.kernel});
    if (it != s.max_dynamic_smem.end()) limit = it->second;
    if (info.dynamic_smem > limit) {
      o << "requests " << info.dynamic_smem << " bytes of dynamic shared memory; the limit is "
        << limit << " on device " << current_device()
        << " (opt in with FARSEE_SET_MAX_DYNAMIC_SMEM on every device, at most " << kSmemOptInLimit
        << ")";
    }
  }
  if (!o.str().empty()) {
    throw farsee::Error("emu: kernel '" + std::string(info.kernel_name) + "' launched at " +
                        site(info.file, info.line) + ": " + o.str());
  }
}

void init_schedule_from_env(Scheduler& s) {
  if (s.schedule_from_env_done) return;
  s.schedule_from_env_done = true;
  const char* seed = std::getenv("FARSEE_EMU_SEED");
  if (seed) s.seed = std::strtoull(seed, nullptr, 10);
  s.rng.seed(s.seed);
  const char* name = std::getenv("FARSEE_EMU_SCHEDULE");
  if (!name) return;
  std::string v = name;
  if (v == "round-robin")
    s.schedule = Schedule::RoundRobin;
  else if (v == "greedy-forward")
    s.schedule = Schedule::GreedyForward;
  else if (v == "greedy-reverse")
    s.schedule = Schedule::GreedyReverse;
  else if (v == "random")
    s.schedule = Schedule::Random;
  else
    throw farsee::Error("FARSEE_EMU_SCHEDULE='" + v +
                        "': expected round-robin, greedy-forward, greedy-reverse or random");
}

Fiber& me() {
  Fiber* f = sched().current;
  if (!f) throw farsee::Error("emu: a device intrinsic was called outside a kernel launch");
  return *f;
}

}  // namespace

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::RoundRobin:
      return "round-robin";
    case Schedule::GreedyForward:
      return "greedy-forward";
    case Schedule::GreedyReverse:
      return "greedy-reverse";
    case Schedule::Random:
      return "random";
  }
  return "?";
}

const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Shfl:
      return "__shfl_sync";
    case WarpOp::ShflUp:
      return "__shfl_up_sync";
    case WarpOp::ShflDown:
      return "__shfl_down_sync";
    case WarpOp::ShflXor:
      return "__shfl_xor_sync";
    case WarpOp::Ballot:
      return "__ballot_sync";
    case WarpOp::Any:
      return "__any_sync";
    case WarpOp::All:
      return "__all_sync";
    case WarpOp::SyncWarp:
      return "__syncwarp";
    case WarpOp::Gather:
      return "warp fragment exchange (ldmatrix/mma)";
  }
  return "?";
}

void set_schedule(Schedule s, uint64_t seed) {
  Scheduler& sc = sched();
  sc.schedule_from_env_done = true;
  sc.schedule = s;
  sc.seed = seed;
  sc.rng.seed(seed);
}

Schedule current_schedule() {
  init_schedule_from_env(sched());
  return sched().schedule;
}

ThreadState* current_thread() {
  return &me().state;
}
BlockState* current_block() {
  me();
  return &sched().block;
}
unsigned char* dynamic_smem_base() {
  me();
  return sched().block.dynamic_smem;
}

void* static_shared(const SharedSlot* key, size_t bytes, const char* name, const char* file,
                    int line) {
  me();
  Scheduler& s = sched();
  for (auto& slot : s.static_slots)
    if (slot.first == key) return s.static_arena + slot.second;
  const size_t offset = (s.static_used + 15) / 16 * 16;
  if (offset + bytes > kStaticSmemLimit) {
    fail("FARSEE_SHARED array '" + std::string(name) + "' at " + site(file, line) + " (" +
         std::to_string(bytes) + " bytes) exceeds the 48 KiB static shared-memory limit (" +
         std::to_string(offset) + " bytes already declared in this kernel)");
  }
  if (offset + bytes + s.launch->dynamic_smem > kSmemOptInLimit) {
    fail("static + dynamic shared memory exceeds " + std::to_string(kSmemOptInLimit) + " bytes");
  }
  s.static_slots.emplace_back(key, offset);
  s.static_used = offset + bytes;
  std::memset(s.static_arena + offset, kPoison, bytes);
  return s.static_arena + offset;
}

void set_max_dynamic_smem(const void* kernel, size_t bytes) {
  if (bytes > kSmemOptInLimit) {
    throw farsee::Error("emu: FARSEE_SET_MAX_DYNAMIC_SMEM(" + std::to_string(bytes) +
                        ") exceeds the per-block maximum of " + std::to_string(kSmemOptInLimit));
  }
  forbid_in_capture("FARSEE_SET_MAX_DYNAMIC_SMEM (cudaFuncSetAttribute)");
  std::lock_guard<std::mutex> lock(launch_mutex());
  sched().max_dynamic_smem[{current_device(), kernel}] = bytes;
}

void forget_launched_kernels() {
  std::lock_guard<std::mutex> lock(launch_mutex());
  sched().launched.clear();
}

bool prepare_launch(const LaunchInfo& info, void* stream) {
  {
    std::lock_guard<std::mutex> lock(launch_mutex());
    Scheduler& s = sched();
    init_schedule_from_env(s);
    validate_launch(s, info);
    const std::pair<int, const void*> key{current_device(), info.kernel};
    if (s.launched.insert(key).second && capturing(stream)) {
      s.launched.erase(key);
      forbid_in_capture(("the first launch of kernel '" + std::string(info.kernel_name) + "' at " +
                         site(info.file, info.line) +
                         " (lazy loading; launch it once before capturing)")
                            .c_str());
    }
  }
  return deferred(stream);
}

void defer_launch(const LaunchInfo& info, BodyFn body, std::shared_ptr<void> closure, void* stream,
                  int args, int scalar_args) {
  StreamOp op{OpKind::Launch,
              info.kernel_name,
              site(info.file, info.line),
              args,
              scalar_args,
              [info, body, closure] { run_grid(info, body, closure.get()); }};
  submit(stream, std::move(op));
}

void run_grid(const LaunchInfo& info, BodyFn body, void* closure) {
  std::lock_guard<std::mutex> lock(launch_mutex());
  Scheduler& s = sched();
  const size_t threads = size_t(info.block.x) * info.block.y * info.block.z;
  while (s.stacks.size() < threads) s.stacks.push_back(make_stack());
  s.fibers.assign(threads, Fiber{});
  const size_t warps = (threads + 31) / 32;
  s.snapshots.resize(warps * kSlots * 32);
  s.snapshot_readers.assign(warps * kSlots, 0);
  if (s.dynamic_arena.size() < info.dynamic_smem) s.dynamic_arena.resize(info.dynamic_smem);
  s.launch = &info;
  s.body = body;
  s.closure = closure;
  s.error.clear();
  s.block.block_dim = info.block;
  s.block.grid_dim = info.grid;
  s.block.dynamic_smem = info.dynamic_smem ? s.dynamic_arena.data() : nullptr;
  const bool reverse = s.schedule == Schedule::GreedyReverse;
  const uint64_t blocks = uint64_t(info.grid.x) * info.grid.y * info.grid.z;
  for (uint64_t k = 0; k < blocks; ++k) {
    uint64_t b = reverse ? blocks - 1 - k : k;
    uint3 idx{unsigned(b % info.grid.x), unsigned(b / info.grid.x % info.grid.y),
              unsigned(b / (uint64_t(info.grid.x) * info.grid.y))};
    run_block(s, idx);
  }
  s.launch = nullptr;
}

void syncthreads(const char* file, int line) {
  Fiber& f = me();
  f.status = Status::AtBarrier;
  f.site_file = file;
  f.site_line = line;
  yield_to_scheduler();
}

int lane_id() {
  return me().linear & 31;
}

const WarpPayload* warp_exchange(WarpOp op, unsigned mask, const void* payload, size_t bytes,
                                 const char* file, int line) {
  Scheduler& s = sched();
  Fiber& f = me();
  const int lane = f.linear & 31;
  const int warp_base = f.linear - lane;
  const int lanes_in_warp = std::min<int>(32, static_cast<int>(s.fibers.size()) - warp_base);
  auto where = [&] {
    return std::string(warp_op_name(op)) + " at " + site(file, line) + " by " + thread_name(f);
  };
  if (!((mask >> lane) & 1u)) fail(where() + ": the calling lane is not in the mask");
  if (lanes_in_warp < 32 && (mask >> lanes_in_warp) != 0)
    fail(where() + ": the mask names lanes that do not exist in this partial warp");
  const int warp = f.linear / 32;
  if (f.held_slot >= 0) {
    --s.snapshot_readers[warp * kSlots + f.held_slot];
    f.held_slot = -1;
  }
  std::memcpy(f.payload.bytes, payload, bytes);
  f.warp_op = op;
  f.warp_mask = mask;
  f.site_file = file;
  f.site_line = line;
  f.status = Status::AtWarp;
  // Is every lane of the mask here, at the same op with the same mask?
  int arrived = 0;
  for (int l = 0; l < 32; ++l) {
    if (!((mask >> l) & 1u)) continue;
    Fiber& o = s.fibers[warp_base + l];
    if (o.status != Status::AtWarp) continue;
    if (o.warp_op != op || o.warp_mask != mask) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " (mask 0x%08x) but lane %d waits at ", mask, l);
      char buf2[32];
      std::snprintf(buf2, sizeof buf2, " (mask 0x%08x)", o.warp_mask);
      fail("divergent warp collective: " + where() + buf + warp_op_name(o.warp_op) + " at " +
           site(o.site_file, o.site_line) + buf2);
    }
    ++arrived;
  }
  if (arrived == __builtin_popcount(mask)) {
    int slot = 0;
    while (s.snapshot_readers[warp * kSlots + slot] > 0) ++slot;  // < kSlots: see Scheduler
    s.snapshot_readers[warp * kSlots + slot] = arrived;
    WarpPayload* g = &s.snapshots[(size_t(warp) * kSlots + slot) * 32];
    for (int l = 0; l < 32; ++l) {
      if (!((mask >> l) & 1u)) continue;
      Fiber& o = s.fibers[warp_base + l];
      g[l] = o.payload;
      o.held_slot = slot;
      o.status = Status::Runnable;
    }
  }
  // Every lane yields, the completing one too, so the schedule (not arrival order) decides who
  // runs next.
  yield_to_scheduler();
  return &s.snapshots[(size_t(warp) * kSlots + f.held_slot) * 32];
}

unsigned vote(WarpOp op, unsigned mask, int predicate, const char* file, int line) {
  int p = predicate != 0;
  const WarpPayload* all = warp_exchange(op, mask, &p, sizeof p, file, line);
  unsigned ballot = 0;
  for (int l = 0; l < 32; ++l) {
    if (!((mask >> l) & 1u)) continue;
    int v;
    std::memcpy(&v, all[l].bytes, sizeof v);
    if (v) ballot |= 1u << l;
  }
  switch (op) {
    case WarpOp::Any:
      return ballot != 0;
    case WarpOp::All:
      return ballot == mask;
    case WarpOp::SyncWarp:
      return 0;
    default:
      return ballot;
  }
}

void cp_async_enqueue(void* dst, const void* src, int src_bytes, int total_bytes) {
  me().open_group.push_back(PendingCopy{dst, src, src_bytes, total_bytes});
}

void cp_async_commit() {
  Fiber& f = me();
  f.committed.push_back(std::move(f.open_group));
  f.open_group.clear();
}

void cp_async_wait(int pending_groups_allowed) {
  Fiber& f = me();
  while (static_cast<int>(f.committed.size()) > pending_groups_allowed) {
    for (const PendingCopy& c : f.committed.front()) {
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
      if (c.total_bytes > c.src_bytes) {
        std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0,
                    static_cast<size_t>(c.total_bytes - c.src_bytes));
      }
    }
    f.committed.erase(f.committed.begin());
  }
}

}  // namespace emu
