// fill_zero (cpu, emu under two schedules, cuda when present): exactly the requested bytes zeroed.
#include "kernels/elementwise.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

class ElementwiseKernel : public ::testing::TestWithParam<ExecCase> {};

TEST_P(ElementwiseKernel, FillZero) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const Context ctx = exec_context(GetParam());
  rt::Buffer b = poisoned_buffer(ctx, 1000);
  fill_zero(ctx, b.as<char>() + 3, 990);
  const std::vector<unsigned char> h = to_host<unsigned char>(ctx, b, 1000);
  for (size_t i = 0; i < h.size(); ++i) {
    ASSERT_EQ(h[i], (i >= 3 && i < 993) ? 0 : 0xFF) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, ElementwiseKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

}  // namespace
}  // namespace farsee::test
