// sgd_step kernel (cpu, emu under two schedules, cuda when present) against the reference: bitwise
// equal (both apply the same three fp32 FMAs per element, kernels/sgd.h). Counts around the
// 4-float vector (tail handling), misaligned arrays (scalar path), momentum on/off, weight decay
// on/off, three consecutive steps with the buffer created on the first (two for the case that
// covers the grid-stride loop).
#include "kernels/sgd.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct SgdCase {
  int64_t count;
  int misalign;  // floats of offset of every array from a 256-byte boundary
  float momentum, weight_decay;
  int steps = 3;
};

// k.steps steps on `ctx`; returns params then buffer (buffer empty when momentum is 0).
std::vector<float> run_steps(const Context& ctx, const SgdCase& k) {
  const size_t n = size_t(k.count) + size_t(k.misalign);
  std::vector<float> p0 = random_floats(n, 1, -2.0f, 2.0f);
  rt::Buffer params = to_executor(ctx, p0);
  rt::Buffer buf = poisoned_buffer(ctx, n * sizeof(float));  // first step must not read it
  float* p = params.as<float>() + k.misalign;
  float* b = buf.as<float>() + k.misalign;
  for (int step = 0; step < k.steps; ++step) {
    rt::Buffer grads = to_executor(ctx, random_floats(n, 10 + step, -1.0f, 1.0f));
    sgd_step(ctx, k.count, p, grads.as<float>() + k.misalign, k.momentum != 0 ? b : nullptr,
             0.01f * (step + 1), k.momentum, k.weight_decay, step == 0);
  }
  std::vector<float> out = to_host<float>(ctx, params, n);
  if (k.momentum != 0) {
    const std::vector<float> bh = to_host<float>(ctx, buf, n);
    out.insert(out.end(), bh.begin() + k.misalign, bh.end());
  }
  return out;
}

class SgdKernel : public ::testing::TestWithParam<ExecCase> {};

TEST_P(SgdKernel, BitwiseEqualToReference) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const SgdCase cases[] = {
      {1, 0, 0.9f, 1e-4f},
      {3, 0, 0.9f, 1e-4f},
      {4, 0, 0.9f, 0.0f},
      {1027, 0, 0.9f, 5e-4f},
      {1027, 1, 0.9f, 5e-4f},
      {1030, 3, 0.0f, 5e-4f},
      {4096, 0, 0.0f, 0.0f},
      {70001, 2, 0.9f, 1e-4f},
      // more vectors than the capped grid has threads (1056 blocks x 256 x 4): the grid-stride loop
      {1100003, 0, 0.9f, 1e-4f, 2},
  };
  for (const SgdCase& k : cases) {
    SCOPED_TRACE(::testing::Message() << "count " << k.count << " misalign " << k.misalign
                                      << " momentum " << k.momentum << " wd " << k.weight_decay);
    const std::vector<float> want = run_steps(reference_context(), k);
    const std::vector<float> got = run_steps(exec_context(GetParam()), k);
    EXPECT_TRUE(all_equal(got, want));
  }
}

// The learning rate read from executor memory (a CUDA-graph replay) is the same step as the rate
// passed by value, bitwise, while the value argument is ignored.
TEST_P(SgdKernel, LearningRateFromMemory) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const Context ctx = exec_context(GetParam());
  const int64_t n = 1027;
  const std::vector<float> p0 = random_floats(size_t(n), 3, -2.0f, 2.0f);
  const std::vector<float> g = random_floats(size_t(n), 4, -1.0f, 1.0f);
  std::vector<float> results[2];
  for (int from_memory = 0; from_memory < 2; ++from_memory) {
    rt::Buffer params = to_executor(ctx, p0);
    rt::Buffer grads = to_executor(ctx, g);
    rt::Buffer buf = poisoned_buffer(ctx, size_t(n) * sizeof(float));
    rt::Buffer lr = to_executor(ctx, std::vector<float>{0.0375f});
    for (int step = 0; step < 2; ++step) {
      sgd_step(ctx, n, params.as<float>(), grads.as<float>(), buf.as<float>(),
               from_memory ? 7.0f : 0.0375f, 0.9f, 1e-4f, step == 0, nullptr,
               from_memory ? lr.as<float>() : nullptr);
    }
    results[from_memory] = to_host<float>(ctx, params, size_t(n));
  }
  EXPECT_TRUE(all_equal(results[1], results[0]));
  EXPECT_FALSE(all_equal(results[0], p0));
}

INSTANTIATE_TEST_SUITE_P(Executors, SgdKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

}  // namespace
}  // namespace farsee::test
