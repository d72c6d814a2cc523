// pixel_unshuffle_fwd kernels (cpu, emu under two schedules, cuda when present) against the
// reference. An unshuffle is a copy, so every comparison is exact, random floats included.
#include "kernels/pixel_unshuffle.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct UnshuffleCase {
  Shape4 x;  // x.h, x.w multiples of factor
  int factor;
  Placement x_placement = {};
  Placement y_placement = {};
};

void expect_matches_reference(const ExecCase& ec, const std::vector<UnshuffleCase>& cases,
                              uint32_t seed) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const UnshuffleCase& k : cases) {
      std::ostringstream what;
      what << dtype_name(dtype) << " x " << to_string(k.x) << " factor " << k.factor << " x slice ["
           << k.x_placement.offset << " of " << k.x_placement.pixel_stride << "] y slice ["
           << k.y_placement.offset << " of " << k.y_placement.pixel_stride << "]";
      SCOPED_TRACE(what.str());
      const std::vector<float> data = random_floats(size_t(k.x.elements()), seed++);
      const Shape4 y_shape = pixel_unshuffle_output_shape(k.factor, k.x);
      auto op = [&](const Context& c, const TensorView& x, const TensorView& y) {
        pixel_unshuffle_fwd(c, k.factor, x, y);
      };
      const std::vector<float> got = run_nhwc_op(exec_context(ec), dtype, k.x, k.x_placement, data,
                                                 y_shape, k.y_placement, op);
      const std::vector<float> want =
          run_nhwc_op(reference_context(), dtype, k.x, Placement{}, data, y_shape, Placement{}, op);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

class PixelUnshuffleKernel : public ::testing::TestWithParam<ExecCase> {};

// Factors 1..4 (the net uses 4), odd H/W of the output, channel counts 19, 13, 3, batch 1 and 3.
TEST_P(PixelUnshuffleKernel, MatchesReference) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(),
                           {
                               {Shape4{3, 20, 12, 19}, 4},
                               {Shape4{1, 6, 10, 13}, 2},
                               {Shape4{1, 9, 3, 3}, 3},
                               {Shape4{2, 3, 3, 6}, 1},
                           },
                           40);
}

// x and y as channel slices (the net's x is a slice of the decoder concat gradient).
TEST_P(PixelUnshuffleKernel, ChannelSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches_reference(GetParam(),
                           {
                               {Shape4{3, 6, 10, 13}, 2, Placement{3, 21}, Placement{5, 61}},
                               {Shape4{1, 12, 12, 8}, 4, Placement{0, 38}, Placement{}},
                           },
                           50);
}

INSTANTIATE_TEST_SUITE_P(Executors, PixelUnshuffleKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

TEST(PixelUnshuffleArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  const Shape4 xs{1, 6, 10, 4};
  NhwcTestTensor x(ctx, DType::F32, xs);
  NhwcTestTensor y_ok(ctx, DType::F32, pixel_unshuffle_output_shape(2, xs));
  NhwcTestTensor y_wrong(ctx, DType::F32, Shape4{1, 3, 5, 8});
  NhwcTestTensor y_fp16(ctx, DType::F16, pixel_unshuffle_output_shape(2, xs));
  EXPECT_THROW(pixel_unshuffle_fwd(ctx, 4, x.view(), y_ok.view()), Error);  // 6 % 4 != 0
  EXPECT_THROW(pixel_unshuffle_fwd(ctx, 2, x.view(), y_wrong.view()), Error);
  EXPECT_THROW(pixel_unshuffle_fwd(ctx, 2, x.view(), y_fp16.view()), Error);
  EXPECT_THROW(pixel_unshuffle_fwd(ctx, 0, x.view(), y_ok.view()), Error);
}

}  // namespace
}  // namespace farsee::test
