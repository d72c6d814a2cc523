#include "net/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "kernels/core/check.h"

namespace farsee::net {
namespace {

bool lifetimes_overlap(const BufferLifetime& a, const BufferLifetime& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

int64_t align_up(int64_t v, int64_t a) {
  return (v + a - 1) / a * a;
}

}  // namespace

int64_t MemoryPlan::peak_live_bytes() const {
  if (buffers.empty()) return 0;
  int lo = buffers[0].first_step, hi = buffers[0].last_step;
  for (const auto& b : buffers) {
    lo = std::min(lo, b.first_step);
    hi = std::max(hi, b.last_step);
  }
  int64_t peak = 0;
  for (int step = lo; step <= hi; ++step) {
    int64_t live = 0;
    for (const auto& b : buffers) {
      if (b.first_step <= step && step <= b.last_step) live += b.bytes;
    }
    peak = std::max(peak, live);
  }
  return peak;
}

MemoryPlan plan_memory(std::vector<BufferLifetime> buffers, int64_t alignment) {
  FARSEE_REQUIRE(alignment > 0 && (alignment & (alignment - 1)) == 0,
                 "plan_memory: alignment " << alignment << " is not a power of two");
  for (const auto& b : buffers) {
    FARSEE_REQUIRE(b.bytes > 0 && b.first_step <= b.last_step,
                   "plan_memory: buffer '" << b.name << "' has " << b.bytes << " bytes, steps ["
                                           << b.first_step << ", " << b.last_step << "]");
  }
  MemoryPlan plan;
  plan.alignment = alignment;
  plan.buffers = std::move(buffers);
  const size_t n = plan.buffers.size();
  plan.offsets.assign(n, -1);

  // Largest first (ties: earlier first use), so big buffers claim the low offsets and small ones
  // fill the gaps between them.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (plan.buffers[a].bytes != plan.buffers[b].bytes) {
      return plan.buffers[a].bytes > plan.buffers[b].bytes;
    }
    return plan.buffers[a].first_step < plan.buffers[b].first_step;
  });

  std::vector<size_t> placed;
  for (size_t i : order) {
    const BufferLifetime& b = plan.buffers[i];
    // Byte ranges of placed buffers live at the same time, sorted by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      if (lifetimes_overlap(b, plan.buffers[j])) {
        busy.emplace_back(plan.offsets[j], plan.offsets[j] + plan.buffers[j].bytes);
      }
    }
    std::sort(busy.begin(), busy.end());
    // The smallest gap that fits (best fit); past the last busy range if none does.
    int64_t best = -1, best_gap = 0, cursor = 0;
    for (const auto& r : busy) {
      const int64_t gap = r.first - cursor;
      if (gap >= b.bytes && (best < 0 || gap < best_gap)) {
        best = cursor;
        best_gap = gap;
      }
      cursor = std::max(cursor, align_up(r.second, alignment));
    }
    plan.offsets[i] = best >= 0 ? best : cursor;
    placed.push_back(i);
    plan.arena_bytes = std::max(plan.arena_bytes, plan.offsets[i] + b.bytes);
  }
  plan.arena_bytes = align_up(plan.arena_bytes, alignment);
  verify_memory_plan(plan);
  return plan;
}

std::string memory_plan_violation(const MemoryPlan& plan) {
  std::ostringstream o;
  if (plan.offsets.size() != plan.buffers.size()) {
    o << "memory plan has " << plan.offsets.size() << " offsets for " << plan.buffers.size()
      << " buffers";
    return o.str();
  }
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const auto& b = plan.buffers[i];
    const int64_t off = plan.offsets[i];
    if (b.bytes <= 0 || b.first_step > b.last_step) {
      o << "buffer '" << b.name << "' has " << b.bytes << " bytes and steps [" << b.first_step
        << ", " << b.last_step << "]";
      return o.str();
    }
    if (off < 0 || off + b.bytes > plan.arena_bytes) {
      o << "buffer '" << b.name << "' at bytes [" << off << ", " << off + b.bytes
        << ") lies outside the arena of " << plan.arena_bytes << " bytes";
      return o.str();
    }
    if (off % plan.alignment != 0) {
      o << "buffer '" << b.name << "' at offset " << off << " is not aligned to " << plan.alignment
        << " bytes";
      return o.str();
    }
  }
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    for (size_t j = i + 1; j < plan.buffers.size(); ++j) {
      const auto &a = plan.buffers[i], &b = plan.buffers[j];
      if (!lifetimes_overlap(a, b)) continue;
      const int64_t a0 = plan.offsets[i], a1 = a0 + a.bytes;
      const int64_t b0 = plan.offsets[j], b1 = b0 + b.bytes;
      if (a0 < b1 && b0 < a1) {
        o << "buffers '" << a.name << "' (bytes [" << a0 << ", " << a1 << "), steps ["
          << a.first_step << ", " << a.last_step << "]) and '" << b.name << "' (bytes [" << b0
          << ", " << b1 << "), steps [" << b.first_step << ", " << b.last_step
          << "]) are live at the same time and overlap";
        return o.str();
      }
    }
  }
  return "";
}

void verify_memory_plan(const MemoryPlan& plan) {
  const std::string violation = memory_plan_violation(plan);
  FARSEE_REQUIRE(violation.empty(), "invalid memory plan: " << violation);
}

}  // namespace farsee::net
