// max_pool_fwd kernels (cpu, emu under two schedules, cuda when present) against the reference.
// A max is one of its inputs, so every comparison here is exact, random floats included.
#include "kernels/pool.h"

#include <gtest/gtest.h>

#include <limits>
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

// ---- max_pool_bwd ----

// Runs max_pool_bwd on ctx with the given placements of x, dy and dx (dx poisoned first).
std::vector<float> run_pool_bwd(const Context& ctx, DType dtype, const PoolCase& k,
                                const std::vector<float>& x, const std::vector<float>& dy,
                                Placement dy_placement = {}) {
  NhwcTestTensor xt(ctx, dtype, k.x, k.x_placement);
  xt.upload(x);
  NhwcTestTensor dyt(ctx, dtype, max_pool_output_shape(k.params, k.x), dy_placement);
  dyt.upload(dy);
  NhwcTestTensor dxt(ctx, dtype, k.x, k.y_placement);  // y_placement: dx's
  max_pool_bwd(ctx, k.params, xt.view(), dyt.view(), dxt.view());
  std::vector<float> out = dxt.download();
  EXPECT_TRUE(dxt.outside_untouched());
  return out;
}

// x of small integers in [-2, 2]: most windows hold ties, so the kernel must pick the same
// (first in scan order) input as the reference. dy small integers: every dx is a sum of at most
// kernel^2 of them, exact in fp32 and fp16 -> results must be identical.
void expect_pool_bwd_matches(const ExecCase& ec, const std::vector<PoolCase>& cases,
                             uint32_t seed) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const PoolCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const std::vector<float> x = small_ints(size_t(k.x.elements()), seed++, -2, 2);
      const std::vector<float> dy =
          small_ints(size_t(max_pool_output_shape(k.params, k.x).elements()), seed++, -3, 3);
      const std::vector<float> got =
          run_pool_bwd(exec_context(ec), dtype, k, x, dy, Placement{1, k.x.c + 2});
      const std::vector<float> want =
          run_pool_bwd(reference_context(), dtype, PoolCase{k.x, k.params}, x, dy);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

class MaxPoolBackwardKernel : public ::testing::TestWithParam<ExecCase> {};

// The net's 3x3 / s2 / p1 on odd and even sizes, scalar (C = 19, 13) and vector (C = 32, 16)
// paths, batch 1 and 3, other windows; slices (aligned and odd offsets).
TEST_P(MaxPoolBackwardKernel, MatchesReferenceWithTies) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_pool_bwd_matches(
      GetParam(),
      {
          {Shape4{3, 9, 13, 19}, MaxPoolParams{3, 2, 1}},
          {Shape4{1, 8, 12, 32}, MaxPoolParams{3, 2, 1}},
          {Shape4{1, 7, 7, 13}, MaxPoolParams{3, 2, 1}},
          {Shape4{1, 1, 1, 5}, MaxPoolParams{3, 2, 1}},
          {Shape4{1, 9, 11, 16}, MaxPoolParams{2, 2, 0}},
          {Shape4{3, 6, 5, 8}, MaxPoolParams{3, 1, 1}},
          {Shape4{1, 11, 10, 8}, MaxPoolParams{5, 3, 2}},
          {Shape4{3, 9, 13, 16}, MaxPoolParams{3, 2, 1}, Placement{8, 32}, Placement{16, 40}},
          {Shape4{1, 9, 13, 13}, MaxPoolParams{3, 2, 1}, Placement{3, 21}, Placement{1, 14}},
      },
      600);
}

// Random floats (no ties): dx is a sum of up to 4 fp32 dy values (|dy| <= 1) in window order,
// each of the 3 additions rounded (0.5 ulp of a partial sum <= 4), vs the reference's double sum
// rounded once: |error| <= 3 * 0.5 * 2^-21 + 0.5 ulp ~ 8e-7 -> atol 1e-6, rtol 1.2e-7 (measured
// worst: 2.4e-7). fp16: one fp16 ulp (rtol 1e-3).
// A map large enough for several pixels per thread (grid-stride loop).
TEST_P(MaxPoolBackwardKernel, RandomFloatsSeveralPixelsPerThread) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const PoolCase k{Shape4{1, 121, 140, 19}, MaxPoolParams{3, 2, 1}};
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(describe(dtype, k));
    const std::vector<float> x = random_floats(size_t(k.x.elements()), 700, -4.0f, 4.0f);
    const std::vector<float> dy =
        random_floats(size_t(max_pool_output_shape(k.params, k.x).elements()), 701);
    const std::vector<float> got = run_pool_bwd(exec_context(GetParam()), dtype, k, x, dy);
    const std::vector<float> want = run_pool_bwd(reference_context(), dtype, k, x, dy);
    EXPECT_TRUE(all_close(got, want, 1e-6, dtype == DType::F32 ? 1.2e-7 : 1e-3));
  }
}

// NaN and -inf in the input: the winners follow PyTorch's rule (the last NaN of a window, the
// first input of an all -inf window) in kernel and reference alike.
TEST_P(MaxPoolBackwardKernel, NaNAndMinusInfinityInputs) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const PoolCase k{Shape4{3, 9, 11, 19}, MaxPoolParams{3, 2, 1}};
  std::vector<float> x = small_ints(size_t(k.x.elements()), 750, -2, 2);
  const std::vector<float> pick = random_floats(x.size(), 751, 0.0f, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    if (pick[i] < 0.1f) x[i] = std::numeric_limits<float>::quiet_NaN();
    if (pick[i] > 0.8f) x[i] = -std::numeric_limits<float>::infinity();
  }
  const std::vector<float> dy =
      small_ints(size_t(max_pool_output_shape(k.params, k.x).elements()), 752, -3, 3);
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(describe(dtype, k));
    EXPECT_TRUE(all_equal(run_pool_bwd(exec_context(GetParam()), dtype, k, x, dy),
                          run_pool_bwd(reference_context(), dtype, k, x, dy)));
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, MaxPoolBackwardKernel, ::testing::ValuesIn(kernel_exec_cases()),
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
