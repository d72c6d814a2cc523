// resize_bilinear_bwd kernels (cpu, emu under two schedules, cuda when present) against the
// reference: upsampling x2/x4/x8 (both align_corners), equal size, downsampling, odd sizes, batch 1
// and 3, scalar channel counts, mixed storage dtypes, channel slices.
#include "kernels/resize_bwd.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct ResizeBwdCase {
  Shape4 dx;  // the forward's input
  int out_h, out_w;
  bool align_corners;
  Placement dy_placement = {};
  Placement dx_placement = {};
};

std::string describe(DType dy_type, DType dx_type, const ResizeBwdCase& k) {
  std::ostringstream s;
  s << "dy " << dtype_name(dy_type) << " dx " << dtype_name(dx_type) << " dx " << to_string(k.dx)
    << " <- " << k.out_h << "x" << k.out_w << " align_corners " << k.align_corners;
  return s.str();
}

std::vector<float> run(const Context& ctx, DType dy_type, DType dx_type, const ResizeBwdCase& k,
                       const std::vector<float>& dy, Placement dyp, Placement dxp) {
  NhwcTestTensor dyt(ctx, dy_type, Shape4{k.dx.n, k.out_h, k.out_w, k.dx.c}, dyp);
  dyt.upload(dy);
  NhwcTestTensor dxt(ctx, dx_type, k.dx, dxp);
  resize_bilinear_bwd(ctx, k.align_corners, dyt.view(), dxt.view());
  std::vector<float> out = dxt.download();
  EXPECT_TRUE(dxt.outside_untouched());
  return out;
}

// Kernel and reference use the same fp32 tap weights up to the reference's double source
// coordinate (an ulp of the coordinate, see kernels/reference/resize.h) and sum differently (fp32
// fma in (oy, ox) order vs double): with dy in [-1, 1] and up to ~(2 scale)^2 = 60 terms of
// rounding 0.5 ulp each, |error| <~ 60 * 2^-23 * |dx| -> atol 1e-5, rtol 1e-5 (measured worst:
// 8.8e-6 at |dx| = 2.9, the 17x161 case). fp16 dx: the fp32 sums may straddle an fp16 rounding
// boundary: one fp16 ulp (rtol 1e-3; measured worst 3.9e-3 at 5.75 = one ulp).
void expect_matches(const ExecCase& ec, const std::vector<ResizeBwdCase>& cases, uint32_t seed) {
  for (DType dy_type : {DType::F32, DType::F16}) {
    for (DType dx_type : {DType::F32, DType::F16}) {
      for (const ResizeBwdCase& k : cases) {
        SCOPED_TRACE(describe(dy_type, dx_type, k));
        const std::vector<float> dy =
            random_floats(size_t(k.dx.n) * k.out_h * k.out_w * k.dx.c, seed++);
        const std::vector<float> got =
            run(exec_context(ec), dy_type, dx_type, k, dy, k.dy_placement, k.dx_placement);
        const std::vector<float> want =
            run(reference_context(), dy_type, dx_type, k, dy, Placement{}, Placement{});
        EXPECT_TRUE(all_close(got, want, 1e-5, dx_type == DType::F32 ? 1e-5 : 1e-3));
      }
    }
  }
}

class ResizeBilinearBackwardKernel : public ::testing::TestWithParam<ExecCase> {};

TEST_P(ResizeBilinearBackwardKernel, UpsamplingFactors) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ResizeBwdCase> cases;
  for (bool ac : {false, true}) {
    cases.push_back({Shape4{3, 5, 7, 19}, 20, 28, ac});   // x4, odd, batch 3, C = 19
    cases.push_back({Shape4{1, 3, 5, 3}, 24, 40, ac});    // x8
    cases.push_back({Shape4{1, 6, 9, 4}, 12, 18, ac});    // x2
    cases.push_back({Shape4{1, 5, 40, 2}, 17, 161, ac});  // odd factor, > 1 column tile
  }
  expect_matches(GetParam(), cases, 10);
}

TEST_P(ResizeBilinearBackwardKernel, EqualAndDownsampling) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ResizeBwdCase> cases;
  for (bool ac : {false, true}) {
    cases.push_back({Shape4{1, 7, 6, 5}, 7, 6, ac});    // identity
    cases.push_back({Shape4{3, 13, 11, 3}, 5, 4, ac});  // downsampling
    cases.push_back({Shape4{1, 1, 4, 2}, 3, 1, ac});    // 1-wide output
  }
  expect_matches(GetParam(), cases, 20);
}

// Slices: aligned and odd offsets.
TEST_P(ResizeBilinearBackwardKernel, ChannelSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_matches(GetParam(),
                 {{Shape4{1, 4, 5, 8}, 16, 20, false, Placement{8, 24}, Placement{3, 13}},
                  {Shape4{3, 4, 3, 5}, 9, 7, true, Placement{1, 7}, Placement{2, 9}}},
                 30);
}

INSTANTIATE_TEST_SUITE_P(Executors, ResizeBilinearBackwardKernel,
                         ::testing::ValuesIn(kernel_exec_cases()), ExecCaseName());

}  // namespace
}  // namespace farsee::test
