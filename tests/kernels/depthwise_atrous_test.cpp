// depthwise_atrous_fwd kernels (cpu, emu under two schedules, cuda when present) against the
// reference.
#include "kernels/depthwise_atrous.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct DepthwiseCase {
  Shape4 x;
  DepthwiseParams params;
  Placement x_placement = {};  // default: dense
  Placement y_placement = {};
};

struct DepthwiseData {
  std::vector<float> x, weight, scale, bias;  // empty scale / bias: passed as null
};

// Small integers (x in [-3, 3], w in [-2, 2], scale in {-1, -0.5, 0.5, 1, 1.5}, bias in [-4, 4]):
// every product and sum is exact in fp32, and every result (|y| <= 85.5, multiples of 0.5) is
// exact in fp16, so kernel and reference must agree bit for bit in both storage types.
DepthwiseData small_int_data(const Shape4& x, uint32_t seed) {
  DepthwiseData d;
  d.x = small_ints(size_t(x.elements()), seed, -3, 3);
  d.weight = small_ints(size_t(x.c) * 9, seed + 1, -2, 2);
  d.scale = small_ints(size_t(x.c), seed + 2, -2, 3);
  for (auto& s : d.scale) s = s == 0 ? 1.0f : 0.5f * s;
  d.bias = small_ints(size_t(x.c), seed + 3, -4, 4);
  return d;
}

DepthwiseData random_data(const Shape4& x, uint32_t seed) {
  DepthwiseData d;
  d.x = random_floats(size_t(x.elements()), seed);
  d.weight = random_floats(size_t(x.c) * 9, seed + 1);
  d.scale = random_floats(size_t(x.c), seed + 2, 0.5f, 1.5f);
  d.bias = random_floats(size_t(x.c), seed + 3, -0.5f, 0.5f);
  return d;
}

struct Outputs {
  std::vector<float> got, want;
};

// Runs the op on `ctx` with the case's placements, and on the reference (dense), from the same
// fp32 data (rounded to fp16 on upload for F16).
Outputs run_case(const Context& ctx, DType dtype, const DepthwiseCase& k, const DepthwiseData& d) {
  const Shape4 y_shape = depthwise_atrous_output_shape(k.params, k.x);
  auto op = [&](const Context& c, const TensorView& x, const TensorView& y) {
    rt::Buffer weight = to_executor(c, d.weight);
    rt::Buffer scale = to_executor(c, d.scale);
    rt::Buffer bias = to_executor(c, d.bias);
    depthwise_atrous_fwd(c, k.params, x, weight.as<float>(),
                         d.scale.empty() ? nullptr : scale.as<float>(),
                         d.bias.empty() ? nullptr : bias.as<float>(), y);
  };
  Outputs o;
  o.got = run_nhwc_op(ctx, dtype, k.x, k.x_placement, d.x, y_shape, k.y_placement, op);
  o.want = run_nhwc_op(reference_context(), dtype, k.x, Placement{}, d.x, y_shape, Placement{}, op);
  return o;
}

std::string describe(DType dtype, const DepthwiseCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " x " << to_string(k.x) << " stride " << k.params.stride << " dilation "
    << k.params.dilation << " relu " << k.params.relu << " x slice [" << k.x_placement.offset
    << " of " << k.x_placement.pixel_stride << "] y slice [" << k.y_placement.offset << " of "
    << k.y_placement.pixel_stride << "]";
  return s.str();
}

void expect_exact(const ExecCase& ec, const std::vector<DepthwiseCase>& cases, uint32_t seed) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const DepthwiseCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Outputs o = run_case(exec_context(ec), dtype, k, small_int_data(k.x, seed++));
      EXPECT_TRUE(all_equal(o.got, o.want));
    }
  }
}

class DepthwiseAtrousKernel : public ::testing::TestWithParam<ExecCase> {};

// C = 19 (scalar path), odd H/W, batch 3: every rate of the net, both strides.
TEST_P(DepthwiseAtrousKernel, ExactAllRatesAndStridesScalarPath) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<DepthwiseCase> cases;
  for (int dilation : {1, 2, 6, 12, 18}) {
    for (int stride : {1, 2}) {
      cases.push_back({Shape4{3, 9, 13, 19}, DepthwiseParams{stride, dilation, stride == 1}});
    }
  }
  expect_exact(GetParam(), cases, 100);
}

// C = 32: 16-byte packs (4 floats, 8 halves); a 19x25 map so rates 12 and 18 reach real pixels.
TEST_P(DepthwiseAtrousKernel, ExactVectorPath) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<DepthwiseCase> cases;
  for (int dilation : {1, 2, 6, 12, 18}) {
    cases.push_back({Shape4{1, 19, 25, 32}, DepthwiseParams{1, dilation, dilation != 6}});
  }
  cases.push_back({Shape4{3, 7, 11, 16}, DepthwiseParams{2, 1, true}});
  expect_exact(GetParam(), cases, 200);
}

// A map large enough that each thread walks several pixels (pixel_channel_launch() switches to
// 4 pixels per thread once the grid has >= 256 blocks): covers the grid-stride loop.
TEST_P(DepthwiseAtrousKernel, ExactSeveralPixelsPerThread) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_exact(GetParam(), {{Shape4{3, 72, 64, 19}, DepthwiseParams{1, 12, true}}}, 250);
}

// x and y as channel slices of wider buffers (the F-ASPP concat): aligned slices keep the vector
// path, an odd offset forces the scalar path; nothing outside y's slice may be written.
TEST_P(DepthwiseAtrousKernel, ExactChannelSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_exact(
      GetParam(),
      {
          {Shape4{3, 9, 13, 24}, DepthwiseParams{1, 6, true}, Placement{8, 48}, Placement{16, 40}},
          {Shape4{1, 9, 13, 13}, DepthwiseParams{2, 2, false}, Placement{3, 29}, Placement{5, 24}},
          {Shape4{1, 8, 10, 16}, DepthwiseParams{1, 12, true}, Placement{}, Placement{4, 20}},
      },
      300);
}

// scale = null means 1, bias = null means 0.
TEST_P(DepthwiseAtrousKernel, ExactWithoutScaleAndBias) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  for (DType dtype : {DType::F32, DType::F16}) {
    const DepthwiseCase k{Shape4{1, 9, 13, 19}, DepthwiseParams{1, 2, false}};
    SCOPED_TRACE(describe(dtype, k));
    DepthwiseData d = small_int_data(k.x, 400);
    d.scale.clear();
    d.bias.clear();
    const Outputs o = run_case(exec_context(GetParam()), dtype, k, d);
    EXPECT_TRUE(all_equal(o.got, o.want));
  }
}

// Random floats: kernel and reference differ only in rounding. The kernel accumulates in fp32
// with fused multiply-adds and applies scale/bias with one fma; the reference accumulates in fp32
// in its own order and applies scale/bias in double. fp32: measured max error 4.8e-7 at |y| = 3.35
// (2 ulps) -> atol 1e-6 + rtol 1e-6 (~9x headroom). fp16: both round their fp32 result once, so
// they can differ only where the fp32 values straddle a rounding boundary: one fp16 ulp,
// <= 2^-10 |y| (+ 2^-24 near 0) -> rtol 1e-3, atol 1e-6 (measured: identical on these cases).
TEST_P(DepthwiseAtrousKernel, RandomFloatsWithinTolerance) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const std::vector<DepthwiseCase> cases = {
      {Shape4{2, 10, 12, 40}, DepthwiseParams{1, 2, true}},
      {Shape4{1, 11, 9, 19}, DepthwiseParams{2, 6, false}},
  };
  uint32_t seed = 500;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const DepthwiseCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Outputs o = run_case(exec_context(GetParam()), dtype, k, random_data(k.x, seed++));
      if (dtype == DType::F32) {
        EXPECT_TRUE(all_close(o.got, o.want, 1e-6, 1e-6));
      } else {
        EXPECT_TRUE(all_close(o.got, o.want, 1e-6, 1e-3));
      }
    }
  }
}

// The F-ASPP layout (graph.h): one buffer [pw_1 pw_2 pw_3 | branch0 | dw_1 dw_2 dw_3] of width
// wd slices; branch i reads pw_i and writes dw_i at its own rate, weights, scale and bias. The
// three branches in ONE launch (depthwise_atrous_branches_fwd) against three launches of
// depthwise_atrous_fwd on the same executor: bitwise equal (same per-element fma chain), random
// floats; the reference's single op checks the values too (small integers: exact). wd = 16:
// 16-byte packs; wd = 19: the scalar path (odd slice offsets). Nothing outside dw_1..dw_3 is
// written (the other slices keep their input values or the poison).
std::vector<float> run_branches(const Context& c, DType dtype, const Shape4& block,
                                const std::vector<float>& block_values,
                                const std::vector<DepthwiseData>& d, bool one_launch) {
  const int wd = block.c / 7;
  NhwcTestTensor buffer(c, dtype, block);
  buffer.upload(block_values);
  std::vector<rt::Buffer> params;
  DepthwiseBranches b;
  b.count = 3;
  for (int i = 0; i < 3; ++i) {
    params.push_back(to_executor(c, d[size_t(i)].weight));
    params.push_back(to_executor(c, d[size_t(i)].scale));
    params.push_back(to_executor(c, d[size_t(i)].bias));
    b.branch[i] = DepthwiseBranch{i == 0 ? 2 : 6 * i,
                                  channel_slice(buffer.view(), i * wd, wd),
                                  channel_slice(buffer.view(), (4 + i) * wd, wd),
                                  params[size_t(3 * i)].as<float>(),
                                  params[size_t(3 * i + 1)].as<float>(),
                                  params[size_t(3 * i + 2)].as<float>()};
  }
  if (one_launch) {
    depthwise_atrous_branches_fwd(c, b);
  } else {
    for (int i = 0; i < 3; ++i) {
      const DepthwiseBranch& br = b.branch[i];
      depthwise_atrous_fwd(c, b.params(i), br.x, br.weight, br.scale, br.bias, br.y);
    }
  }
  return buffer.download();
}

TEST_P(DepthwiseAtrousKernel, FaspBranchesInOneLaunch) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const Context ctx = exec_context(GetParam());
  for (int wd : {16, 19}) {
    const Shape4 block{2, 11, 13, 7 * wd};
    for (DType dtype : {DType::F32, DType::F16}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " branch width " + std::to_string(wd));
      const Shape4 branch{block.n, block.h, block.w, wd};
      std::vector<DepthwiseData> ints, floats;
      for (int i = 0; i < 3; ++i) {
        ints.push_back(small_int_data(branch, 900 + 10 * i));
        floats.push_back(random_data(branch, 950 + 10 * i));
      }
      const std::vector<float> int_block = small_ints(size_t(block.elements()), 990, -3, 3);
      EXPECT_TRUE(
          all_equal(run_branches(ctx, dtype, block, int_block, ints, true),
                    run_branches(reference_context(), dtype, block, int_block, ints, false)));
      const std::vector<float> float_block = random_floats(size_t(block.elements()), 991);
      EXPECT_TRUE(all_equal(run_branches(ctx, dtype, block, float_block, floats, true),
                            run_branches(ctx, dtype, block, float_block, floats, false)));
    }
  }
}

TEST(DepthwiseAtrousBranches, RejectsMismatchedBranches) {
  const Context ctx = reference_context();
  NhwcTestTensor a(ctx, DType::F32, Shape4{1, 5, 5, 8}), b(ctx, DType::F32, Shape4{1, 5, 6, 8});
  std::vector<float> w(8 * 9, 1.0f);
  DepthwiseBranches br;
  br.count = 2;
  br.branch[0] = DepthwiseBranch{1, a.view(), a.view(), w.data()};
  br.branch[1] = DepthwiseBranch{2, b.view(), b.view(), w.data()};  // another shape
  EXPECT_THROW(depthwise_atrous_branches_fwd(ctx, br), Error);
  br.count = 0;
  EXPECT_THROW(depthwise_atrous_branches_fwd(ctx, br), Error);
  br.count = kMaxDepthwiseBranches + 1;
  EXPECT_THROW(depthwise_atrous_branches_fwd(ctx, br), Error);
}

INSTANTIATE_TEST_SUITE_P(Executors, DepthwiseAtrousKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

// ---- depthwise_atrous_bwd_data / depthwise_atrous_bwd_weight ----

struct BwdOutputs {
  std::vector<float> dx, dw;
};

// Runs both backward ops on ctx: dy and x placed as the case's y and x placements, dx as x's
// placement (shifted); dx starts poisoned (or holds dx0 when accumulating), dw holds dw0, the
// workspace starts poisoned.
BwdOutputs run_bwd(const Context& ctx, DType dtype, const DepthwiseCase& k,
                   const std::vector<float>& x, const std::vector<float>& dy,
                   const std::vector<float>& w, const std::vector<float>& dw0,
                   const std::vector<float>* dx0) {
  const Shape4 ys = depthwise_atrous_output_shape(k.params, k.x);
  NhwcTestTensor xt(ctx, dtype, k.x, k.x_placement);
  xt.upload(x);
  NhwcTestTensor dyt(ctx, dtype, ys, k.y_placement);
  dyt.upload(dy);
  NhwcTestTensor dxt(ctx, dtype, k.x, k.x_placement);
  if (dx0) dxt.upload(*dx0);
  rt::Buffer wb = to_executor(ctx, w);
  rt::Buffer dwb = to_executor(ctx, dw0);
  const size_t ws_bytes = depthwise_atrous_bwd_weight_workspace_bytes(k.params, k.x);
  rt::Buffer ws = poisoned_buffer(ctx, ws_bytes);
  depthwise_atrous_bwd_data(ctx, k.params, dyt.view(), wb.as<float>(), dxt.view(), dx0 != nullptr);
  depthwise_atrous_bwd_weight(ctx, k.params, xt.view(), dyt.view(), dwb.as<float>(), ws.data(),
                              ws_bytes);
  BwdOutputs o;
  o.dx = dxt.download();
  EXPECT_TRUE(dxt.outside_untouched());
  o.dw = to_host<float>(ctx, dwb, dw0.size());
  return o;
}

// Small integers (x, dy in [-3, 3], w in [-2, 2], dx0 and dw0 in [-4, 4]): every sum is exact in
// fp32 and every dx (|dx| <= 58) exact in fp16, so kernel and reference agree bit for bit.
void expect_bwd_exact(const ExecCase& ec, const std::vector<DepthwiseCase>& cases, uint32_t seed,
                      bool accumulate) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const DepthwiseCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k) + (accumulate ? " accumulate" : ""));
      const Shape4 ys = depthwise_atrous_output_shape(k.params, k.x);
      const std::vector<float> x = small_ints(size_t(k.x.elements()), seed++, -3, 3);
      const std::vector<float> dy = small_ints(size_t(ys.elements()), seed++, -3, 3);
      const std::vector<float> w = small_ints(size_t(k.x.c) * 9, seed++, -2, 2);
      const std::vector<float> dw0 = small_ints(size_t(k.x.c) * 9, seed++, -4, 4);
      const std::vector<float> dx0 = small_ints(size_t(k.x.elements()), seed++, -4, 4);
      const BwdOutputs got =
          run_bwd(exec_context(ec), dtype, k, x, dy, w, dw0, accumulate ? &dx0 : nullptr);
      const BwdOutputs want = run_bwd(reference_context(), dtype, DepthwiseCase{k.x, k.params}, x,
                                      dy, w, dw0, accumulate ? &dx0 : nullptr);
      EXPECT_TRUE(all_equal(got.dx, want.dx));
      EXPECT_TRUE(all_equal(got.dw, want.dw));
    }
  }
}

class DepthwiseAtrousBackwardKernel : public ::testing::TestWithParam<ExecCase> {};

// Every rate of the net with both strides, scalar path (C = 19, odd H/W, batch 3) and vector path
// (C = 16 / 32), slices with aligned and odd offsets.
TEST_P(DepthwiseAtrousBackwardKernel, ExactRatesStridesPaths) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<DepthwiseCase> cases;
  for (int dilation : {1, 2, 6, 12}) {
    for (int stride : {1, 2}) {
      cases.push_back({Shape4{3, 9, 13, 19}, DepthwiseParams{stride, dilation, false}});
    }
  }
  cases.push_back({Shape4{1, 19, 25, 32}, DepthwiseParams{1, 12, false}});
  cases.push_back({Shape4{1, 10, 11, 16}, DepthwiseParams{2, 2, false}});
  cases.push_back(
      {Shape4{3, 9, 13, 24}, DepthwiseParams{1, 6, false}, Placement{8, 48}, Placement{16, 40}});
  cases.push_back(
      {Shape4{1, 9, 13, 13}, DepthwiseParams{2, 2, false}, Placement{3, 29}, Placement{5, 24}});
  expect_bwd_exact(GetParam(), cases, 800, false);
}

// accumulate = true adds onto dx; a map with more than one pixel per weight-gradient lane and
// several pixels per thread (grid-stride loops).
TEST_P(DepthwiseAtrousBackwardKernel, ExactAccumulateAndLargerMap) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_bwd_exact(GetParam(),
                   {{Shape4{1, 9, 13, 19}, DepthwiseParams{1, 2, false}},
                    {Shape4{3, 72, 64, 8}, DepthwiseParams{1, 6, false}}},
                   900, true);
}

// Random floats. dx: at most 9 fp32 fmas vs the reference's double sum: measured errors are a
// few ulp of |dx| <~ 3: atol 2e-6, rtol 1e-6. dw: fp32 lane sums of ~30 products, then ~300 lanes
// in order, vs double: |dw| ~ 10, error ~ 1e-6 relative: atol 1e-5, rtol 1e-5. fp16: inputs exact
// in both, the outputs may differ by one fp16 ulp (rtol 1e-3); dw stays fp32.
TEST_P(DepthwiseAtrousBackwardKernel, RandomFloatsWithinTolerance) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const std::vector<DepthwiseCase> cases = {{Shape4{2, 10, 12, 40}, DepthwiseParams{1, 2, false}},
                                            {Shape4{1, 11, 9, 19}, DepthwiseParams{2, 6, false}}};
  uint32_t seed = 1000;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const DepthwiseCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Shape4 ys = depthwise_atrous_output_shape(k.params, k.x);
      const std::vector<float> x = random_floats(size_t(k.x.elements()), seed++);
      const std::vector<float> dy = random_floats(size_t(ys.elements()), seed++);
      const std::vector<float> w = random_floats(size_t(k.x.c) * 9, seed++);
      const std::vector<float> dw0(size_t(k.x.c) * 9, 0.0f);
      const BwdOutputs got = run_bwd(exec_context(GetParam()), dtype, k, x, dy, w, dw0, nullptr);
      const BwdOutputs want = run_bwd(reference_context(), dtype, k, x, dy, w, dw0, nullptr);
      EXPECT_TRUE(all_close(got.dx, want.dx, 2e-6, dtype == DType::F32 ? 1e-6 : 1e-3));
      EXPECT_TRUE(all_close(got.dw, want.dw, 1e-5, 1e-5));
    }
  }
}

// Run to run: the weight gradient (a reduction) is bitwise identical.
TEST_P(DepthwiseAtrousBackwardKernel, WeightGradientBitwiseReproducible) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  const DepthwiseCase k{Shape4{2, 33, 29, 19}, DepthwiseParams{1, 2, false}};
  const Shape4 ys = depthwise_atrous_output_shape(k.params, k.x);
  const std::vector<float> x = random_floats(size_t(k.x.elements()), 1100);
  const std::vector<float> dy = random_floats(size_t(ys.elements()), 1101);
  const std::vector<float> w = random_floats(size_t(k.x.c) * 9, 1102);
  const std::vector<float> dw0(size_t(k.x.c) * 9, 0.0f);
  const BwdOutputs a = run_bwd(exec_context(GetParam()), DType::F32, k, x, dy, w, dw0, nullptr);
  const BwdOutputs b = run_bwd(exec_context(GetParam()), DType::F32, k, x, dy, w, dw0, nullptr);
  EXPECT_TRUE(all_equal(a.dw, b.dw));
  EXPECT_TRUE(all_equal(a.dx, b.dx));
}

INSTANTIATE_TEST_SUITE_P(Executors, DepthwiseAtrousBackwardKernel,
                         ::testing::ValuesIn(kernel_exec_cases()), ExecCaseName());

TEST(DepthwiseAtrousArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  const Shape4 xs{1, 9, 13, 8};
  NhwcTestTensor x(ctx, DType::F32, xs);
  std::vector<float> weight(8 * 9, 1.0f);
  const DepthwiseParams stride2{2, 6, true};
  NhwcTestTensor y_for_stride1(ctx, DType::F32, xs);
  NhwcTestTensor y_fp16(ctx, DType::F16, depthwise_atrous_output_shape(stride2, xs));
  NhwcTestTensor y_ok(ctx, DType::F32, depthwise_atrous_output_shape(stride2, xs));
  // y shaped for stride 1 while stride is 2
  EXPECT_THROW(depthwise_atrous_fwd(ctx, stride2, x.view(), weight.data(), nullptr, nullptr,
                                    y_for_stride1.view()),
               Error);
  // y in fp16 while x is fp32
  EXPECT_THROW(
      depthwise_atrous_fwd(ctx, stride2, x.view(), weight.data(), nullptr, nullptr, y_fp16.view()),
      Error);
  // no weights
  EXPECT_THROW(depthwise_atrous_fwd(ctx, stride2, x.view(), nullptr, nullptr, nullptr, y_ok.view()),
               Error);
  // stride 0 and dilation 0
  EXPECT_THROW(depthwise_atrous_fwd(ctx, DepthwiseParams{0, 1, true}, x.view(), weight.data(),
                                    nullptr, nullptr, y_ok.view()),
               Error);
  EXPECT_THROW(depthwise_atrous_fwd(ctx, DepthwiseParams{1, 0, true}, x.view(), weight.data(),
                                    nullptr, nullptr, y_for_stride1.view()),
               Error);
}

}  // namespace
}  // namespace farsee::test
