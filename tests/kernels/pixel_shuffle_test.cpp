// pixel_shuffle_fwd kernels (cpu, emu under two schedules, cuda when present) against the
// reference. A shuffle is a copy, so every comparison is exact, random floats included.
#include "kernels/pixel_shuffle.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct ShuffleCase {
  Shape4 x;  // x.c = C * factor^2
  int factor;
  Placement x_placement = {};  // default: dense
  Placement y_placement = {};
};

std::string describe(DType dtype, const ShuffleCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " x " << to_string(k.x) << " factor " << k.factor << " x slice ["
    << k.x_placement.offset << " of " << k.x_placement.pixel_stride << "] y slice ["
    << k.y_placement.offset << " of " << k.y_placement.pixel_stride << "]";
  return s.str();
}

void expect_matches_reference(const ExecCase& ec, const std::vector<ShuffleCase>& cases,
                              uint32_t seed) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const ShuffleCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const std::vector<float> data = random_floats(size_t(k.x.elements()), seed++);
      const Shape4 y_shape = pixel_shuffle_output_shape(k.factor, k.x);
      auto op = [&](const Context& c, const TensorView& x, const TensorView& y) {
        pixel_shuffle_fwd(c, k.factor, x, y);
      };
      const std::vector<float> got = run_nhwc_op(exec_context(ec), dtype, k.x, k.x_placement, data,
                                                 y_shape, k.y_placement, op);
      const std::vector<float> want =
          run_nhwc_op(reference_context(), dtype, k.x, Placement{}, data, y_shape, Placement{}, op);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

class PixelShuffleKernel : public ::testing::TestWithParam<ExecCase> {};

// Factors 1..4 (the net uses 4), odd H/W, output channel counts 19, 13, 3, batch 1 and 3.
TEST_P(PixelShuffleKernel, MatchesReference) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(),
                           {
                               {Shape4{3, 5, 7, 19 * 16}, 4},
                               {Shape4{1, 3, 5, 13 * 4}, 2},
                               {Shape4{1, 4, 3, 3 * 9}, 3},
                               {Shape4{2, 3, 3, 6}, 1},
                           },
                           10);
}

// Shapes that split into several channel tiles (80 > 64 channels per tile) and pixel tiles (a
// 40-pixel row with a partial last tile).
TEST_P(PixelShuffleKernel, SeveralTilesPerRow) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(), {{Shape4{1, 2, 40, 80 * 4}, 2}}, 20);
}

// x and y as channel slices (odd offsets and strides).
TEST_P(PixelShuffleKernel, ChannelSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(),
                           {
                               {Shape4{3, 3, 5, 13 * 4}, 2, Placement{3, 61}, Placement{5, 21}},
                               {Shape4{1, 3, 3, 8 * 16}, 4, Placement{16, 160}, Placement{}},
                           },
                           30);
}

INSTANTIATE_TEST_SUITE_P(Executors, PixelShuffleKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

TEST(PixelShuffleArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  const Shape4 xs{1, 3, 5, 16};
  NhwcTestTensor x(ctx, DType::F32, xs);
  NhwcTestTensor y_ok(ctx, DType::F32, pixel_shuffle_output_shape(2, xs));
  NhwcTestTensor y_wrong(ctx, DType::F32, Shape4{1, 6, 10, 8});
  NhwcTestTensor y_fp16(ctx, DType::F16, pixel_shuffle_output_shape(2, xs));
  EXPECT_THROW(pixel_shuffle_fwd(ctx, 3, x.view(), y_ok.view()), Error);  // 16 % 9 != 0
  EXPECT_THROW(pixel_shuffle_fwd(ctx, 2, x.view(), y_wrong.view()), Error);
  EXPECT_THROW(pixel_shuffle_fwd(ctx, 2, x.view(), y_fp16.view()), Error);
  EXPECT_THROW(pixel_shuffle_fwd(ctx, 0, x.view(), y_ok.view()), Error);
}

}  // namespace
}  // namespace farsee::test
