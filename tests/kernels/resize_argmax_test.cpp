// resize_argmax_fwd kernels (cpu, emu under two schedules, cuda when present) against the
// reference.
#include "kernels/resize_argmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct ResizeCase {
  Shape4 logits;
  int out_h, out_w;
  bool align_corners;
  Placement placement = {};  // of the logits
};

std::string describe(DType dtype, const ResizeCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " logits " << to_string(k.logits) << " -> " << k.out_h << "x" << k.out_w
    << " align_corners " << k.align_corners << " slice [" << k.placement.offset << " of "
    << k.placement.pixel_stride << "]";
  return s.str();
}

std::vector<uint8_t> run(const Context& ctx, DType dtype, const ResizeCase& k, Placement placement,
                         const std::vector<float>& data) {
  NhwcTestTensor logits(ctx, dtype, k.logits, placement);
  logits.upload(data);
  const size_t count = size_t(k.logits.n) * k.out_h * k.out_w;
  rt::Buffer labels = poisoned_buffer(ctx, count);  // 255: never a valid label here (C <= 255)
  resize_argmax_fwd(ctx, k.align_corners, logits.view(), k.out_h, k.out_w, labels.as<uint8_t>());
  return to_host<uint8_t>(ctx, labels, count);
}

class ResizeArgmaxKernel : public ::testing::TestWithParam<ExecCase> {};

// Integer logits in [-8, 8] and scale factors that make every bilinear weight a multiple of 1/8
// (x2, x4, /2, /8, identity; align_corners (in-1)/(out-1) = 1/2, 1/4): every interpolated value is
// exact in fp32 in any evaluation order, so the labels must match the reference exactly. The many
// exact ties this creates check the lowest-index rule; there are no near-ties.
TEST_P(ResizeArgmaxKernel, ExactWithIntegerLogits) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const std::vector<ResizeCase> cases = {
      {Shape4{3, 9, 13, 19}, 36, 52, false},                    // x4, the net's case
      {Shape4{1, 9, 13, 13}, 18, 26, false},                    // x2
      {Shape4{1, 5, 7, 19}, 17, 25, true},                      // x4, align_corners
      {Shape4{3, 5, 7, 5}, 9, 13, true},                        // x2, align_corners
      {Shape4{1, 10, 14, 19}, 5, 7, false},                     // /2
      {Shape4{1, 40, 40, 6}, 5, 5, false},                      // /8: 1-row tiles
      {Shape4{1, 9, 13, 19}, 9, 13, false},                     // identity
      {Shape4{1, 9, 13, 19}, 9, 13, true},                      // identity
      {Shape4{1, 1, 1, 7}, 4, 4, false},                        // a single source pixel
      {Shape4{1, 3, 4, 255}, 6, 8, false},                      // 255 classes: the smallest tiles
      {Shape4{3, 9, 13, 19}, 18, 26, false, Placement{3, 24}},  // logits as a channel slice
      {Shape4{1, 5, 7, 13}, 9, 13, true, Placement{1, 14}},
  };
  uint32_t seed = 10;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const ResizeCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const std::vector<float> data = small_ints(size_t(k.logits.elements()), seed++, -8, 8);
      const std::vector<uint8_t> got = run(exec_context(GetParam()), dtype, k, k.placement, data);
      const std::vector<uint8_t> want = run(reference_context(), dtype, k, Placement{}, data);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

// PyTorch bilinear in double: the "true" interpolated logit, to measure near-ties.
double bilinear_double(const std::vector<float>& v, const Shape4& s, bool align_corners, int out_h,
                       int out_w, int n, int oy, int ox, int c) {
  auto tap = [&](int dst, int in, int out, int& i0, int& i1, double& l1) {
    double src;
    if (align_corners) {
      src = out > 1 ? double(in - 1) / (out - 1) * dst : 0.0;
    } else {
      src = std::max(double(in) / out * (dst + 0.5) - 0.5, 0.0);
    }
    i0 = std::min(int(src), in - 1);
    i1 = std::min(i0 + 1, in - 1);
    l1 = src - i0;
  };
  int y0, y1, x0, x1;
  double ly, lx;
  tap(oy, s.h, out_h, y0, y1, ly);
  tap(ox, s.w, out_w, x0, x1, lx);
  auto at = [&](int y, int x) { return double(v[((int64_t(n) * s.h + y) * s.w + x) * s.c + c]); };
  return (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
         ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
}

// Random float logits and arbitrary scale factors: interpolation weights are inexact, and the
// kernel's fp32 evaluation (fused multiply-adds, separable order) may differ from the reference's
// by an ulp. Where two classes are within that rounding of each other the argmax may flip, so a
// label may differ only where the two labels' exact (double) interpolated logits are within 1e-5
// of each other -- a near-tie, far above fp32 rounding (~1e-7) and far below typical margins --
// and such pixels must stay rare (at most 0.5 %; measured: none in these cases).
TEST_P(ResizeArgmaxKernel, RandomLogitsDifferOnlyAtNearTies) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const std::vector<ResizeCase> cases = {
      {Shape4{1, 9, 13, 19}, 20, 31, false},
      {Shape4{3, 7, 11, 19}, 32, 40, true},
      {Shape4{1, 16, 20, 13}, 7, 9, false},
  };
  uint32_t seed = 100;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const ResizeCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      std::vector<float> data = random_floats(size_t(k.logits.elements()), seed++, -4.0f, 4.0f);
      if (dtype == DType::F16) data = round_to_half(data);  // what both executors read
      const std::vector<uint8_t> got = run(exec_context(GetParam()), dtype, k, k.placement, data);
      const std::vector<uint8_t> want = run(reference_context(), dtype, k, Placement{}, data);
      ASSERT_EQ(got.size(), want.size());
      size_t near_ties = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) continue;
        const int ox = int(i % k.out_w), oy = int(i / k.out_w % k.out_h),
                  n = int(i / k.out_w / k.out_h);
        ASSERT_LT(got[i], k.logits.c) << "pixel " << i << " has an invalid (unwritten?) label";
        const double margin = std::fabs(
            bilinear_double(data, k.logits, k.align_corners, k.out_h, k.out_w, n, oy, ox, got[i]) -
            bilinear_double(data, k.logits, k.align_corners, k.out_h, k.out_w, n, oy, ox, want[i]));
        EXPECT_LT(margin, 1e-5) << "pixel " << i << ": label " << +got[i] << ", reference "
                                << +want[i] << " (not a near-tie)";
        ++near_ties;
      }
      EXPECT_LE(near_ties, got.size() / 200);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, ResizeArgmaxKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

TEST(ResizeArgmaxArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  NhwcTestTensor logits(ctx, DType::F32, Shape4{1, 3, 4, 19});
  NhwcTestTensor too_many_classes(ctx, DType::F32, Shape4{1, 3, 4, 256});
  std::vector<uint8_t> labels(6 * 8);
  EXPECT_THROW(resize_argmax_fwd(ctx, false, logits.view(), 0, 8, labels.data()), Error);
  EXPECT_THROW(resize_argmax_fwd(ctx, false, logits.view(), 6, -1, labels.data()), Error);
  EXPECT_THROW(resize_argmax_fwd(ctx, false, too_many_classes.view(), 6, 8, labels.data()), Error);
  EXPECT_THROW(resize_argmax_fwd(ctx, false, logits.view(), 6, 8, nullptr), Error);
}

}  // namespace
}  // namespace farsee::test
