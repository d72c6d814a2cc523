// Liveness-based activation memory plan (DESIGN.md section 6).
//
// Every activation buffer of a forward pass is live over an inclusive range of step indices: from
// the step that first writes it to the last step that reads it. Two buffers whose ranges share a
// step must not share bytes; buffers that are never live at the same time may. The planner places
// buffers in one arena, largest first, each at the lowest aligned offset that does not collide with
// an already placed buffer whose lifetime overlaps (greedy best-offset; optimal is NP-hard, this is
// within a few percent of the max-live lower bound on ResNet-like graphs).
//
// A step's inputs and outputs are all live at that step, so an op never reads and writes the same
// bytes: no executor has to support in-place operation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace farsee::net {

struct BufferLifetime {
  std::string name;
  int64_t bytes = 0;
  int first_step = 0;  // first step that writes (or, for the network input, -1: before step 0)
  int last_step = 0;   // last step that reads (inclusive)
};

struct MemoryPlan {
  std::vector<BufferLifetime> buffers;
  std::vector<int64_t> offsets;  // byte offset of buffers[i] in the arena
  int64_t arena_bytes = 0;       // what the arena must hold
  int64_t alignment = 256;

  // Largest sum of bytes of buffers live at one step: a lower bound for arena_bytes.
  int64_t peak_live_bytes() const;
};

// Assigns offsets to `buffers` (each aligned to `alignment`, a power of two).
MemoryPlan plan_memory(std::vector<BufferLifetime> buffers, int64_t alignment = 256);

// Empty when `plan` is valid; otherwise a description of the first violation: two buffers with
// overlapping lifetimes whose byte ranges overlap (both named, with ranges and steps), a buffer
// outside the arena, a misaligned offset, or an inconsistent plan (sizes, lifetimes).
std::string memory_plan_violation(const MemoryPlan& plan);

// Throws farsee::Error with memory_plan_violation() when the plan is not valid.
void verify_memory_plan(const MemoryPlan& plan);

}  // namespace farsee::net
