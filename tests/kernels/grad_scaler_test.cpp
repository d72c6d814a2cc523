// grad_unscale_check (kernels/grad_scaler.h) on every executor (cpu, emu under two schedules, cuda
// when present, and the reference) against values computed here: grads * inv_scale bitwise (every
// element, NaN and Inf included: compared as bit patterns; the payload of a NaN times a power of
// two is kept), found_inf = 1 exactly when an input is NaN or +-Inf and otherwise left as it was (a
// flag already set stays set). Counts around the 4-float vector (tail), misaligned arrays (scalar
// path), a non-finite value in the vector body, in the tail and alone, large and tiny gradients
// (overflow to Inf after a non-power-of-two unscale is a finite input: no flag), and a count beyond
// the capped grid (grid-stride loop); the factor read from executor memory (a CUDA-graph replay
// with a new loss scale) bitwise the factor passed by value. Also sgd_step's skip flag: set,
// nothing is written (params and momentum buffer bitwise as before); zero, the plain update.
#include "kernels/grad_scaler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/sgd.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

struct UnscaleCase {
  int64_t count;
  int misalign;                 // floats of offset from a 256-byte boundary
  std::vector<int64_t> nan_at;  // indices (within count) set to NaN
  std::vector<int64_t> inf_at;  // set to +Inf (even index) or -Inf (odd)
  float inv_scale;
  int32_t flag_before;  // found_inf's value before the call
};

struct UnscaleResult {
  std::vector<float> grads;  // the whole buffer (misalignment and all)
  int32_t found;
};

std::vector<float> case_input(const UnscaleCase& k) {
  const size_t n = size_t(k.count) + size_t(k.misalign);
  std::vector<float> g = random_floats(n, 3, -1e4f, 1e4f);
  g[size_t(k.misalign)] = 3e38f;  // large: x 1.5 overflows to Inf, still a finite input
  if (n > 2) g[n - 1] = 1e-44f;   // denormal
  for (int64_t i : k.nan_at) g[size_t(k.misalign + i)] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i : k.inf_at) {
    g[size_t(k.misalign + i)] = (i % 2 ? -1.0f : 1.0f) * std::numeric_limits<float>::infinity();
  }
  return g;
}

// from_memory: k.inv_scale is read from executor memory; the value argument is a decoy.
UnscaleResult run_unscale(const Context& ctx, const UnscaleCase& k, bool from_memory = false) {
  const std::vector<float> g = case_input(k);
  rt::Buffer grads = to_executor(ctx, g);
  rt::Buffer flag = to_executor(ctx, std::vector<int32_t>{k.flag_before, 77});
  rt::Buffer factor = to_executor(ctx, std::vector<float>{k.inv_scale});
  grad_unscale_check(ctx, k.count, grads.as<float>() + k.misalign, from_memory ? 3.0f : k.inv_scale,
                     flag.as<int32_t>(), from_memory ? factor.as<float>() : nullptr);
  UnscaleResult r{to_host<float>(ctx, grads, g.size()), 0};
  const std::vector<int32_t> f = to_host<int32_t>(ctx, flag, 2);
  EXPECT_EQ(f[1], 77) << "written past found_inf";
  r.found = f[0];
  return r;
}

class GradUnscaleCheck : public ::testing::TestWithParam<ExecCase> {};

TEST_P(GradUnscaleCheck, MatchesScalingAndFlagsNonFinite) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const UnscaleCase cases[] = {
      {1, 0, {}, {}, 0.5f, 0},
      {1, 0, {0}, {}, 0.5f, 0},
      {3, 1, {}, {2}, 1.0f / 65536, 0},       // misaligned: scalar path; Inf last
      {4, 0, {}, {}, 1.5f, 0},                // not a power of two; 3e38 x 1.5 overflows: no flag
      {1027, 0, {}, {1025}, 1.0f / 1024, 0},  // Inf in the tail of the vector path
      {1027, 0, {517}, {}, 1.0f / 1024, 0},   // NaN in the vector body
      {1027, 2, {}, {}, 1.0f / 1024, 1},      // finite, flag already set: stays 1
      {1030, 3, {1, 1029}, {600, 601}, 2.0f, 0},
      {70001, 0, {}, {}, 1.0f / 32768, 0},
      // more vectors than the capped grid has threads (1056 blocks x 256 x 4): the grid-stride
      // loop; the Inf is in the last stride
      {1100003, 0, {}, {1100000}, 1.0f / 65536, 0},
  };
  for (const UnscaleCase& k : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "count " << k.count << " misalign " << k.misalign << " inv_scale "
                 << k.inv_scale << " NaNs " << k.nan_at.size() << " Infs " << k.inf_at.size());
    std::vector<float> want = case_input(k);
    for (int64_t i = 0; i < k.count; ++i) want[size_t(k.misalign + i)] *= k.inv_scale;
    const int32_t want_found = (k.nan_at.empty() && k.inf_at.empty()) ? k.flag_before : 1;
    for (const Context& ctx : {reference_context(), exec_context(GetParam())}) {
      SCOPED_TRACE(executor_name(ctx.executor));
      const UnscaleResult r = run_unscale(ctx, k);
      EXPECT_TRUE(all_equal(bits_of(r.grads), bits_of(want)));
      EXPECT_EQ(r.found, want_found);
    }
  }
}

// The factor from memory (what a replayed CUDA graph reads after a loss-scale change) gives
// bitwise the by-value result, on the executor and on the reference; the decoy value 3 is unused.
TEST_P(GradUnscaleCheck, FactorFromMemory) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const UnscaleCase cases[] = {
      {1027, 0, {}, {1025}, 1.0f / 1024, 0},
      {1030, 3, {1}, {}, 1.0f / 65536, 0},
      {70001, 0, {}, {}, 1.0f / 32768, 0},
  };
  for (const UnscaleCase& k : cases) {
    SCOPED_TRACE(::testing::Message() << "count " << k.count << " inv_scale " << k.inv_scale);
    for (const Context& ctx : {reference_context(), exec_context(GetParam())}) {
      SCOPED_TRACE(executor_name(ctx.executor));
      const UnscaleResult by_value = run_unscale(ctx, k), in_memory = run_unscale(ctx, k, true);
      EXPECT_TRUE(all_equal(bits_of(in_memory.grads), bits_of(by_value.grads)));
      EXPECT_EQ(in_memory.found, by_value.found);
      EXPECT_FALSE(all_equal(bits_of(by_value.grads), bits_of(case_input(k))));
    }
  }
}

TEST_P(GradUnscaleCheck, BadArgumentsAreNamed) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const Context ctx = exec_context(GetParam());
  float g = 1.0f;
  int32_t flag = 0;
  auto message = [&](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { grad_unscale_check(ctx, -1, &g, 1.0f, &flag); }).find("count"),
            std::string::npos);
  EXPECT_NE(message([&] { grad_unscale_check(ctx, 1, &g, 1.0f, nullptr); }).find("found_inf"),
            std::string::npos);
  EXPECT_NE(message([&] {
              grad_unscale_check(ctx, 1, &g, std::numeric_limits<float>::infinity(), &flag);
            }).find("inv_scale"),
            std::string::npos);
  grad_unscale_check(ctx, 0, nullptr, 1.0f, nullptr);  // empty arena: no-op
}

INSTANTIATE_TEST_SUITE_P(Executors, GradUnscaleCheck, ::testing::ValuesIn(all_exec_cases()),
                         ExecCaseName());

// sgd_step with the skip flag: set -> params and buffer untouched (bitwise); 0 -> the update.
class SgdSkipFlag : public ::testing::TestWithParam<ExecCase> {};

TEST_P(SgdSkipFlag, SkipsOnlyWhenSet) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const Context ctx = exec_context(GetParam());
  const size_t n = 1027;
  const std::vector<float> p0 = random_floats(n, 1, -2.0f, 2.0f);
  const std::vector<float> b0 = random_floats(n, 2, -1.0f, 1.0f);
  const std::vector<float> g = random_floats(n, 3, -1.0f, 1.0f);
  for (int32_t flag_value : {1, 0}) {
    SCOPED_TRACE(::testing::Message() << "flag " << flag_value);
    rt::Buffer params = to_executor(ctx, p0), buf = to_executor(ctx, b0);
    rt::Buffer grads = to_executor(ctx, g);
    rt::Buffer flag = to_executor(ctx, std::vector<int32_t>{flag_value});
    sgd_step(ctx, int64_t(n), params.as<float>(), grads.as<float>(), buf.as<float>(), 0.1f, 0.9f,
             1e-4f, false, flag.as<int32_t>());
    std::vector<float> want_p = p0, want_b = b0;
    if (flag_value == 0) {
      reference::sgd_step(reference_context(), int64_t(n), want_p.data(), g.data(), want_b.data(),
                          0.1f, 0.9f, 1e-4f, false, nullptr, nullptr);
      ASSERT_FALSE(all_equal(want_p, p0)) << "the update must change the weights";
    }
    EXPECT_TRUE(all_equal(to_host<float>(ctx, params, n), want_p));
    EXPECT_TRUE(all_equal(to_host<float>(ctx, buf, n), want_b));
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, SgdSkipFlag, ::testing::ValuesIn(all_exec_cases()),
                         ExecCaseName());

}  // namespace
}  // namespace farsee::test
