// Emulator performance counters: recording and the warp-level analysis
// (kernels/emu/emu_counters.h).
//
// Every access of a counted launch is appended to its thread's list for its class, keyed by
// (barrier epoch, collective epoch, sequence number). At the end of a block each warp's 32 lists
// of a class are merged in key order: the accesses with equal keys form one warp-wide access,
// analysed for sectors (global) or bank wavefronts (shared). Plain C++ (part of farsee_core, so
// kernels/core/runtime.cpp can place markers); the fiber runtime calls the hooks.
#include "kernels/emu/emu_counters.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>

namespace emu {

namespace detail {
static bool counting_from_env() {
  const char* v = std::getenv("FARSEE_EMU_COUNTERS");
  return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
}
std::atomic<bool> g_counting{counting_from_env()};
}  // namespace detail

namespace {

enum Class { GlobalLoad, GlobalStore, SharedLoad, SharedStore, kClasses };

// Position of an access in its thread's program, comparable across the lanes of a warp.
struct Key {
  uint64_t epoch;  // barrier epoch << 32 | collective epoch since that barrier
  uint64_t seq;
  bool operator<(const Key& o) const { return epoch != o.epoch ? epoch < o.epoch : seq < o.seq; }
  bool operator==(const Key& o) const { return epoch == o.epoch && seq == o.seq; }
};
constexpr Key kNoKey{UINT64_MAX, UINT64_MAX};

struct Access {
  Key key;
  uintptr_t addr;
  int bytes;
};

struct ThreadLog {
  uint64_t barrier_epoch = 0, collective_epoch = 0;
  uint64_t seq[kClasses] = {};
  std::vector<Access> accesses[kClasses];
  int64_t barriers = 0;
};

struct LaunchState {
  LaunchCounters counters;
  std::vector<ThreadLog> threads;
  uintptr_t smem_begin[2] = {}, smem_end[2] = {};
};

thread_local LaunchState* t_launch = nullptr;

std::mutex& records_mutex() {
  static std::mutex m;
  return m;
}
std::vector<LaunchCounters>& records() {
  static std::vector<LaunchCounters> r;
  return r;
}
std::atomic<int64_t> g_markers{0};

int width_bin(int bytes) {
  int bin = 0;
  while ((1 << bin) < bytes && bin < kWidthBins - 1) ++bin;
  return bin;
}

// One warp-wide global access: distinct sectors and distinct bytes of the lanes' ranges.
void analyse_global(const Access* const* lanes, int n, GlobalAccessStats& st) {
  uintptr_t lo[32], hi[32];
  uint64_t sectors[32 * 2 + 32];
  int ns = 0;
  for (int i = 0; i < n; ++i) {
    lo[i] = lanes[i]->addr;
    hi[i] = lanes[i]->addr + lanes[i]->bytes;
    st.bytes_by_width[width_bin(lanes[i]->bytes)] += lanes[i]->bytes;
    for (uintptr_t s = lo[i] / 32; s <= (hi[i] - 1) / 32 && ns < int(sizeof sectors / 8); ++s)
      sectors[ns++] = s;
  }
  std::sort(sectors, sectors + ns);
  st.sectors += std::unique(sectors, sectors + ns) - sectors;
  // Distinct bytes: the union of [lo, hi) ranges.
  int order[32];
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order, order + n, [&](int a, int b) { return lo[a] < lo[b]; });
  uintptr_t end = 0;
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    const uintptr_t from = std::max(lo[i], end);
    if (hi[i] > from) st.unique_bytes += int64_t(hi[i] - from);
    end = std::max(end, hi[i]);
  }
  ++st.requests;
}

// Wavefronts of one phase: the most distinct 4-byte words any bank holds.
int phase_ways(const Access* const* lanes, int n) {
  uint64_t words[32 * 4];
  int nw = 0;
  for (int i = 0; i < n; ++i) {
    const uintptr_t first = lanes[i]->addr / 4, last = (lanes[i]->addr + lanes[i]->bytes - 1) / 4;
    for (uintptr_t w = first; w <= last && nw < 32 * 4; ++w) words[nw++] = w;
  }
  std::sort(words, words + nw);
  nw = int(std::unique(words, words + nw) - words);
  int per_bank[32] = {};
  int ways = 0;
  for (int i = 0; i < nw; ++i) ways = std::max(ways, ++per_bank[words[i] % 32]);
  return ways;
}

// One warp-wide shared access, served in phases of 32 / 16 / 8 lanes for widths <= 4 / 8 / 16.
void analyse_shared(const Access* const* lanes, const int* lane_ids, int n, LaunchCounters& c) {
  int widest = 1;
  for (int i = 0; i < n; ++i) {
    widest = std::max(widest, lanes[i]->bytes);
    c.shared_bytes += lanes[i]->bytes;
  }
  const int lanes_per_phase = widest <= 4 ? 32 : widest <= 8 ? 16 : 8;
  for (int phase = 0; phase < 32 / lanes_per_phase; ++phase) {
    const Access* in_phase[32];
    int m = 0;
    for (int i = 0; i < n; ++i)
      if (lane_ids[i] / lanes_per_phase == phase) in_phase[m++] = lanes[i];
    if (m == 0) continue;
    const int ways = phase_ways(in_phase, m);
    ++c.shared_phases;
    c.shared_wavefronts += ways;
    c.shared_max_ways = std::max<int64_t>(c.shared_max_ways, ways);
  }
  ++c.shared_requests;
}

// Merges the lanes' lists of one class of one warp in key order, one warp-wide access per key.
void analyse_warp(LaunchState& st, size_t warp_base, size_t lanes, Class cls) {
  size_t head[32] = {};
  for (;;) {
    Key key = kNoKey;
    for (size_t l = 0; l < lanes; ++l) {
      const auto& list = st.threads[warp_base + l].accesses[cls];
      if (head[l] < list.size() && list[head[l]].key < key) key = list[head[l]].key;
    }
    if (key == kNoKey) return;
    const Access* group[32];
    int lane_ids[32];
    int n = 0;
    for (size_t l = 0; l < lanes; ++l) {
      const auto& list = st.threads[warp_base + l].accesses[cls];
      if (head[l] < list.size() && list[head[l]].key == key) {
        group[n] = &list[head[l]++];
        lane_ids[n++] = int(l);
      }
    }
    if (cls == GlobalLoad) analyse_global(group, n, st.counters.global_load);
    if (cls == GlobalStore) analyse_global(group, n, st.counters.global_store);
    if (cls == SharedLoad || cls == SharedStore) analyse_shared(group, lane_ids, n, st.counters);
  }
}

void flush_block(LaunchState& st) {
  const size_t threads = st.threads.size();
  for (size_t base = 0; base < threads; base += 32) {
    const size_t lanes = std::min<size_t>(32, threads - base);
    for (int cls = 0; cls < kClasses; ++cls) analyse_warp(st, base, lanes, Class(cls));
  }
  for (ThreadLog& t : st.threads) {
    st.counters.barriers += t.barriers;  // divided by the block size at the launch end
    t = ThreadLog{};
  }
}

}  // namespace

int64_t GlobalAccessStats::bytes() const {
  int64_t b = 0;
  for (int64_t v : bytes_by_width) b += v;
  return b;
}

double GlobalAccessStats::efficiency() const {
  return sectors == 0 ? 1.0 : double(unique_bytes) / (32.0 * double(sectors));
}

double LaunchCounters::bank_conflict_ways() const {
  return shared_phases == 0 ? 1.0 : double(shared_wavefronts) / double(shared_phases);
}

static void add_global(GlobalAccessStats& a, const GlobalAccessStats& b) {
  a.requests += b.requests;
  a.sectors += b.sectors;
  a.unique_bytes += b.unique_bytes;
  for (int i = 0; i < kWidthBins; ++i) a.bytes_by_width[i] += b.bytes_by_width[i];
}

void LaunchCounters::add(const LaunchCounters& o) {
  launches += o.launches;
  add_global(global_load, o.global_load);
  add_global(global_store, o.global_store);
  shared_requests += o.shared_requests;
  shared_phases += o.shared_phases;
  shared_wavefronts += o.shared_wavefronts;
  shared_max_ways = std::max(shared_max_ways, o.shared_max_ways);
  shared_bytes += o.shared_bytes;
  barriers += o.barriers;
  mma += o.mma;
}

void set_counting(bool on) {
  detail::g_counting.store(on);
}

std::vector<LaunchCounters> take_launch_counters() {
  std::lock_guard<std::mutex> lock(records_mutex());
  std::vector<LaunchCounters> out;
  out.swap(records());
  return out;
}

void reset_counters() {
  std::lock_guard<std::mutex> lock(records_mutex());
  records().clear();
  g_markers = 0;
}

void counters_marker() {
  if (counters_on()) ++g_markers;
}

CountersLaunchScope::CountersLaunchScope(const char* kernel, const char* file, int line,
                                         size_t threads_per_block, const void* static_smem,
                                         size_t static_bytes, const void* dynamic_smem,
                                         size_t dynamic_bytes)
    : active_(counters_on()) {
  if (!active_) return;
  auto* st = new LaunchState;
  std::string where = file ? file : "?";
  where = where.substr(where.find_last_of('/') + 1);  // npos + 1 = 0: no folder
  st->counters.kernel =
      std::string(kernel ? kernel : "?") + "@" + where + ":" + std::to_string(line);
  st->counters.launches = 1;
  st->threads.resize(threads_per_block);
  const void* base[2] = {static_smem, dynamic_smem};
  const size_t bytes[2] = {static_bytes, dynamic_bytes};
  for (int i = 0; i < 2; ++i) {
    st->smem_begin[i] = reinterpret_cast<uintptr_t>(base[i]);
    st->smem_end[i] = base[i] ? st->smem_begin[i] + bytes[i] : 0;
  }
  delete t_launch;  // a launch that threw left its state behind
  t_launch = st;
}

CountersLaunchScope::~CountersLaunchScope() {
  if (!active_ || t_launch == nullptr) return;
  std::unique_ptr<LaunchState> st(t_launch);
  t_launch = nullptr;
  if (std::uncaught_exceptions() > 0) return;  // a failed launch records nothing
  flush_block(*st);
  const int64_t block = int64_t(st->threads.size());
  st->counters.barriers = block ? st->counters.barriers / block : 0;
  st->counters.marker = g_markers.load();
  {
    std::lock_guard<std::mutex> lock(records_mutex());
    records().push_back(std::move(st->counters));
  }
}

bool counters_in_launch() {
  return t_launch != nullptr;
}

void counters_block_begin() {
  if (t_launch != nullptr) flush_block(*t_launch);
}

void counters_barrier(int thread) {
  if (t_launch == nullptr) return;
  ThreadLog& t = t_launch->threads[size_t(thread)];
  ++t.barriers;
  ++t.barrier_epoch;
  t.collective_epoch = 0;
  std::fill(t.seq, t.seq + kClasses, 0);
}

void counters_collective(int thread, unsigned mask) {
  if (t_launch == nullptr || mask != 0xffffffffu) return;  // partial masks: lanes stay apart
  ThreadLog& t = t_launch->threads[size_t(thread)];
  ++t.collective_epoch;
  std::fill(t.seq, t.seq + kClasses, 0);
}

void counters_access(int thread, const void* p, int bytes, bool store) {
  LaunchState* st = t_launch;
  if (st == nullptr) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  bool shared = false;
  for (int i = 0; i < 2; ++i) shared |= a >= st->smem_begin[i] && a < st->smem_end[i];
  const Class cls =
      shared ? (store ? SharedStore : SharedLoad) : (store ? GlobalStore : GlobalLoad);
  ThreadLog& t = st->threads[size_t(thread)];
  const Key key{(t.barrier_epoch << 32) | t.collective_epoch, t.seq[cls]++};
  t.accesses[cls].push_back(Access{key, a, bytes});
}

void counters_mma() {
  if (t_launch != nullptr) ++t_launch->counters.mma;
}

}  // namespace emu
