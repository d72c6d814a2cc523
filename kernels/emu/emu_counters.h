// Emulator performance counters (DESIGN.md section 4): what each kernel launch asks of the memory
// system and the SMs, measured without a GPU.
//
// Per launch: global bytes read and written by access width (1/2/4/8/16 B); global 32-byte
// sectors per warp-wide access (coalescing); shared-memory bank conflicts per warp-wide access;
// barriers; MMA instructions. Off by default (FARSEE_EMU_COUNTERS=1 or set_counting(true) turns
// it on); counting only observes addresses, so results and schedules stay bitwise the same.
//
// How an access is seen: kernels read and write memory through farsee::ld/st
// (kernels/core/mem_access.h), load_as_float/store_from_float (kernels/core/vec.h) and the PTX
// wrappers (kernels/core/ptx.h: cp.async = global load + shared store, ldmatrix = shared load);
// under emu these call counters_access(). An address inside the block's shared arenas is shared,
// anything else global. A "warp-wide access" groups the k-th access of each lane of a warp, per
// class (global load, global store, shared load, shared store), k counted from the lane's last
// barrier or full-warp collective (so lanes that diverged line up again there).
//   global: sectors = distinct 32-byte sectors the group touches; efficiency = distinct bytes
//           requested / (32 x sectors) (a broadcast is not waste; 1.0 = perfectly coalesced).
//   shared: 32 banks of 4 bytes; a group is served in phases (all 32 lanes for <= 4-byte accesses,
//           half warps for 8 bytes, quarter warps for 16 bytes, as the hardware); a phase takes
//           as many wavefronts as the most distinct 4-byte words any one bank holds (the same word
//           is broadcast). ways = wavefronts / phases (1.0 = conflict free, 32 = 32-way).
// Not modelled: caches (every sector counts, re-reads included), timing, instruction counts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace emu {

constexpr int kWidthBins = 5;  // access widths 1, 2, 4, 8, 16 bytes (bin = log2(width))

struct GlobalAccessStats {
  int64_t requests = 0;                     // warp-wide accesses
  int64_t sectors = 0;                      // 32-byte sectors they touched
  int64_t unique_bytes = 0;                 // distinct bytes requested, per warp-wide access
  int64_t bytes_by_width[kWidthBins] = {};  // requested bytes (every lane's), by access width
  int64_t bytes() const;
  double efficiency() const;  // unique_bytes / (32 * sectors); 1 when nothing was accessed
};

struct LaunchCounters {
  std::string kernel;  // launched name @ file:line of the launch ("kernel@conv_bn_act.cu:604")
  int64_t launches = 0;
  int64_t marker = 0;  // counters_marker() calls before this launch (see counters_marker)
  GlobalAccessStats global_load, global_store;
  int64_t shared_requests = 0;        // warp-wide shared accesses (loads and stores)
  int64_t shared_phases = 0;          // conflict-free wavefronts they would need
  int64_t shared_wavefronts = 0;      // wavefronts they need
  int64_t shared_max_ways = 0;        // worst phase
  int64_t shared_bytes = 0;           // requested shared bytes (loads and stores)
  int64_t barriers = 0;               // block-wide __syncthreads, summed over blocks
  int64_t mma = 0;                    // warp-wide MMA instructions (any shape)
  double bank_conflict_ways() const;  // shared_wavefronts / shared_phases; 1 when none
  // Sums `o` into this (kernel and marker stay).
  void add(const LaunchCounters& o);
};

// ---- control (host code, tests, farsee-emu-profile) ----
void set_counting(bool on);
// Every finished launch's counters since the last take (in completion order), then cleared.
std::vector<LaunchCounters> take_launch_counters();
// Clears the recorded launches and the marker count.
void reset_counters();
// A stream timestamp was reached (rt::Timer under emu, kernels/core/runtime.cpp): launches record
// how many came before them, which is how farsee-emu-profile attributes launches to graph steps.
void counters_marker();

namespace detail {
extern std::atomic<bool> g_counting;
}
inline bool counters_on() {
  return detail::g_counting.load(std::memory_order_relaxed);
}

// ---- hooks of the emulator (kernels/emu/emu_runtime.cpp, emu.h, kernels/core/ptx.h) ----
// Brackets one launch on this host thread; the shared arenas tell shared from global addresses.
class CountersLaunchScope {
 public:
  CountersLaunchScope(const char* kernel, const char* file, int line, size_t threads_per_block,
                      const void* static_smem, size_t static_bytes, const void* dynamic_smem,
                      size_t dynamic_bytes);
  ~CountersLaunchScope();
  CountersLaunchScope(const CountersLaunchScope&) = delete;
  CountersLaunchScope& operator=(const CountersLaunchScope&) = delete;

 private:
  bool active_;
};
bool counters_in_launch();  // a counted launch runs on this host thread
void counters_block_begin();
void counters_barrier(int thread);
void counters_collective(int thread, unsigned mask);
void counters_access(int thread, const void* p, int bytes, bool store);
void counters_mma();

}  // namespace emu
