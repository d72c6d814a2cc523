// conv_bwd_data / conv_bwd_weight kernels (cpu, emu under two schedules, cuda when present) against
// the reference executor, through the public entry points: every conv shape class of both presets
// at reduced size (7x7/s2 stem on 3 channels, 3x3 s1/s2, 1x1 s1/s2, dilation 2), fp32 and fp16
// storage, pixel-shuffled dy (t = 2, 4), accumulate, channel slices, forced tiles, dgrad split-K
// and wgrad reduction splits, weight re-packing (alloc/refresh), determinism, bad arguments; tf32
// (both ops: exact on small integers, tolerances vs the tf32 and the strict reference).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/conv_bn_act.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/split_k_counters.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct BwdCase {
  Shape4 x;
  int K = 8;
  int kernel = 1, stride = 1, dilation = 1;
  int shuffle = 1;
  bool accumulate = false;  // dgrad: dx += (dx starts from data)
  bool bias = true;         // wgrad: db != null
  Placement x_place = {}, dy_place = {}, dx_place = {};
  ConvTile tile = ConvTile::Auto;
  int split_k = 0;       // dgrad (0: heuristic without workspace = none)
  int wgrad_splits = 0;  // 0: heuristic with the workspace conv_bwd_weight_workspace_bytes gives
  bool tf32 = false;     // ConvOptions::tf32 / ConvWgradOptions::tf32, executor and reference
};

ConvShape geometry(const BwdCase& k) {
  return square_conv(k.kernel, k.stride, k.dilation);
}
Shape4 dy_shape(const BwdCase& k) {
  const ConvShape c = geometry(k);
  const int t = k.shuffle;
  return Shape4{k.x.n, c.out_h(k.x.h) * t, c.out_w(k.x.w) * t, k.K / (t * t)};
}
size_t weight_count(const BwdCase& k) {
  return size_t(k.K) * k.kernel * k.kernel * k.x.c;
}

struct BwdData {
  std::vector<float> x, w, dy, dx0, dw0, db0;
};

// Small integers (x, dy, dx0 in [-3, 3], w in [-2, 2], dw0, db0 in [-4, 4]): every product and
// partial sum is an integer far below 2^24, so fp32 accumulation is exact in any order and split,
// and kernel and reference round the same exact value to the output dtype: bitwise equality in
// fp32 and fp16.
BwdData small_int_data(const BwdCase& k, uint32_t seed) {
  BwdData d;
  d.x = small_ints(size_t(k.x.elements()), seed, -3, 3);
  d.w = small_ints(weight_count(k), seed + 1, -2, 2);
  d.dy = small_ints(size_t(dy_shape(k).elements()), seed + 2, -3, 3);
  d.dx0 = small_ints(size_t(k.x.elements()), seed + 3, -3, 3);
  d.dw0 = small_ints(weight_count(k), seed + 4, -4, 4);
  d.db0 = small_ints(size_t(k.K), seed + 5, -4, 4);
  return d;
}

BwdData random_data(const BwdCase& k, uint32_t seed) {
  BwdData d;
  d.x = random_floats(size_t(k.x.elements()), seed);
  d.w = random_floats(weight_count(k), seed + 1);
  d.dy = random_floats(size_t(dy_shape(k).elements()), seed + 2);
  d.dx0 = random_floats(size_t(k.x.elements()), seed + 3);
  d.dw0 = random_floats(weight_count(k), seed + 4);
  d.db0 = random_floats(size_t(k.K), seed + 5);
  return d;
}

struct Grads {
  std::vector<float> dx, dw, db;
};

// Runs both backward ops on `ctx` (with the case's placements and forced configuration when
// as_case) from the same fp32 data (rounded to fp16 on upload for F16).
Grads run_backward(const Context& c, DType dtype, const BwdCase& k, const BwdData& d,
                   bool as_case) {
  const Placement none{};
  const ConvShape conv = geometry(k);
  Grads g;
  {  // dgrad
    ConvWeights w =
        alloc_conv_weights(c, k.K, k.kernel, k.kernel, k.x.c, dtype, ConvWeightUse::BackwardData);
    rt::Buffer master = to_executor(c, d.w);
    refresh_conv_weights(c, master.as<float>(), w);
    NhwcTestTensor dy(c, dtype, dy_shape(k), as_case ? k.dy_place : none);
    dy.upload(d.dy);
    NhwcTestTensor dx(c, dtype, k.x, as_case ? k.dx_place : none);
    if (k.accumulate) dx.upload(d.dx0);
    ConvOptions options;
    options.tf32 = k.tf32;
    rt::Buffer workspace;
    SplitKCounters counters(c, k.x.pixels(), k.x.c);
    if (as_case) {
      options.tile = k.tile;
      options.split_k = k.split_k;
      if (k.split_k > 1) {
        options.workspace_bytes = size_t(k.split_k) * k.x.elements() * sizeof(float);
        workspace = poisoned_buffer(c, options.workspace_bytes);
        options.workspace = workspace.data();
        counters.attach(options);
      }
    }
    conv_bwd_data(c, conv, dy.view(), k.shuffle, w, dx.view(), k.accumulate, options);
    g.dx = dx.download();
    if (as_case) {
      EXPECT_TRUE(dx.outside_untouched());
      EXPECT_TRUE(counters.all_zero(c)) << "split-K tile counters not reset";
    }
  }
  {  // wgrad
    NhwcTestTensor x(c, dtype, k.x, as_case ? k.x_place : none);
    x.upload(d.x);
    NhwcTestTensor dy(c, dtype, dy_shape(k), as_case ? k.dy_place : none);
    dy.upload(d.dy);
    rt::Buffer dw = to_executor(c, d.dw0), db = to_executor(c, d.db0);
    const int splits = as_case ? k.wgrad_splits : 0;
    size_t bytes = conv_bwd_weight_workspace_bytes(conv, k.K, k.x);
    if (splits > 1) bytes = size_t(splits) * (weight_count(k) + k.K) * sizeof(float);
    rt::Buffer workspace = poisoned_buffer(c, bytes + 4);
    // Counters for any split: one per 64x64 tile of dw [K][R*S*C], one per 32 channels of db.
    SplitKCounters counters(c, k.K, int(weight_count(k) / size_t(k.K)) + 64 * 2);
    ConvWgradOptions options;
    options.workspace = workspace.data();
    options.workspace_bytes = bytes;
    options.splits = splits;
    options.tf32 = k.tf32;
    if (as_case) counters.attach_to(options);
    conv_bwd_weight(c, conv, x.view(), dy.view(), k.shuffle, dw.as<float>(),
                    k.bias ? db.as<float>() : nullptr, options);
    g.dw = to_host<float>(c, dw, weight_count(k));
    g.db = to_host<float>(c, db, size_t(k.K));
    if (as_case) {
      EXPECT_TRUE(counters.all_zero(c)) << "wgrad split tile counters not reset";
    }
  }
  return g;
}

struct Outputs {
  Grads got, want;
};
Outputs run_case(const Context& ctx, DType dtype, const BwdCase& k, const BwdData& d) {
  return Outputs{run_backward(ctx, dtype, k, d, true),
                 run_backward(Context{Executor::Reference, nullptr}, dtype, k, d, false)};
}

std::string describe(DType dtype, const BwdCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " x " << to_string(k.x) << " K " << k.K << " " << k.kernel << "x"
    << k.kernel << "/s" << k.stride << "/d" << k.dilation << " shuffle " << k.shuffle
    << " accumulate " << k.accumulate << " bias " << k.bias << " x slice [" << k.x_place.offset
    << " of " << k.x_place.pixel_stride << "] dy slice [" << k.dy_place.offset << " of "
    << k.dy_place.pixel_stride << "] dx slice [" << k.dx_place.offset << " of "
    << k.dx_place.pixel_stride << "] tile " << conv_tile_name(k.tile) << " split_k " << k.split_k
    << " wgrad splits " << k.wgrad_splits << " tf32 " << k.tf32;
  return s.str();
}

void expect_exact(const ExecCase& ec, const std::vector<BwdCase>& cases, uint32_t seed,
                  std::vector<DType> dtypes = {DType::F32, DType::F16}) {
  for (DType dtype : dtypes) {
    for (const BwdCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Outputs o = run_case(exec_context(ec), dtype, k, small_int_data(k, seed++));
      EXPECT_TRUE(all_equal(o.got.dx, o.want.dx)) << "dx";
      EXPECT_TRUE(all_equal(o.got.dw, o.want.dw)) << "dw";
      EXPECT_TRUE(all_equal(o.got.db, o.want.db)) << "db";
    }
  }
}

class ConvBackwardKernel : public ::testing::TestWithParam<ExecCase> {};

// The 7x7/s2/p3 stem on 3 input channels (dgrad fp16: the gather loader over 3 channels of dy's
// K; wgrad: 147 reduction columns), odd H/W; a 3x3 on 3 channels, batch 3.
TEST_P(ConvBackwardKernel, ExactStemSmallChannels) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_exact(GetParam(),
               {
                   {Shape4{1, 13, 11, 3}, 16, 7, 2},
                   {Shape4{3, 5, 7, 3}, 8, 3, 1},
               },
               100);
}

// 3x3 stride 1 and 2, dilation 2 (dgrad's valid-tap condition at stride 2), C and K not multiples
// of the tiles (C = 40, K = 24), odd H/W, batch 3.
TEST_P(ConvBackwardKernel, Exact3x3StridesAndDilation) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_exact(GetParam(),
               {
                   {Shape4{3, 5, 7, 16}, 24, 3, 1},
                   {Shape4{1, 9, 7, 32}, 40, 3, 2},
                   {Shape4{1, 7, 6, 40}, 24, 3, 1},
                   {Shape4{1, 9, 8, 24}, 8, 3, 1, 2},
               },
               200);
}

// 1x1 stride 1 and 2 (stride 2: dx is zero at 3 of 4 pixels).
TEST_P(ConvBackwardKernel, Exact1x1) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  expect_exact(GetParam(),
               {
                   {Shape4{1, 6, 5, 40}, 24, 1, 1},
                   {Shape4{2, 7, 9, 16}, 32, 1, 2},
               },
               300);
}

// dy of a pixel-shuffled conv output (the sub-pixel convs: t = 2 and 4, and a 3x3 with t = 2),
// read through the mapping in both ops (fp16 dgrad: the gather loader; fp16 wgrad: SIMT when
// dy's stored channel count is not a multiple of 8, else tensor cores); dy as a channel slice.
TEST_P(ConvBackwardKernel, ExactPixelShuffledOutputGradient) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  BwdCase t2{Shape4{1, 4, 5, 16}, 32, 1, 1};
  t2.shuffle = 2;
  BwdCase t4{Shape4{2, 3, 2, 8}, 64, 1, 1};
  t4.shuffle = 4;
  BwdCase t2_3x3{Shape4{1, 5, 4, 8}, 16, 3, 1};
  t2_3x3.shuffle = 2;
  t2_3x3.dy_place = Placement{3, 9};
  // fp16 wgrad on tensor cores with a shuffled dy (stored channels % 8 == 0): rows permuted to
  // (i, j, c) order; K/t^2 = 8 (one chunk per sub-position) and 16 (two).
  BwdCase t4_mma{Shape4{1, 3, 4, 16}, 128, 1, 1};
  t4_mma.shuffle = 4;
  BwdCase t2_mma{Shape4{2, 4, 3, 8}, 64, 1, 1};
  t2_mma.shuffle = 2;
  expect_exact(GetParam(), {t2, t4, t2_3x3, t4_mma, t2_mma}, 400);
}

// The cpu executor's split of the deep layers' backward (kernels/cpu/conv_bn_act.cpp), above the
// threading threshold: dgrad cut into input-channel blocks (a 3x3 s1 on an 8x8 map, 256 -> 256,
// accumulating into a dx slice; a 3x3 s2 with its 4 stride phases), wgrad into one tap per column
// block (one segment) and output-channel blocks (8 of 128 for the 1x1 ASPP class conv, 512 ->
// 1024), and a x4-shuffled dy read per channel block (the same conv as up1). cpu only, not
// instantiated for the other executors (they plan their own tiles).
TEST(ConvBackwardCpu, ExactWorkSplits) {
  const ExecCase cpu{Executor::Cpu, emu::Schedule::RoundRobin};
  BwdCase deep{Shape4{1, 8, 8, 256}, 256, 3, 1};
  deep.accumulate = true;
  deep.dx_place = Placement{8, 272};
  BwdCase strided{Shape4{1, 16, 16, 128}, 256, 3, 2};
  BwdCase pointwise{Shape4{2, 8, 8, 512}, 1024, 1, 1};
  BwdCase up = pointwise;
  up.shuffle = 4;
  expect_exact(cpu, {deep, strided, pointwise, up}, 660, {DType::F32});
}

// accumulate (dx +=), dw/db += from non-zero values, no db, x / dy / dx as channel slices
// (aligned: fp16 cp.async loader and 16-byte stores; odd: gather loader and element stores).
TEST_P(ConvBackwardKernel, ExactAccumulateAndSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  BwdCase base{Shape4{1, 7, 6, 16}, 24, 3, 1};
  BwdCase acc = base;
  acc.accumulate = true;
  acc.bias = false;
  BwdCase aligned = acc;
  aligned.x_place = Placement{8, 32};
  aligned.dy_place = Placement{16, 48};
  aligned.dx_place = Placement{8, 40};
  BwdCase odd = base;
  odd.x_place = Placement{3, 21};
  odd.dy_place = Placement{1, 27};
  odd.dx_place = Placement{5, 23};
  odd.accumulate = true;
  expect_exact(GetParam(), {acc, aligned, odd}, 500);
}

// Every dgrad tile forced, dgrad split-K (2 and 3 slices), wgrad reduction splits forced (1, 3,
// 5), and the heuristic's wgrad split with its workspace.
TEST_P(ConvBackwardKernel, ExactTilesAndSplits) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<BwdCase> cases;
  for (ConvTile tile : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64}) {
    BwdCase k{Shape4{1, 9, 15, 32}, 24, 3, 1};
    k.tile = tile;
    cases.push_back(k);
  }
  BwdCase s{Shape4{1, 6, 7, 72}, 40, 3, 2};
  s.split_k = 3;
  s.wgrad_splits = 3;
  cases.push_back(s);
  s.split_k = 2;
  s.accumulate = true;
  s.wgrad_splits = 5;
  cases.push_back(s);
  s.split_k = 1;
  s.wgrad_splits = 1;
  cases.push_back(s);
  expect_exact(GetParam(), cases, 600);
}

// Random floats: kernel and reference differ only in rounding. The kernels accumulate in fp32
// (FMA, tile order; wgrad: split partials summed in order), the reference in double rounded
// once. Reduction lengths here: dgrad <= 9*24 = 216 products (+ dx0), wgrad <= 2*3*3 = 18 or
// 30 pixels (+ dw0). Measured max abs error (fp32 storage, values |v| <= ~10): dx 2.9e-6, dw
// 1.4e-6, db 1.9e-6 (a few fp32 ulps of the result); tolerance atol 5e-6 + rtol 2e-6 (>= 5x
// headroom at |v| ~ 9). fp16 dx: both round the nearly equal fp32 value once to fp16, so they
// can differ by one fp16 ulp where it straddles a rounding boundary: rtol 1e-3, atol 1e-4
// (measured: identical). dw/db are fp32 in both dtypes: the fp32 tolerance.
TEST_P(ConvBackwardKernel, RandomFloatsWithinTolerance) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<BwdCase> cases = {{Shape4{2, 5, 6, 40}, 24, 3, 2}, {Shape4{1, 6, 5, 16}, 64, 1, 1}};
  cases[1].shuffle = 4;
  cases[1].accumulate = true;
  uint32_t seed = 700;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const BwdCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Outputs o = run_case(exec_context(GetParam()), dtype, k, random_data(k, seed++));
      if (dtype == DType::F32) {
        EXPECT_TRUE(all_close(o.got.dx, o.want.dx, 5e-6, 2e-6)) << "dx";
      } else {
        EXPECT_TRUE(all_close(o.got.dx, o.want.dx, 1e-4, 1e-3)) << "dx";
      }
      EXPECT_TRUE(all_close(o.got.dw, o.want.dw, 5e-6, 2e-6)) << "dw";
      EXPECT_TRUE(all_close(o.got.db, o.want.db, 5e-6, 2e-6)) << "db";
    }
  }
}

// Bitwise reproducible: the same call twice gives identical dx, dw, db (random floats, splits).
TEST_P(ConvBackwardKernel, Deterministic) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  BwdCase k{Shape4{1, 6, 7, 24}, 16, 3, 1};
  k.split_k = 2;
  k.wgrad_splits = 3;
  const BwdData d = random_data(k, 800);
  const Context ctx = exec_context(GetParam());
  const Grads a = run_backward(ctx, DType::F32, k, d, true);
  const Grads b = run_backward(ctx, DType::F32, k, d, true);
  EXPECT_TRUE(all_equal(a.dx, b.dx));
  EXPECT_TRUE(all_equal(a.dw, b.dw));
  EXPECT_TRUE(all_equal(a.db, b.db));
}

// ---- tf32 (fp32 storage, operands rounded to TF32, mma.m16n8k8): dgrad and wgrad ----

// Small integers are exact in TF32: bitwise equal to the reference, as in fp32. The stem (wgrad:
// 147 reduction columns), 3x3 s2 (dgrad's valid taps), a x4-shuffled dy as a slice, dgrad split-K
// with wgrad splits and accumulate. The cpu executor refuses tf32.
TEST_P(ConvBackwardKernel, Tf32ExactSmallIntegers) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<BwdCase> cases = {{Shape4{1, 13, 11, 3}, 16, 7, 2}, {Shape4{1, 9, 7, 32}, 40, 3, 2}};
  BwdCase t4{Shape4{2, 3, 2, 8}, 64, 1, 1};
  t4.shuffle = 4;
  t4.dy_place = Placement{3, 9};
  cases.push_back(t4);
  BwdCase s{Shape4{1, 6, 7, 72}, 40, 3, 2};
  s.split_k = 3;
  s.wgrad_splits = 3;
  s.accumulate = true;
  cases.push_back(s);
  for (BwdCase& k : cases) k.tf32 = true;
  if (GetParam().executor == Executor::Cpu) {
    EXPECT_THROW(expect_exact(GetParam(), {cases[0]}, 1, {DType::F32}), Error);
    return;
  }
  expect_exact(GetParam(), cases, 900, {DType::F32});
}

// Random floats in tf32.
// vs the tf32 reference (same rounded operands, double sums): only the fp32 accumulation differs.
//   Measured under emu: dx 2.4e-6, dw 9.5e-7, db 9.5e-7; atol 5e-6, 2e-6, 2e-6.
// vs strict fp32: operand rounding (2^-11 relative each, uniform) gives a sum error of sigma =
//   2^-11 sqrt(2n/27) for n products of values uniform in [-1, 1]: dgrad n <= 9*24 = 216: 2.0e-3;
//   wgrad n <= 30 pixels: 7.3e-4 (dx0 / dw0 are added exactly). Measured max dx 2.5e-3 (1.3
//   sigma), dw 1.8e-3 (2.5 sigma); atol 2.5 sigma(216) = 4.9e-3 and 5 sigma(30) = 3.6e-3. db sums
//   dy unrounded (no product): as vs the tf32 reference. dx must differ from strict fp32 (else
//   the kernels would not be rounding).
TEST_P(ConvBackwardKernel, Tf32RandomFloatsWithinTolerance) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  if (GetParam().executor == Executor::Cpu) return;  // refused: Tf32ExactSmallIntegers
  std::vector<BwdCase> cases = {{Shape4{2, 5, 6, 40}, 24, 3, 2}, {Shape4{1, 6, 5, 16}, 64, 1, 1}};
  cases[1].shuffle = 4;
  cases[1].accumulate = true;
  auto sigma = [](int n) { return std::ldexp(1.0, -11) * std::sqrt(2.0 * n / 27.0); };
  uint32_t seed = 950;
  for (BwdCase& k : cases) {
    k.tf32 = true;
    SCOPED_TRACE(describe(DType::F32, k));
    const BwdData d = random_data(k, seed++);
    const Outputs o = run_case(exec_context(GetParam()), DType::F32, k, d);
    EXPECT_TRUE(all_close(o.got.dx, o.want.dx, 5e-6)) << "dx vs tf32 reference";
    EXPECT_TRUE(all_close(o.got.dw, o.want.dw, 2e-6)) << "dw vs tf32 reference";
    EXPECT_TRUE(all_close(o.got.db, o.want.db, 2e-6)) << "db vs tf32 reference";
    BwdCase strict_case = k;
    strict_case.tf32 = false;
    const Grads strict =
        run_backward(Context{Executor::Reference, nullptr}, DType::F32, strict_case, d, false);
    EXPECT_TRUE(all_close(o.got.dx, strict.dx, 2.5 * sigma(216))) << "dx";
    EXPECT_TRUE(all_close(o.got.dw, strict.dw, 5 * sigma(30))) << "dw";
    EXPECT_TRUE(all_close(o.got.db, strict.db, 2e-6)) << "db";
    EXPECT_FALSE(all_close(o.got.dx, strict.dx, 1e-4)) << "dx not rounded to tf32";
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, ConvBackwardKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

// refresh_conv_weights re-packs in place: after new master values, the Forward weights give the
// forward conv of the new values (exact small-integer data), padding rows included.
TEST(ConvBackwardWeights, RefreshRepacksForwardWeights) {
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Context emu{Executor::Emu, nullptr};
    const ConvShape conv = square_conv(7, 2);
    const Shape4 xs{1, 9, 8, 3};
    const int K = 8;
    const std::vector<float> x = small_ints(size_t(xs.elements()), 1, -3, 3);
    ConvWeights w = alloc_conv_weights(emu, K, 7, 7, 3, dtype, ConvWeightUse::Forward);
    auto forward = [&](const Context& c, const ConvWeights& weights) {
      NhwcTestTensor xt(c, dtype, xs);
      xt.upload(x);
      NhwcTestTensor y(c, dtype, conv_output_shape(conv, weights, ConvEpilogue{}, xs));
      conv_bn_act_fwd(c, conv, xt.view(), weights, ConvEpilogue{}, y.view());
      return y.download();
    };
    for (uint32_t seed : {2u, 3u}) {
      const std::vector<float> master = small_ints(size_t(K) * 147, seed, -2, 2);
      rt::Buffer m = to_executor(emu, master);
      refresh_conv_weights(emu, m.as<float>(), w);
      const Context ref{Executor::Reference, nullptr};
      EXPECT_TRUE(all_equal(forward(emu, w),
                            forward(ref, pack_conv_weights(ref, master, K, 7, 7, 3, dtype))));
    }
  }
}

TEST(ConvBackwardArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  const ConvShape conv = square_conv(3, 1);
  const Shape4 xs{1, 6, 5, 8};
  NhwcTestTensor dy(ctx, DType::F32, Shape4{1, 6, 5, 16});
  NhwcTestTensor dx(ctx, DType::F32, xs);
  NhwcTestTensor dx16(ctx, DType::F16, xs);
  ConvWeights fw = alloc_conv_weights(ctx, 16, 3, 3, 8, DType::F32, ConvWeightUse::Forward);
  ConvWeights bw = alloc_conv_weights(ctx, 16, 3, 3, 8, DType::F32, ConvWeightUse::BackwardData);
  // forward weights for dgrad
  EXPECT_THROW(conv_bwd_data(ctx, conv, dy.view(), 1, fw, dx.view(), false), Error);
  // dy shaped for shuffle 1 while shuffle is 2
  EXPECT_THROW(conv_bwd_data(ctx, conv, dy.view(), 2, bw, dx.view(), false), Error);
  // dx dtype differs
  EXPECT_THROW(conv_bwd_data(ctx, conv, dy.view(), 1, bw, dx16.view(), false), Error);
  // 5x5 conv with 3x3 weights
  EXPECT_THROW(conv_bwd_data(ctx, square_conv(5, 1), dy.view(), 1, bw, dx.view(), false), Error);
  // wgrad: null dw, forced splits without workspace
  std::vector<float> dw(16 * 9 * 8);
  rt::Buffer dwb = to_executor(ctx, dw);
  EXPECT_THROW(conv_bwd_weight(ctx, conv, dx.view(), dy.view(), 1, nullptr, nullptr, nullptr, 0),
               Error);
  EXPECT_THROW(
      conv_bwd_weight(ctx, conv, dx.view(), dy.view(), 1, dwb.as<float>(), nullptr, nullptr, 0, 3),
      Error);
  // weights allocated for another executor
  ConvWeights ref_w = alloc_conv_weights(Context{Executor::Reference, nullptr}, 16, 3, 3, 8,
                                         DType::F32, ConvWeightUse::BackwardData);
  EXPECT_THROW(conv_bwd_data(ctx, conv, dy.view(), 1, ref_w, dx.view(), false), Error);
}

}  // namespace
}  // namespace farsee::test
