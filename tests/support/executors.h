// Running one kernel test on every executor: cpu (the fast host executor, always), emu under two
// schedules (always) and cuda (skipped cleanly with the reason when no GPU is usable). Memory
// helpers move host vectors to the executor's memory space and back; outputs are poisoned (0xFF
// bytes = NaN) before each run so an element the kernel forgot to write fails the comparison.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/executor.h"
#include "kernels/core/half_convert.h"
#include "kernels/core/runtime.h"
#include "kernels/emu/emu_control.h"

namespace farsee {
// gtest value printer of a DType parameter ("fp16", not "4-byte object <01-00 00-00>"); found by
// argument-dependent lookup, so in DType's namespace.
inline void PrintTo(DType t, std::ostream* os) {
  *os << dtype_name(t);
}
}  // namespace farsee

namespace farsee::test {

struct ExecCase {
  Executor executor;
  emu::Schedule schedule;
};

std::string exec_case_name(const ExecCase& c);
// gtest value printer (test names and failure messages show "emu_greedy_forward", not bytes).
inline void PrintTo(const ExecCase& c, std::ostream* os) {
  *os << exec_case_name(c);
}
// cpu, emu/greedy-forward, emu/greedy-reverse, cuda (the schedule matters to emu only).
// The cpu executor runs every kernel test under that test's per-op tolerances (set for fp32
// kernels vs the double reference). Its measured worst errors vs the reference on the random-float
// cases: conv forward 2.1e-5 at |y| = 63 (1152-term sums), conv dgrad/wgrad 2.9e-6 (|g| <= 9),
// BN training 1.3e-4 (AwkwardShapes: values next to the ReLU cut-off; elsewhere <= 1.3e-6),
// depthwise 4.8e-7 forward / 2.9e-6 backward, max-pool backward 2.4e-7. softmax-CE (fp32 logits)
// and SGD have their own code too (kernels/cpu/softmax_cross_entropy.cpp: a polynomial exp and
// per-band sums; kernels/cpu/sgd.cpp: the reference's per-element update, bitwise); the fp16
// paths call the reference's code (exact).
std::vector<ExecCase> kernel_exec_cases();
// Also the reference executor (for ops whose public entry is tested end to end).
std::vector<ExecCase> all_exec_cases();

// Sets the emu schedule for the case; returns the reason to skip ("" to run).
std::string prepare_exec_case(const ExecCase& c);

// FARSEE_REQUIRE_GPU=1 in the environment (tools/scripts/gpu_check.sh sets it): a GPU case that
// cannot run is a failure, not a skip, so a GPU machine's run cannot pass with its GPU cases unrun.
bool gpu_required();

#define FARSEE_PREPARE_EXEC_CASE(c)                                  \
  do {                                                               \
    std::string farsee_skip_ = ::farsee::test::prepare_exec_case(c); \
    if (!farsee_skip_.empty()) {                                     \
      if (::farsee::test::gpu_required()) {                          \
        GTEST_FAIL() << "FARSEE_REQUIRE_GPU=1: " << farsee_skip_;    \
      }                                                              \
      GTEST_SKIP() << farsee_skip_;                                  \
    }                                                                \
  } while (0)

// gtest name generator for INSTANTIATE_TEST_SUITE_P over ExecCase.
struct ExecCaseName {
  template <class ParamInfo>
  std::string operator()(const ParamInfo& info) const {
    return exec_case_name(info.param);
  }
};

// ---- executor memory ----
template <typename T>
rt::Buffer to_executor(const Context& ctx, const std::vector<T>& host) {
  rt::Buffer b(ctx.executor, host.size() * sizeof(T));
  rt::copy_to_device(ctx, b.data(), host.data(), host.size() * sizeof(T));
  rt::synchronize(ctx);  // `host` is often a temporary: the copy must have read it
  return b;
}
// A buffer of `bytes` filled with 0xFF (NaN in fp32/fp16).
rt::Buffer poisoned_buffer(const Context& ctx, size_t bytes);
template <typename T>
std::vector<T> to_host(const Context& ctx, const rt::Buffer& b, size_t count) {
  std::vector<T> host(count);
  rt::copy_to_host(ctx, host.data(), b.data(), count * sizeof(T));
  rt::synchronize(ctx);
  return host;
}

// ---- data ----
std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f);
// Small integers in [lo, hi]: sums of their products are exact in fp32 (and in fp16 inputs).
std::vector<float> small_ints(size_t n, uint32_t seed, int lo = -3, int hi = 3);
std::vector<uint16_t> to_half_bits(const std::vector<float>& v);
std::vector<float> from_half_bits(const std::vector<uint16_t>& v);
// Rounds every element through fp16.
std::vector<float> round_to_half(std::vector<float> v);

}  // namespace farsee::test
