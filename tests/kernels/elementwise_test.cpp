// tensor_add_inplace and fill_zero kernels (cpu, emu under two schedules, cuda when present)
// against the reference. acc += x is one fp32 add rounded once to the storage dtype in both, so the
// comparison is exact, random floats included.
#include "kernels/elementwise.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct AddCase {
  Shape4 shape;
  Placement acc = {}, x = {};
};

std::vector<float> run_add(const Context& ctx, DType dtype, const AddCase& k, bool placed,
                           const std::vector<float>& a, const std::vector<float>& b) {
  NhwcTestTensor acc(ctx, dtype, k.shape, placed ? k.acc : Placement{});
  NhwcTestTensor x(ctx, dtype, k.shape, placed ? k.x : Placement{});
  acc.upload(a);
  x.upload(b);
  tensor_add_inplace(ctx, acc.view(), x.view());
  std::vector<float> out = acc.download();
  EXPECT_TRUE(acc.outside_untouched());
  return out;
}

class ElementwiseKernel : public ::testing::TestWithParam<ExecCase> {};

TEST_P(ElementwiseKernel, AddInplaceMatchesReference) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const AddCase cases[] = {
      {Shape4{3, 5, 7, 1}},
      {Shape4{1, 7, 5, 3}},
      {Shape4{3, 3, 5, 48}},
      {Shape4{1, 5, 3, 130}},
      {Shape4{1, 40, 45, 16}},  // several pixels per thread
      {Shape4{3, 5, 3, 16}, Placement{8, 40}, Placement{16, 32}},
      {Shape4{1, 7, 3, 13}, Placement{3, 21}, Placement{1, 14}},
  };
  uint32_t seed = 1;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const AddCase& k : cases) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " " << to_string(k.shape));
      const std::vector<float> a = random_floats(size_t(k.shape.elements()), seed++, -3, 3);
      const std::vector<float> b = random_floats(size_t(k.shape.elements()), seed++, -3, 3);
      const std::vector<float> want = run_add(reference_context(), dtype, k, false, a, b);
      const std::vector<float> got = run_add(exec_context(GetParam()), dtype, k, true, a, b);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

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
