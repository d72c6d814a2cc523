// Host-side control of the emulator, usable from ordinary C++ (tests) without pulling in the CUDA
// dialect macros of emu.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace emu {

enum class Schedule { RoundRobin, GreedyForward, GreedyReverse, Random };
const char* schedule_name(Schedule s);

// The schedule used by the next launches (default: FARSEE_EMU_SCHEDULE env var, else round-robin;
// FARSEE_EMU_SEED seeds the random schedule).
void set_schedule(Schedule s, uint64_t seed = 1);
Schedule current_schedule();

// Asynchronous streams (kernels/emu/emu_stream.h): default FARSEE_EMU_ASYNC=1. Switching flushes
// every stream first.
bool async_enabled();
void set_async(bool on);
// FARSEE_SYNC_LAUNCHES (default: the environment variable): in asynchronous mode every launch
// runs at once, so its error is thrown by the launch, naming it. For tests of that debug mode.
void set_sync_launches(bool on);
// Fresh rt::alloc(Executor::Emu) memory filled with 0xFF bytes (NaN in fp32/fp16/bf16), as
// cudaMalloc gives no zeros: default on, FARSEE_EMU_POISON=0 turns it off.
void set_poison(bool on);

// Emulated devices (cudaGetDeviceCount / cudaSetDevice / cudaGetDevice): FARSEE_EMU_DEVICES
// (default 1) of them, or set_device_count(n) (1..64; tests). The current device is per host
// thread, as in CUDA. Each device has its own function attributes (FARSEE_SET_MAX_DYNAMIC_SMEM) and
// its own set of loaded kernels (lazy loading); memory and streams are shared, as under unified
// addressing.
int device_count();
void set_device_count(int n);
// Throws naming the device for an ordinal outside [0, device_count()).
void set_device(int device);
int current_device();

// Forgets which kernels were launched, as in a fresh process: their next launch is a first one
// again (lazy loading), which a graph capture forbids. For tests of warm-up before capture.
void forget_launched_kernels();

// What a captured graph recorded, for tests.
enum class OpKind { Launch, CopyToDevice, CopyDevice, Memset, Timestamp, EventRecord, EventWait };
const char* op_kind_name(OpKind k);
struct RecordedOp {
  OpKind kind;
  std::string name;     // kernel name or rt call
  std::string site;     // file:line of the launch or call
  int args = 0;         // launches: kernel arguments
  int scalar_args = 0;  // launches: arguments that are not pointers (baked into the graph)
};
std::vector<RecordedOp> graph_ops(void* graph);

struct GraphCounters {
  int64_t instantiated = 0;  // graph_end_capture successes
  int64_t launched = 0;      // graph_launch calls
  int64_t alive = 0;         // instantiated and not destroyed
};
GraphCounters graph_counters();

}  // namespace emu
