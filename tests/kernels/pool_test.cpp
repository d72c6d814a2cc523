// max_pool_fwd kernels (emu under two schedules, cuda when present) against the reference.
// A max is one of its inputs, so every comparison here is exact, random floats included.
#include "kernels/pool.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct PoolCase {
  Shape4 x;
  MaxPoolParams params;
  Placement x_placement = {};  // default: dense
  Placement y_placement = {};
};

std::string describe(DType dtype, const PoolCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " x " << to_string(k.x) << " kernel " << k.params.kernel << " stride "
    << k.params.stride << " pad " << k.params.pad << " x slice [" << k.x_placement.offset << " of "
    << k.x_placement.pixel_stride << "] y slice [" << k.y_placement.offset << " of "
    << k.y_placement.pixel_stride << "]";
  return s.str();
}

// Runs the case on the executor and on the reference (dense) and expects identical outputs.
void expect_matches_reference(const ExecCase& ec, const std::vector<PoolCase>& cases, uint32_t seed,
                              float lo, float hi) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const PoolCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const std::vector<float> data = random_floats(size_t(k.x.elements()), seed++, lo, hi);
      const Shape4 y_shape = max_pool_output_shape(k.params, k.x);
      auto op = [&](const Context& c, const TensorView& x, const TensorView& y) {
        max_pool_fwd(c, k.params, x, y);
      };
      const std::vector<float> got = run_nhwc_op(exec_context(ec), dtype, k.x, k.x_placement, data,
                                                 y_shape, k.y_placement, op);
      const std::vector<float> want =
          run_nhwc_op(reference_context(), dtype, k.x, Placement{}, data, y_shape, Placement{}, op);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

class MaxPoolKernel : public ::testing::TestWithParam<ExecCase> {};

// The net's 3x3 / stride 2 / pad 1 on odd and even sizes, scalar (C = 19, 13) and vector (C = 32)
// paths, batch 1 and 3, plus other PyTorch-valid windows.
TEST_P(MaxPoolKernel, MatchesReference) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(),
                           {
                               {Shape4{3, 9, 13, 19}, MaxPoolParams{3, 2, 1}},
                               {Shape4{1, 8, 12, 32}, MaxPoolParams{3, 2, 1}},
                               {Shape4{1, 7, 7, 13}, MaxPoolParams{3, 2, 1}},
                               {Shape4{1, 1, 1, 5}, MaxPoolParams{3, 2, 1}},
                               {Shape4{1, 9, 11, 16}, MaxPoolParams{2, 2, 0}},
                               {Shape4{3, 6, 5, 8}, MaxPoolParams{3, 1, 1}},
                               {Shape4{1, 11, 10, 24}, MaxPoolParams{5, 3, 2}},
                           },
                           10, -4.0f, 4.0f);
}

// All inputs negative: a kernel that pads with 0 instead of -inf fails at the borders.
TEST_P(MaxPoolKernel, NegativeInputsPadWithMinusInfinity) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(),
                           {
                               {Shape4{1, 9, 13, 19}, MaxPoolParams{3, 2, 1}},
                               {Shape4{1, 9, 13, 16}, MaxPoolParams{3, 2, 1}},
                           },
                           20, -8.0f, -1.0f);
}

// A map large enough that each thread walks several pixels (pixel_channel_launch() switches to
// 2 pixels per thread once the grid has >= 256 blocks): covers the grid-stride loop.
TEST_P(MaxPoolKernel, SeveralPixelsPerThread) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(), {{Shape4{1, 160, 180, 19}, MaxPoolParams{3, 2, 1}}}, 40,
                           -4.0f, 4.0f);
}

// x and y as channel slices: aligned (vector path) and odd offsets (scalar path).
TEST_P(MaxPoolKernel, ChannelSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(
      GetParam(),
      {
          {Shape4{3, 9, 13, 16}, MaxPoolParams{3, 2, 1}, Placement{8, 32}, Placement{16, 40}},
          {Shape4{1, 9, 13, 13}, MaxPoolParams{3, 2, 1}, Placement{3, 21}, Placement{1, 14}},
      },
      30, -4.0f, 4.0f);
}

INSTANTIATE_TEST_SUITE_P(Executors, MaxPoolKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

TEST(MaxPoolArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  const Shape4 xs{1, 9, 13, 8};
  NhwcTestTensor x(ctx, DType::F32, xs);
  NhwcTestTensor y_same_size(ctx, DType::F32, xs);
  NhwcTestTensor y_fp16(ctx, DType::F16, max_pool_output_shape(MaxPoolParams{}, xs));
  NhwcTestTensor y_ok(ctx, DType::F32, max_pool_output_shape(MaxPoolParams{}, xs));
  EXPECT_THROW(max_pool_fwd(ctx, MaxPoolParams{}, x.view(), y_same_size.view()), Error);
  EXPECT_THROW(max_pool_fwd(ctx, MaxPoolParams{}, x.view(), y_fp16.view()), Error);
  // pad 2 > kernel / 2 (PyTorch rejects it: a window could lie entirely in the padding)
  const MaxPoolParams pad2{3, 2, 2};
  NhwcTestTensor y_pad2(ctx, DType::F32, max_pool_output_shape(pad2, xs));
  EXPECT_THROW(max_pool_fwd(ctx, pad2, x.view(), y_pad2.view()), Error);
  EXPECT_THROW(max_pool_fwd(ctx, MaxPoolParams{3, 0, 1}, x.view(), y_ok.view()), Error);
}

}  // namespace
}  // namespace farsee::test
