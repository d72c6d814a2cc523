// The liveness memory plan: every plan the planner makes passes the overlap checker, the checker
// rejects deliberately broken plans, buffers with disjoint lifetimes share memory, and the plans of
// both presets stay close to the max-live lower bound.
#include "net/memory_plan.h"

#include <gtest/gtest.h>

#include <random>

#include "kernels/core/check.h"
#include "net/config.h"
#include "net/graph.h"

namespace farsee::net {
namespace {

TEST(MemoryPlan, DisjointLifetimesShareMemory) {
  MemoryPlan plan = plan_memory({{"a", 1000, 0, 1}, {"b", 1000, 1, 2}, {"c", 1000, 2, 3}}, 256);
  EXPECT_EQ(memory_plan_violation(plan), "");
  // a and c are never live together: they may (and with best fit, do) share bytes.
  EXPECT_EQ(plan.offsets[0], plan.offsets[2]);
  EXPECT_NE(plan.offsets[0], plan.offsets[1]);
  EXPECT_EQ(plan.arena_bytes, 2048);  // two 1000-byte buffers, each rounded to 256
  EXPECT_EQ(plan.peak_live_bytes(), 2000);
}

TEST(MemoryPlan, RandomLifetimesNeverOverlap) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferLifetime> buffers;
    const int n = 1 + int(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const int first = int(rng() % 30) - 1;
      const int last = first + int(rng() % 8);
      buffers.push_back({"t" + std::to_string(i), int64_t(1 + rng() % 5000), first, last});
    }
    const MemoryPlan plan = plan_memory(buffers, 256);
    ASSERT_EQ(memory_plan_violation(plan), "") << "trial " << trial;
    EXPECT_GE(plan.arena_bytes, plan.peak_live_bytes());
    for (size_t i = 0; i < plan.offsets.size(); ++i) EXPECT_EQ(plan.offsets[i] % 256, 0);
  }
}

TEST(MemoryPlan, CheckerRejectsOverlappingLiveBuffers) {
  MemoryPlan plan = plan_memory({{"a", 512, 0, 2}, {"b", 512, 1, 3}, {"c", 512, 3, 4}}, 256);
  ASSERT_EQ(memory_plan_violation(plan), "");
  // Break it: put b (live at steps 1..3) on top of a (live at 0..2).
  MemoryPlan broken = plan;
  broken.offsets[1] = broken.offsets[0] + 256;
  broken.arena_bytes = std::max(broken.arena_bytes, broken.offsets[1] + 512);
  const std::string why = memory_plan_violation(broken);
  EXPECT_NE(why.find("'a'"), std::string::npos) << why;
  EXPECT_NE(why.find("'b'"), std::string::npos) << why;
  EXPECT_NE(why.find("overlap"), std::string::npos) << why;
  EXPECT_THROW(verify_memory_plan(broken), Error);

  // A buffer past the end of the arena.
  broken = plan;
  broken.arena_bytes = 256;
  EXPECT_NE(memory_plan_violation(broken).find("outside the arena"), std::string::npos);
  // A misaligned offset.
  broken = plan;
  broken.offsets[2] += 16;
  broken.arena_bytes += 256;
  EXPECT_NE(memory_plan_violation(broken).find("not aligned"), std::string::npos);
  // Buffers that are never live together may overlap: a (0..2) and c (3..4).
  MemoryPlan shared = plan;
  shared.offsets[2] = shared.offsets[0];
  EXPECT_EQ(memory_plan_violation(shared), "");
}

TEST(MemoryPlan, RejectsBadLifetimes) {
  EXPECT_THROW(plan_memory({{"x", 0, 0, 1}}), Error);
  EXPECT_THROW(plan_memory({{"x", 8, 3, 1}}), Error);
  EXPECT_THROW(plan_memory({{"x", 8, 0, 1}}, 100), Error);
}

// The network's plans: valid, and within 25% of the max-live lower bound (greedy placement; the
// measured ratio is reported so a regression of the planner is visible).
class NetworkMemoryPlan : public ::testing::TestWithParam<const char*> {};

TEST_P(NetworkMemoryPlan, ValidAndTight) {
  const FarSeeConfig config = preset_config(GetParam());
  for (DType dtype : {DType::F32, DType::F16}) {
    const Graph g = build_graph(config, 1, 512, 1024);
    const MemoryPlan plan = plan_memory(g.buffer_lifetimes(dtype), 256);
    EXPECT_EQ(memory_plan_violation(plan), "");
    const double ratio = double(plan.arena_bytes) / double(plan.peak_live_bytes());
    int64_t total = 0;
    for (const auto& b : plan.buffers) total += b.bytes;
    std::cout << GetParam() << " " << dtype_name(dtype) << " 512x1024: arena " << plan.arena_bytes
              << " bytes, max live " << plan.peak_live_bytes() << " bytes (ratio " << ratio
              << "), all activations without reuse " << total << " bytes\n";
    EXPECT_LE(ratio, 1.25);
    // Reuse happened: the arena is far smaller than all activations together (the tiny variant's
    // arena is dominated by the 3-channel input and the stem output, so only the presets).
    if (config.preset == "paper" || config.preset == "rtseg") {
      EXPECT_LT(plan.arena_bytes, total / 2);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, NetworkMemoryPlan,
                         ::testing::Values("paper", "rtseg", "tiny-paper", "tiny-rtseg"));

}  // namespace
}  // namespace farsee::net
