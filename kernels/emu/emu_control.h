// Host-side control of the emulator, usable from ordinary C++ (tests) without pulling in the CUDA
// dialect macros of emu.h.
#pragma once

#include <cstdint>

namespace emu {

enum class Schedule { RoundRobin, GreedyForward, GreedyReverse, Random };
const char* schedule_name(Schedule s);

// The schedule used by the next launches (default: FARSEE_EMU_SCHEDULE env var, else round-robin;
// FARSEE_EMU_SEED seeds the random schedule).
void set_schedule(Schedule s, uint64_t seed = 1);
Schedule current_schedule();

}  // namespace emu
