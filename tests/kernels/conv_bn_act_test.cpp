// conv_bn_act_fwd kernels (cpu, emu under two schedules, cuda when present) against the reference
// executor, through the public entry point: every conv shape class of both network presets at
// reduced size, both storage dtypes, every epilogue and store mode, every block tile, split-K,
// the gather (small-C / misaligned) fp16 loader, awkward shapes; tf32 (exact on small integers,
// tolerances vs the tf32 and the strict reference on random floats, the cpu executor's refusal);
// plus the plan heuristic and argument validation.
#include "kernels/conv_bn_act.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/conv_gemm.h"
#include "kernels/core/subpixel_store.h"
#include "kernels/emu/emu_counters.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/split_k_counters.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct ConvCase {
  Shape4 x;
  int K = 8;
  int kernel = 1, stride = 1, dilation = 1;
  bool relu = true;
  bool scale_bias = true;  // false: scale and bias null (= 1 and 0)
  bool residual = false;
  int shuffle = 1;
  Placement x_place = {}, y_place = {}, residual_place = {};
  ConvTile tile = ConvTile::Auto;
  int split_k = 0;        // 0: heuristic (no workspace given: no split)
  bool subpixel = false;  // pack_subpixel_conv_weights (shuffle > 1) on the executor under test
  bool tf32 = false;      // ConvOptions::tf32 (fp32 storage), on the executor and the reference
};

ConvShape geometry(const ConvCase& k) {
  return square_conv(k.kernel, k.stride, k.dilation);
}

struct ConvData {
  std::vector<float> x, w, scale, bias, residual;
};

// Small integers (x, residual in [-3, 3], w in [-2, 2], scale in {+-0.5, +-1, 1.5}, bias in
// [-4, 4]): every product and partial sum is an integer or half-integer far below 2^24, so fp32
// accumulation is exact in any order, and kernel and reference round the same exact value to the
// output dtype: they must agree bit for bit in fp32 and in fp16.
ConvData small_int_data(const ConvCase& k, uint32_t seed) {
  const Shape4 out = conv_output_shape(geometry(k), ConvWeights{}, ConvEpilogue{}, k.x);
  ConvData d;
  d.x = small_ints(size_t(k.x.elements()), seed, -3, 3);
  d.w = small_ints(size_t(k.K) * k.kernel * k.kernel * k.x.c, seed + 1, -2, 2);
  d.scale = small_ints(size_t(k.K), seed + 2, -2, 3);
  for (auto& s : d.scale) s = s == 0 ? 1.0f : 0.5f * s;
  d.bias = small_ints(size_t(k.K), seed + 3, -4, 4);
  d.residual = small_ints(size_t(out.n) * out.h * out.w * k.K, seed + 4, -3, 3);
  return d;
}

// Random floats in [-1, 1] (scale in [0.5, 1.5], bias and residual in [-0.5, 0.5]).
ConvData random_data(const ConvCase& k, uint32_t seed) {
  const Shape4 out = conv_output_shape(geometry(k), ConvWeights{}, ConvEpilogue{}, k.x);
  ConvData d;
  d.x = random_floats(size_t(k.x.elements()), seed);
  d.w = random_floats(size_t(k.K) * k.kernel * k.kernel * k.x.c, seed + 1);
  d.scale = random_floats(size_t(k.K), seed + 2, 0.5f, 1.5f);
  d.bias = random_floats(size_t(k.K), seed + 3, -0.5f, 0.5f);
  d.residual = random_floats(size_t(out.n) * out.h * out.w * k.K, seed + 4, -0.5f, 0.5f);
  return d;
}

struct Outputs {
  std::vector<float> got, want;
};

// Runs the case on `c` (as_case: with its placements and forced configuration; else dense
// tensors) from fp32 data (rounded to fp16 on upload for F16); returns y.
std::vector<float> run_conv(const Context& c, DType dtype, const ConvCase& k, const ConvData& d,
                            bool as_case) {
  const ConvShape conv = geometry(k);
  {
    const Placement none{};
    ConvWeights w =
        as_case && k.subpixel
            ? pack_subpixel_conv_weights(c, d.w, k.K, k.kernel, k.kernel, k.x.c, dtype, k.shuffle)
            : pack_conv_weights(c, d.w, k.K, k.kernel, k.kernel, k.x.c, dtype);
    NhwcTestTensor x(c, dtype, k.x, as_case ? k.x_place : none);
    x.upload(d.x);
    ConvEpilogue e;
    e.relu = k.relu;
    e.shuffle_factor = k.shuffle;
    rt::Buffer scale = to_executor(c, d.scale), bias = to_executor(c, d.bias);
    if (k.scale_bias) {
      e.scale = scale.as<float>();
      e.bias = bias.as<float>();
    }
    const Shape4 conv_out = conv_output_shape(conv, w, ConvEpilogue{}, k.x);
    NhwcTestTensor residual(c, dtype, conv_out, as_case ? k.residual_place : none);
    if (k.residual) {
      residual.upload(d.residual);
      e.residual = residual.view();
    }
    NhwcTestTensor y(c, dtype, conv_output_shape(conv, w, e, k.x), as_case ? k.y_place : none);
    ConvOptions options;
    options.tf32 = k.tf32;
    rt::Buffer workspace;
    SplitKCounters counters(c, conv_out.pixels(), k.K);
    if (as_case) {
      options.tile = k.tile;
      options.split_k = k.split_k;
      if (k.split_k > 1) {
        options.workspace_bytes = size_t(k.split_k) * conv_out.pixels() * k.K * sizeof(float);
        workspace = poisoned_buffer(c, options.workspace_bytes);
        options.workspace = workspace.data();
        counters.attach(options);
      }
    }
    conv_bn_act_fwd(c, conv, x.view(), w, e, y.view(), options);
    std::vector<float> out = y.download();
    if (as_case) {  // sub-pixel packing stores zeros in the padding channels up to its stride
      const int padding = w.subpixel_factor > 1 ? w.subpixel_stride - y.view().c() : 0;
      EXPECT_TRUE(y.outside_untouched(padding));
      EXPECT_TRUE(counters.all_zero(c)) << "split-K tile counters not reset";
    }
    return out;
  }
}

// The case on `ctx` and on the reference.
Outputs run_case(const Context& ctx, DType dtype, const ConvCase& k, const ConvData& d) {
  Outputs o;
  o.got = run_conv(ctx, dtype, k, d, true);
  o.want = run_conv(reference_context(), dtype, k, d, false);
  return o;
}

std::string describe(DType dtype, const ConvCase& k) {
  std::ostringstream s;
  s << dtype_name(dtype) << " x " << to_string(k.x) << " K " << k.K << " " << k.kernel << "x"
    << k.kernel << "/s" << k.stride << "/d" << k.dilation << " relu " << k.relu << " scale_bias "
    << k.scale_bias << " residual " << k.residual << " shuffle " << k.shuffle << " x slice ["
    << k.x_place.offset << " of " << k.x_place.pixel_stride << "] y slice [" << k.y_place.offset
    << " of " << k.y_place.pixel_stride << "] residual slice [" << k.residual_place.offset << " of "
    << k.residual_place.pixel_stride << "] tile " << conv_tile_name(k.tile) << " split_k "
    << k.split_k << " tf32 " << k.tf32;
  return s.str();
}

void expect_exact(const ExecCase& ec, const std::vector<ConvCase>& cases, uint32_t seed) {
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const ConvCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Outputs o = run_case(exec_context(ec), dtype, k, small_int_data(k, seed++));
      EXPECT_TRUE(all_equal(o.got, o.want));
    }
  }
}

class ConvBnActKernel : public ::testing::TestWithParam<ExecCase> {};

// The 7x7/s2/p3 stem on 3 input channels (fp16: the gather loader; weights rows padded 147 ->
// 152), odd H/W, batch 2; also C = 5 and a 3x3 on 3 channels.
TEST_P(ConvBnActKernel, ExactStemSmallChannels) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  ConvCase stem{Shape4{2, 19, 23, 3}, 64, 7, 2};
  cases.push_back(stem);
  ConvCase c5{Shape4{1, 13, 10, 5}, 24, 7, 2};
  c5.relu = false;
  cases.push_back(c5);
  cases.push_back(ConvCase{Shape4{1, 9, 11, 3}, 16, 3, 1});
  expect_exact(GetParam(), cases, 100);
}

// 3x3 stride 1 and 2 (ResNet blocks, the stride-2 first conv of layers 2-4), dilation 2, C a
// multiple of 8 but not of the 32-channel reduction step (C = 8, 16: whole taps per step), K not a
// multiple of the tile or of 8.
TEST_P(ConvBnActKernel, Exact3x3StridesAndDilation) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases = {
      {Shape4{1, 8, 9, 64}, 64, 3, 1},   // layer1 class
      {Shape4{2, 9, 7, 64}, 72, 3, 2},   // layer2 first conv class (odd H/W, batch 2)
      {Shape4{1, 7, 10, 40}, 20, 3, 1},  // C % 32 != 0, K % 8 != 0
      {Shape4{1, 11, 9, 16}, 24, 3, 1, 2}, {Shape4{1, 12, 13, 24}, 16, 3, 2, 3},
      {Shape4{1, 9, 8, 8}, 16, 3, 2},  // C = 8: 4 taps per cp.async reduction step (9 taps)
  };
  cases[2].relu = false;
  expect_exact(GetParam(), cases, 200);
}

// 1x1 stride 1 and 2 (downsample shortcut, every head projection), channel counts of the heads.
TEST_P(ConvBnActKernel, Exact1x1) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases = {
      {Shape4{1, 9, 10, 64}, 128, 1, 2},  // downsample class
      {Shape4{1, 8, 8, 304}, 40, 1, 1},   // ASPP-2 merged 1x1 (304 input channels)
      {Shape4{2, 5, 7, 128}, 48, 1, 1},   // low path 128 -> 48
      {Shape4{1, 4, 8, 512}, 136, 1, 1},  // ASPP-1 merged 1x1 class, K % 64 != 0
  };
  cases[0].relu = false;
  expect_exact(GetParam(), cases, 300);
}

// Residual add (dense, and a channel slice of a wider buffer at aligned and odd offsets), ReLU
// on/off, null scale/bias, output into a channel slice (aligned: 16-byte stores; odd: element
// stores); nothing outside y's slice is written.
TEST_P(ConvBnActKernel, ExactEpilogueAndSlices) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  ConvCase base{Shape4{1, 7, 9, 32}, 48, 3, 1};
  ConvCase r = base;
  r.residual = true;
  cases.push_back(r);
  r.relu = false;
  r.residual_place = Placement{16, 80};
  cases.push_back(r);
  r.relu = true;
  r.residual_place = Placement{3, 53};
  r.y_place = Placement{5, 60};
  cases.push_back(r);
  ConvCase s = base;
  s.scale_bias = false;
  s.y_place = Placement{8, 64};  // the decoder concat: a slice at an aligned offset
  cases.push_back(s);
  ConvCase x_slice = base;
  x_slice.x_place = Placement{16, 64};  // aligned x slice: cp.async loader
  cases.push_back(x_slice);
  x_slice.x_place = Placement{3, 40};  // odd x slice: fp16 gather loader despite C % 8 == 0
  cases.push_back(x_slice);
  expect_exact(GetParam(), cases, 400);
}

// Pixel-shuffle store by 2 and 4 (the sub-pixel convs: 1024 -> 2048 x2, 256 -> 4096 x4,
// 128 -> 19*16 x4 with bias and no ReLU), also into a y slice and with a residual.
TEST_P(ConvBnActKernel, ExactPixelShuffleStore) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  ConvCase t2{Shape4{1, 4, 5, 64}, 128, 1, 1};
  t2.shuffle = 2;
  t2.relu = false;
  cases.push_back(t2);
  ConvCase t4{Shape4{1, 3, 4, 64}, 256, 1, 1};
  t4.shuffle = 4;
  cases.push_back(t4);
  ConvCase logits{Shape4{2, 5, 3, 32}, 19 * 16, 1, 1};
  logits.shuffle = 4;
  logits.relu = false;
  cases.push_back(logits);
  ConvCase sliced = t2;
  sliced.y_place = Placement{8, 48};
  sliced.residual = true;
  cases.push_back(sliced);
  ConvCase t2_3x3{Shape4{1, 5, 6, 16}, 36, 3, 1};
  t2_3x3.shuffle = 2;
  t2_3x3.y_place = Placement{1, 12};
  cases.push_back(t2_3x3);
  expect_exact(GetParam(), cases, 500);
}

// Sub-pixel packed weights (pack_subpixel_conv_weights): the x4 up1 class (K/16 = 16, 64 and
// more channels per (i, j)), the x2 rtseg up1 class into the decoder slice, the 19-class logits
// with bias into a y of pixel stride 24 (the padding channels 19..23 must come back zero), a
// residual, every tile; the same values as the reference, nothing outside y's pixels written.
TEST_P(ConvBnActKernel, ExactSubpixelPacked) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  for (ConvTile tile : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64}) {
    ConvCase up{Shape4{1, 5, 7, 32}, 1024, 1, 1};  // 64 channels per (i, j)
    up.shuffle = 4;
    up.subpixel = true;
    up.tile = tile;
    up.y_place = Placement{0, 72};  // the decoder concat: up1 writes its first channels
    cases.push_back(up);
  }
  ConvCase t4{Shape4{1, 3, 4, 16}, 256, 1, 1};
  t4.shuffle = 4;
  t4.subpixel = true;
  t4.residual = true;
  cases.push_back(t4);
  ConvCase t2{Shape4{2, 4, 5, 64}, 128, 1, 1};
  t2.shuffle = 2;
  t2.relu = false;
  t2.subpixel = true;
  t2.y_place = Placement{8, 48};
  cases.push_back(t2);
  ConvCase logits{Shape4{2, 5, 3, 32}, 19 * 16, 1, 1};
  logits.shuffle = 4;
  logits.relu = false;
  logits.subpixel = true;
  logits.y_place = Placement{0, 24};
  cases.push_back(logits);
  ConvCase odd = logits;  // y at an odd offset: element stores, still exact
  odd.y_place = Placement{1, 24};
  odd.K = 16 * 16;
  cases.push_back(odd);
  expect_exact(GetParam(), cases, 550);
}

// Stores of V elements (16 bytes) the sub-pixel epilogue makes, out of all its stores, for a
// 1x1 conv of K channels shuffled by t into a y of pixel stride y_stride (8 x 8 conv output).
template <typename T>
std::pair<int, int> subpixel_vector_stores(int K, int t, int y_stride) {
  constexpr int V = 16 / sizeof(T);
  const int t2 = t * t, channels = K / t2;
  const SubpixelColumns s{t2, channels, (channels + V - 1) / V * V};
  EXPECT_LE(s.stride, y_stride);
  std::vector<T> y(size_t(8 * t) * 8 * t * y_stride);  // operator new: 16-byte aligned
  const ConvOutputIndex<T> out{y.data(), y_stride, 8 * t, 8 * t, 8, 8, t};
  int vectors = 0, stores = 0;
  for (int m = 0; m < 8 * 8; ++m) {
    for (int n = 0; n < t2 * s.stride; n += V) {
      const int count = subpixel_group_count(s, n, V);
      EXPECT_GT(count, 0) << "column " << n;
      const int width = subpixel_store_width<V>(out.element(m, subpixel_conv_channel(s, n)));
      vectors += width == V ? 1 : 0;
      stores += width == V ? 1 : count;
    }
  }
  return {vectors, stores};
}

// The store width the sub-pixel epilogue picks (kernels/core/subpixel_store.h, the test the
// kernels' store_subpixel makes) for the net's sub-pixel convs: every store is one 16-byte vector
// of 8 halves / 4 floats, the logits included thanks to their padded stride (24 channels).
TEST(ConvBnActSubpixel, EveryStoreIsOneVector) {
  struct Conv {
    int K, t, y_stride;
  };
  // paper up1 (256 x 16 into the 304-channel decoder), rtseg up1 (512 x 4 into 560), logits.
  for (const Conv cv : {Conv{4096, 4, 304}, Conv{2048, 2, 560}, Conv{19 * 16, 4, 24}}) {
    SCOPED_TRACE("K " + std::to_string(cv.K) + " t " + std::to_string(cv.t));
    const auto half = subpixel_vector_stores<uint16_t>(cv.K, cv.t, cv.y_stride);
    EXPECT_EQ(half.first, half.second);
    const auto single = subpixel_vector_stores<float>(cv.K, cv.t, cv.y_stride);
    EXPECT_EQ(single.first, single.second);
  }
}

// The cpu executor's split of the deep layers (conv_gemm_tiling, kernels/cpu/gemm.cpp): few
// pixels, wide weights and above the threading threshold, so the output channels are cut into
// blocks: a 3x3 over one gathered patch matrix (P = 64, 4 blocks of 64 channels) with the
// residual, and the up1 class 1x1 read in place (P = 128, 4 blocks of 256 channels = 16 whole
// shuffle groups each) with the x4 shuffle store into a y slice and the residual. The other
// executors tile by their own plan: cpu only, not instantiated for them.
TEST(ConvBnActCpu, ExactChannelBlocks) {
  const ExecCase cpu{Executor::Cpu, emu::Schedule::RoundRobin};
  ConvCase deep{Shape4{1, 8, 8, 256}, 256, 3, 1};
  deep.residual = true;
  ConvCase up{Shape4{2, 8, 8, 512}, 1024, 1, 1};
  up.shuffle = 4;
  up.relu = false;
  up.residual = true;
  up.y_place = Placement{8, 80};
  expect_exact(cpu, {deep, up}, 650);
}

// Every block tile forced, K and M not multiples of the tile (M = 135, K = 136).
TEST_P(ConvBnActKernel, ExactEveryTile) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  for (ConvTile tile : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64}) {
    ConvCase k{Shape4{1, 9, 15, 32}, 136, 3, 1};
    k.tile = tile;
    k.split_k = 1;
    cases.push_back(k);
  }
  expect_exact(GetParam(), cases, 600);
}

// The gather (element-wise im2col) loader under every block tile: the planner picks 128x64 for
// the 3-channel stem at net sizes and 128x128 for wide outputs, which the small default-planned
// cases above never reach. M = 2 * 10 * 12 = 240 (not a multiple of 128), K = 72 / 136.
TEST_P(ConvBnActKernel, ExactEveryTileGatherLoader) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  for (ConvTile tile : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64}) {
    ConvCase stem{Shape4{2, 19, 23, 3}, tile == ConvTile::M128N128 ? 136 : 72, 7, 2};
    stem.tile = tile;
    stem.split_k = 1;
    cases.push_back(stem);
  }
  expect_exact(GetParam(), cases, 620);
}

// The 8-warp 128x128 tile (M128N128W8: 256 threads, stage rows of 64 reduction elements; fp32
// runs its 128x128 for it): C = 16 (four whole taps per step: 3 steps), C = 96 (a tap's second
// step half zeros) with the residual and a y slice, K = 136 (two column blocks, the second
// partial), M = 117 (one partial row block), and split-K in the kernel over 3 steps.
TEST_P(ConvBnActKernel, ExactEightWarpTile) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  ConvCase taps{Shape4{1, 9, 13, 16}, 136, 3, 1};
  taps.tile = ConvTile::M128N128W8;
  taps.split_k = 1;
  ConvCase wide{Shape4{1, 9, 13, 96}, 72, 1, 1};
  wide.tile = ConvTile::M128N128W8;
  wide.split_k = 1;
  wide.residual = true;
  wide.y_place = Placement{8, 88};
  ConvCase split = taps;
  split.split_k = 2;
  expect_exact(GetParam(), {taps, wide, split}, 660);
}

// Split-K (fp32 workspace, reduced in slice order) on every tile, with a slice count that does
// not divide the reduction steps, with the residual, the shuffle store and the gather loader.
TEST_P(ConvBnActKernel, ExactSplitK) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases;
  for (ConvTile tile : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64}) {
    ConvCase k{Shape4{1, 9, 15, 32}, 136, 3, 1};
    k.tile = tile;
    k.split_k = 4;  // 9 reduction steps (fp16), 36 (fp32)
    k.residual = tile == ConvTile::M64N64;
    cases.push_back(k);
  }
  ConvCase shuffled{Shape4{1, 4, 6, 96}, 64, 1, 1};
  shuffled.tile = ConvTile::M64N64;
  shuffled.split_k = 2;
  shuffled.shuffle = 4;
  cases.push_back(shuffled);
  ConvCase stem{Shape4{1, 11, 13, 3}, 64, 7, 2};  // gather loader with split-K
  stem.split_k = 4;
  cases.push_back(stem);
  expect_exact(GetParam(), cases, 650);
}

// A stream of its own (graph capture needs one), destroyed at scope exit.
struct OwnStream {
  Context ctx;
  explicit OwnStream(Executor e) : ctx{e, rt::stream_create(e)} {}
  ~OwnStream() { rt::stream_destroy(ctx.executor, ctx.stream); }
};

// What the split-K output must be, bit for bit: per element, the slices the kernel left in the
// workspace summed in slice order from 0.0f (the order of the former separate reduce kernel),
// then the epilogue's single fma and ReLU, rounded once to the storage dtype.
std::vector<float> fixed_order_split_k(const std::vector<float>& partials, int splits, int64_t M,
                                       int K, const ConvData& d, DType dtype) {
  std::vector<float> want(size_t(M) * K);
  for (int64_t m = 0; m < M; ++m) {
    for (int k = 0; k < K; ++k) {
      float sum = 0.0f;
      for (int z = 0; z < splits; ++z) sum += partials[size_t((z * M + m) * K + k)];
      const float v = std::fmaf(sum, d.scale[size_t(k)], d.bias[size_t(k)]);
      want[size_t(m * K + k)] = v < 0.0f ? 0.0f : v;
    }
  }
  return dtype == DType::F16 ? round_to_half(want) : want;
}

// Split-K reduced inside the conv kernel (the last CTA of each output tile, found with an integer
// counter, sums the slices; SIMT fp32, tf32 and fp16 kernels): the output equals the fixed-order
// sum of the partials bit for bit (under both emu block orders, the last CTA is a different one),
// and two graph replays of the same launch reproduce it bit for bit; the counters are back at zero
// after every launch (a counter left non-zero would leave y unwritten: NaN poison).
TEST_P(ConvBnActKernel, SplitKInKernelFixedOrderAndGraphReplays) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  if (GetParam().executor == Executor::Cpu) GTEST_SKIP() << "the cpu executor does not split K";
  OwnStream stream(GetParam().executor);
  const Context& c = stream.ctx;
  ConvCase k{Shape4{1, 9, 15, 32}, 136, 3, 1};  // M = 135: 3 x 3 tiles of 64 x 64
  const int splits = 4;
  const ConvShape conv = geometry(k);
  const int64_t M = k.x.pixels();
  for (Precision precision : {Precision::F32, Precision::TF32, Precision::F16}) {
    SCOPED_TRACE(precision_name(precision));
    const DType dtype = storage_dtype(precision);
    const ConvData d = random_data(k, 800);
    ConvWeights w = pack_conv_weights(c, d.w, k.K, 3, 3, k.x.c, dtype);
    NhwcTestTensor x(c, dtype, k.x);
    x.upload(d.x);
    rt::Buffer scale = to_executor(c, d.scale), bias = to_executor(c, d.bias);
    ConvEpilogue e;
    e.scale = scale.as<float>();
    e.bias = bias.as<float>();
    e.relu = true;
    NhwcTestTensor y(c, dtype, Shape4{1, 9, 15, k.K});
    ConvOptions options;
    options.tile = ConvTile::M64N64;
    options.split_k = splits;
    options.tf32 = precision == Precision::TF32;
    options.workspace_bytes = size_t(splits) * M * k.K * sizeof(float);
    rt::Buffer workspace = poisoned_buffer(c, options.workspace_bytes);
    options.workspace = workspace.data();
    SplitKCounters counters(c, M, k.K);
    counters.attach(options);
    conv_bn_act_fwd(c, conv, x.view(), w, e, y.view(), options);
    const std::vector<float> first = y.download();
    const std::vector<float> partials = to_host<float>(c, workspace, size_t(splits) * M * k.K);
    EXPECT_TRUE(all_equal(first, fixed_order_split_k(partials, splits, M, k.K, d, dtype)));
    EXPECT_TRUE(counters.all_zero(c));

    rt::graph_begin_capture(c);
    conv_bn_act_fwd(c, conv, x.view(), w, e, y.view(), options);
    void* graph = rt::graph_end_capture(c);
    for (int replay = 0; replay < 2; ++replay) {
      SCOPED_TRACE("graph replay " + std::to_string(replay));
      rt::memset(c, y.view().data, 0xFF, size_t(M) * k.K * dtype_size(dtype));  // poison y
      rt::graph_launch(c, graph);
      EXPECT_TRUE(all_equal(y.download(), first));
      EXPECT_TRUE(counters.all_zero(c));
    }
    rt::graph_destroy(graph);
  }
}

// Programmatic dependent launch (ConvOptions::programmatic_launch with
// rt::programmatic_dependent_launch on; the PDL attribute on an sm_90 GPU; emu runs the same
// kernels, whose weight prefetch before griddepcontrol.wait is the same code either way): three
// dependent fp16 convs on one stream sharing the split-K workspace and counters (3x3 split 3,
// the 8-warp tile reading its output, a 1x1 split 2 with the first as residual) give bitwise the
// plain launches' outputs, eager and in two graph replays, and leave the counters zero.
TEST_P(ConvBnActKernel, ProgrammaticDependentLaunchMatchesPlain) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  if (GetParam().executor == Executor::Cpu) GTEST_SKIP() << "cuda and emu only";
  OwnStream stream(GetParam().executor);
  const Context& c = stream.ctx;
  struct PdlOff {  // the process-wide switch back off whatever happens
    ~PdlOff() { rt::set_programmatic_dependent_launch(false); }
  } pdl_off;
  const Shape4 xs{1, 8, 12, 32};
  const int64_t M = xs.pixels();
  auto weights = [&](int K, int k, int C, uint32_t seed) {
    return pack_conv_weights(c, random_floats(size_t(K) * k * k * C, seed, -0.2f, 0.2f), K, k, k, C,
                             DType::F16);
  };
  const ConvWeights w1 = weights(64, 3, 32, 1), w2 = weights(128, 1, 64, 2),
                    w3 = weights(64, 1, 128, 3);
  NhwcTestTensor x(c, DType::F16, xs), y1(c, DType::F16, Shape4{1, 8, 12, 64}),
      y2(c, DType::F16, Shape4{1, 8, 12, 128}), y3(c, DType::F16, Shape4{1, 8, 12, 64});
  x.upload(random_floats(size_t(xs.elements()), 4));
  rt::Buffer workspace = poisoned_buffer(c, size_t(3) * M * 128 * sizeof(float));
  SplitKCounters counters(c, M, 128);
  auto forward = [&](bool pdl) {
    ConvOptions o;
    o.programmatic_launch = pdl;
    o.workspace = workspace.data();
    o.workspace_bytes = workspace.bytes();
    counters.attach(o);
    ConvEpilogue e;
    e.relu = true;
    o.split_k = 3;
    conv_bn_act_fwd(c, square_conv(3), x.view(), w1, e, y1.view(), o);
    o.split_k = 1;
    o.tile = ConvTile::M128N128W8;
    conv_bn_act_fwd(c, square_conv(1), y1.view(), w2, e, y2.view(), o);
    o.split_k = 2;
    o.tile = ConvTile::M64N64;
    e.residual = y1.view();
    conv_bn_act_fwd(c, square_conv(1), y2.view(), w3, e, y3.view(), o);
  };
  auto outputs = [&] { return std::vector<std::vector<float>>{y1.download(), y3.download()}; };
  forward(false);
  const std::vector<std::vector<float>> plain = outputs();
  rt::set_programmatic_dependent_launch(true);
  forward(true);
  EXPECT_TRUE(outputs() == plain) << "eager";
  EXPECT_TRUE(counters.all_zero(c));
  rt::graph_begin_capture(c);
  forward(true);
  void* graph = rt::graph_end_capture(c);
  for (int replay = 0; replay < 2; ++replay) {
    for (NhwcTestTensor* t : {&y1, &y2, &y3}) {
      rt::memset(c, t->view().data, 0xFF, size_t(t->view().shape.elements()) * 2);
    }
    rt::graph_launch(c, graph);
    EXPECT_TRUE(outputs() == plain) << "graph replay " << replay;
    EXPECT_TRUE(counters.all_zero(c));
  }
  rt::graph_destroy(graph);
}

// Random floats: kernel and reference differ only by rounding.
// fp32: the reference sums in double and rounds once; the kernel's fp32 fused multiply-adds in
//   reduction order drift by ~sqrt(n) fp32 ulps of the partial sums. Measured under emu: max
//   4.2e-5 at |y| = 43 (n = 1152), 1.0e-5 (n = 256), 2.9e-6 (n = 147); atol 1e-4 + rtol 1e-5
//   leaves >= 10x headroom.
// fp16: x and w are rounded to fp16 before both computations, so every product is exact in fp32
//   (and in the tensor core); the error is the fp32 accumulation order (as above; on the GPU also
//   the tensor core's internal ordering) and the final fp16 rounding: kernel and reference round
//   slightly different fp32 values, so they can land one fp16 ulp apart (<= 2^-10 relative).
//   Tolerance: rtol 2^-10 plus an accumulation term atol = n * 2^-21 (n = 1152: 5.5e-4, ~10x the
//   fp32 drift above). Measured under emu: a few elements one ulp apart, nothing more.
TEST_P(ConvBnActKernel, RandomFloatsWithinTolerance) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  std::vector<ConvCase> cases = {
      {Shape4{1, 8, 9, 128}, 64, 3, 1},  // n = 1152
      {Shape4{1, 6, 7, 256}, 40, 1, 1},  // n = 256
      {Shape4{1, 15, 13, 3}, 32, 7, 2},  // n = 147 (gather loader)
  };
  cases[1].residual = true;
  cases[2].split_k = 2;
  uint32_t seed = 700;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (const ConvCase& k : cases) {
      SCOPED_TRACE(describe(dtype, k));
      const Outputs o = run_case(exec_context(GetParam()), dtype, k, random_data(k, seed++));
      const int n = k.kernel * k.kernel * k.x.c;
      if (dtype == DType::F32) {
        EXPECT_TRUE(all_close(o.got, o.want, 1e-4, 1e-5));
      } else {
        EXPECT_TRUE(all_close(o.got, o.want, n * std::ldexp(1.0, -21), std::ldexp(1.0, -10)));
      }
    }
  }
}

// ---- tf32 (ConvOptions::tf32: fp32 storage, operands rounded to TF32, mma.m16n8k8) ----

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// The cpu executor has no tf32 convolutions: a clear refusal, not a silent fp32 run.
bool cpu_refuses_tf32(const ExecCase& ec) {
  if (ec.executor != Executor::Cpu) return false;
  ConvCase k{Shape4{1, 4, 4, 8}, 8, 3, 1};
  k.tf32 = true;
  EXPECT_THROW(run_conv(exec_context(ec), DType::F32, k, small_int_data(k, 1), true), Error);
  return true;
}

// Small integers are exact in TF32 (|v| <= 4 needs 3 mantissa bits), so the tf32 kernel must match
// the reference bitwise, as the fp32 kernel does: the stem (C = 3, 7x7/s2), 3x3 s2 with odd sizes,
// the x4 shuffle store into a y slice with a residual, the sub-pixel packed logits, every tile (M,
// K not multiples), split-K.
TEST_P(ConvBnActKernel, Tf32ExactSmallIntegers) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  if (cpu_refuses_tf32(GetParam())) return;
  std::vector<ConvCase> cases = {{Shape4{2, 19, 23, 3}, 64, 7, 2}, {Shape4{2, 9, 7, 64}, 72, 3, 2}};
  ConvCase up{Shape4{1, 3, 4, 64}, 256, 1, 1};
  up.shuffle = 4;
  up.residual = true;
  up.y_place = Placement{8, 48};
  cases.push_back(up);
  ConvCase logits{Shape4{2, 5, 3, 32}, 19 * 16, 1, 1};  // sub-pixel packed, padded to 24 channels
  logits.shuffle = 4;
  logits.relu = false;
  logits.subpixel = true;
  logits.y_place = Placement{0, 24};
  cases.push_back(logits);
  for (ConvTile tile : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64}) {
    ConvCase k{Shape4{1, 9, 15, 32}, 136, 3, 1};
    k.tile = tile;
    k.split_k = tile == ConvTile::M64N64 ? 4 : 1;
    cases.push_back(k);
  }
  uint32_t seed = 900;
  for (ConvCase& k : cases) {
    k.tf32 = true;
    SCOPED_TRACE(describe(DType::F32, k));
    const Outputs o = run_case(exec_context(GetParam()), DType::F32, k, small_int_data(k, seed++));
    EXPECT_TRUE(all_equal(o.got, o.want));
  }
}

// Random floats in tf32.
// vs the tf32 reference (the same TF32 operands, products and sums in double): only the kernel's
//   fp32 accumulation differs (as in RandomFloatsWithinTolerance). Measured under emu: 6.5e-5
//   (n = 1152), 2.9e-6 (n = 147); atol 1.3e-4 and 6e-6.
// vs the strict fp32 reference: each operand is rounded to 11 significant bits (relative error
//   uniform in +-2^-11), so each product is off by ~(2/3)^(1/2) 2^-11 |xw| (sd); over n products
//   with E|xw|^2 = 1/9 (x, w uniform in [-1, 1]) the sum's error has sigma = 2^-11 sqrt(2n/27),
//   times the BN scale (<= 1.5): 6.8e-3 at n = 1152, 2.4e-3 at n = 147. Tolerance 3.5 sigma;
//   measured max 1.65e-2 (2.4 sigma) and 4.8e-3 (2.0 sigma).
//   And the kernel must differ from strict fp32 by more than 1e-4 somewhere (else it would not be
//   rounding to TF32).
TEST_P(ConvBnActKernel, Tf32RandomFloatsWithinTolerance) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  if (cpu_refuses_tf32(GetParam())) return;
  std::vector<ConvCase> cases = {{Shape4{1, 8, 9, 128}, 64, 3, 1},
                                 {Shape4{1, 15, 13, 3}, 32, 7, 2}};
  cases[1].split_k = 2;
  const double vs_tf32_atol[2] = {1.3e-4, 6e-6};
  uint32_t seed = 950;
  for (size_t c = 0; c < cases.size(); ++c) {
    ConvCase& k = cases[c];
    k.tf32 = true;
    SCOPED_TRACE(describe(DType::F32, k));
    const ConvData d = random_data(k, seed++);
    const Outputs o = run_case(exec_context(GetParam()), DType::F32, k, d);
    EXPECT_TRUE(all_close(o.got, o.want, vs_tf32_atol[c]));
    ConvCase strict_case = k;
    strict_case.tf32 = false;
    const std::vector<float> strict =
        run_conv(reference_context(), DType::F32, strict_case, d, false);
    const int n = k.kernel * k.kernel * k.x.c;
    const double sigma = 1.5 * std::ldexp(1.0, -11) * std::sqrt(2.0 * n / 27.0);
    EXPECT_TRUE(all_close(o.got, strict, 3.5 * sigma));
    EXPECT_GT(max_abs_diff(o.got, strict), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, ConvBnActKernel, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

// ---- the configuration heuristic (kernels/conv_bn_act.cpp) on the net's shapes ----

ConvWeights dummy_weights(DType dtype, int K, int k, int C) {
  const Context ctx{Executor::Emu, nullptr};
  return pack_conv_weights(ctx, std::vector<float>(size_t(K) * k * k * C, 0.0f), K, k, k, C, dtype);
}

TEST(ConvBnActPlan, NetShapes) {
  const Context ctx{Executor::Emu, nullptr};
  std::vector<unsigned char> big(size_t(64) << 20);
  std::vector<int> counters(1024);
  ConvOptions with_workspace;
  with_workspace.workspace = big.data();
  with_workspace.workspace_bytes = big.size();
  with_workspace.tile_counters = counters.data();
  with_workspace.tile_counter_count = counters.size();
  auto plan = [&](Shape4 x_shape, int K, int k, int stride, const ConvOptions& o) {
    const ConvWeights w = dummy_weights(DType::F16, K, k, x_shape.c);
    TensorView x = make_view(big.data(), DType::F16, x_shape);
    return plan_conv(square_conv(k, stride), w, x, o);
  };
  // stem 7x7/2, 3 -> 64 at 256x512 out: K = 64 -> 128x64 tiles, gather loader.
  ConvPlan p = plan(Shape4{1, 512, 1024, 3}, 64, 7, 2, {});
  EXPECT_EQ(p.tile, ConvTile::M128N64);
  EXPECT_TRUE(p.gather_activations);
  EXPECT_EQ(p.split_k, 1);
  // 1x1 304 -> 512 at 64x128: 256 blocks of 128x128 < 264 -> 128x64 (512 blocks).
  p = plan(Shape4{1, 64, 128, 304}, 512, 1, 1, {});
  EXPECT_EQ(p.tile, ConvTile::M128N64);
  EXPECT_FALSE(p.gather_activations);
  // 1x1 512 -> 1024 at 16x32 (M = 512): 64x64 tiles, 128 blocks -> 3 slices with a workspace.
  p = plan(Shape4{1, 16, 32, 512}, 1024, 1, 1, with_workspace);
  EXPECT_EQ(p.tile, ConvTile::M64N64);
  EXPECT_EQ(p.split_k, 3);
  // layer4 3x3 512 at 16x32: 64 blocks -> 5 slices; without a workspace, none.
  p = plan(Shape4{1, 16, 32, 512}, 512, 3, 1, with_workspace);
  EXPECT_EQ(p.split_k, 5);
  EXPECT_EQ(plan(Shape4{1, 16, 32, 512}, 512, 3, 1, {}).split_k, 1);
  EXPECT_EQ(conv_workspace_bytes(square_conv(3), dummy_weights(DType::F16, 512, 3, 512),
                                 Shape4{1, 16, 32, 512}),
            size_t(5) * 512 * 512 * 4);
  // ... and one tile counter per 64x64 output tile (8 x 8); with a workspace but too few
  // counters (or none), no split.
  EXPECT_EQ(conv_tile_counter_count(square_conv(3), dummy_weights(DType::F16, 512, 3, 512),
                                    Shape4{1, 16, 32, 512}),
            size_t(64));
  ConvOptions few_counters = with_workspace;
  few_counters.tile_counter_count = 63;
  EXPECT_EQ(plan(Shape4{1, 16, 32, 512}, 512, 3, 1, few_counters).split_k, 1);
  few_counters.tile_counters = nullptr;
  few_counters.tile_counter_count = 1024;
  EXPECT_EQ(plan(Shape4{1, 16, 32, 512}, 512, 3, 1, few_counters).split_k, 1);
  EXPECT_EQ(conv_tile_counter_count(square_conv(3), dummy_weights(DType::F16, 64, 3, 64),
                                    Shape4{1, 128, 256, 64}),
            size_t(0));  // no split at layer1's size
  // layer3 3x3 256 at 32x64: 64x64 -> 128 blocks -> 3 slices.
  EXPECT_EQ(plan(Shape4{1, 32, 64, 256}, 256, 3, 1, with_workspace).split_k, 3);
  // 3x3 128 -> 128 at 256x512 (layer2 class at 1024x2048): 1024 blocks of 128x128, C = 128: the
  // 8-warp main loop; C = 96 (half-empty 64-channel steps) or the gather loader keep 4 warps.
  EXPECT_EQ(plan(Shape4{1, 256, 512, 128}, 128, 3, 1, {}).tile, ConvTile::M128N128W8);
  EXPECT_EQ(plan(Shape4{1, 256, 512, 96}, 128, 3, 1, {}).tile, ConvTile::M128N128);
  ConvPlan odd = plan(Shape4{1, 256, 512, 12}, 128, 3, 1, {});
  EXPECT_TRUE(odd.gather_activations);
  EXPECT_EQ(odd.tile, ConvTile::M128N128);
  (void)ctx;
}

// The 8-warp tile against the 4-warp 128x128 under emu's counters, 3x3 64 -> 128 on 8 x 16
// pixels (one block): the same warp MMAs (4608) and global bytes, half the block barriers
// (main-loop steps + 2: 9 + 2 = 11 vs 18 + 2 = 20), and bitwise the same random-float result (the
// k16 slices are accumulated in the same order; a step's padding adds zeros).
TEST(ConvBnActEightWarp, CountersAndBitwiseEqualToFourWarps) {
  FARSEE_PREPARE_EXEC_CASE((ExecCase{Executor::Emu, emu::Schedule::GreedyForward}));
  const Context ctx = exec_context(ExecCase{Executor::Emu, emu::Schedule::GreedyForward});
  ConvCase k{Shape4{1, 8, 16, 64}, 128, 3, 1};
  k.split_k = 1;
  const ConvData d = random_data(k, 42);
  std::vector<float> out[2];
  emu::LaunchCounters counted[2];
  for (int i = 0; i < 2; ++i) {
    k.tile = i == 0 ? ConvTile::M128N128 : ConvTile::M128N128W8;
    emu::reset_counters();
    emu::set_counting(true);
    out[i] = run_conv(ctx, DType::F16, k, d, true);
    emu::set_counting(false);
    for (const emu::LaunchCounters& l : emu::take_launch_counters()) {
      if (l.mma > 0) counted[i].add(l);  // the conv (the other launches: uploads, checks)
    }
  }
  EXPECT_TRUE(all_equal(out[1], out[0]));
  EXPECT_EQ(counted[0].mma, 4608);
  EXPECT_EQ(counted[1].mma, 4608);
  EXPECT_EQ(counted[0].barriers, 20);
  EXPECT_EQ(counted[1].barriers, 11);
  EXPECT_EQ(counted[1].global_load.bytes(), counted[0].global_load.bytes());
  EXPECT_EQ(counted[1].global_store.bytes(), counted[0].global_store.bytes());
  std::cout << "4 warps / 8 warps: barriers " << counted[0].barriers << " / " << counted[1].barriers
            << ", shared ways " << counted[0].bank_conflict_ways() << " / "
            << counted[1].bank_conflict_ways() << ", shared wavefronts "
            << counted[0].shared_wavefronts << " / " << counted[1].shared_wavefronts << "\n";
}

// ---- argument validation ----

TEST(ConvBnActArguments, RejectsBadArguments) {
  const Context ctx{Executor::Emu, nullptr};
  const Shape4 xs{1, 8, 8, 16};
  const ConvShape conv = square_conv(3);
  std::vector<float> weights(size_t(32) * 9 * 16, 1.0f);
  ConvWeights w32 = pack_conv_weights(ctx, weights, 32, 3, 3, 16, DType::F32);
  NhwcTestTensor x(ctx, DType::F32, xs);
  NhwcTestTensor y(ctx, DType::F32, Shape4{1, 8, 8, 32});
  ConvEpilogue e;
  EXPECT_NO_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, e, y.view()));

  // y shaped for stride 1 with stride 2
  EXPECT_THROW(conv_bn_act_fwd(ctx, square_conv(3, 2), x.view(), w32, e, y.view()), Error);
  // kernel size does not match the weights
  EXPECT_THROW(conv_bn_act_fwd(ctx, square_conv(1), x.view(), w32, e, y.view()), Error);
  // x channels do not match the weights
  NhwcTestTensor x8(ctx, DType::F32, Shape4{1, 8, 8, 8});
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x8.view(), w32, e, y.view()), Error);
  // dtype mismatch
  NhwcTestTensor y16(ctx, DType::F16, Shape4{1, 8, 8, 32});
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, e, y16.view()), Error);
  // weights packed for another executor
  ConvWeights wref = pack_conv_weights(reference_context(), weights, 32, 3, 3, 16, DType::F32);
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), wref, e, y.view()), Error);
  // shuffle factor 3 and K not divisible by factor^2
  ConvEpilogue bad_shuffle;
  bad_shuffle.shuffle_factor = 3;
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, bad_shuffle, y.view()), Error);
  ConvWeights w24 = pack_conv_weights(ctx, std::vector<float>(size_t(24) * 9 * 16, 1.0f), 24, 3, 3,
                                      16, DType::F32);
  ConvEpilogue shuffle4;
  shuffle4.shuffle_factor = 4;
  NhwcTestTensor y_shuffled(ctx, DType::F32, Shape4{1, 32, 32, 1});
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w24, shuffle4, y_shuffled.view()), Error);
  // residual of the wrong shape (shuffled instead of the conv output) and dtype
  NhwcTestTensor wrong_residual(ctx, DType::F32, Shape4{1, 8, 8, 16});
  ConvEpilogue with_residual;
  with_residual.residual = wrong_residual.view();
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, with_residual, y.view()), Error);
  NhwcTestTensor residual16(ctx, DType::F16, Shape4{1, 8, 8, 32});
  with_residual.residual = residual16.view();
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, with_residual, y.view()), Error);
  // empty output (input smaller than the kernel without padding)
  ConvShape valid = square_conv(3);
  valid.pad_h = valid.pad_w = 0;
  NhwcTestTensor tiny(ctx, DType::F32, Shape4{1, 2, 2, 16});
  EXPECT_THROW(conv_bn_act_fwd(ctx, valid, tiny.view(), w32, e, y.view()), Error);
  // groups
  ConvShape grouped = square_conv(3, 1, 1, 2);
  EXPECT_THROW(conv_bn_act_fwd(ctx, grouped, x.view(), w32, e, y.view()), Error);
  EXPECT_THROW(pack_conv_weights(ctx, weights, 32, 3, 3, 8, DType::F32, 2), Error);
  // weight count
  EXPECT_THROW(pack_conv_weights(ctx, weights, 32, 3, 3, 15, DType::F32), Error);
  // forced split-K without (enough) workspace; more slices than reduction steps
  ConvOptions split;
  split.split_k = 2;
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, e, y.view(), split), Error);
  std::vector<float> workspace(size_t(1000) * 64 * 32);
  split.workspace = workspace.data();
  split.workspace_bytes = workspace.size() * sizeof(float);
  // forced split-K with a workspace but without tile counters
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, e, y.view(), split), Error);
  split.split_k = 1000;
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w32, e, y.view(), split), Error);
  // unpacked weights
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), ConvWeights{}, e, y.view()), Error);
}

// Sub-pixel packed weights (19 classes x 4^2, fp32 stride 20): the epilogue must shuffle by the
// packing's factor, y's pixel stride must cover the padding it zeroes, and K never splits.
TEST(ConvBnActArguments, RejectsBadSubpixelUse) {
  const Context ctx{Executor::Emu, nullptr};
  const ConvShape conv = square_conv(1);
  NhwcTestTensor x(ctx, DType::F32, Shape4{1, 2, 2, 8});
  ConvWeights w = pack_subpixel_conv_weights(ctx, std::vector<float>(19 * 16 * 8, 1.0f), 19 * 16, 1,
                                             1, 8, DType::F32, 4);
  EXPECT_EQ(w.subpixel_stride, 20);
  ConvEpilogue e;
  e.shuffle_factor = 4;
  NhwcTestTensor padded(ctx, DType::F32, Shape4{1, 8, 8, 19}, Placement{0, 20});
  EXPECT_NO_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w, e, padded.view()));
  NhwcTestTensor dense(ctx, DType::F32, Shape4{1, 8, 8, 19});
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w, e, dense.view()), Error);
  ConvEpilogue plain;  // packed for x4, stored un-shuffled
  NhwcTestTensor unshuffled(ctx, DType::F32, Shape4{1, 2, 2, 19 * 16});
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w, plain, unshuffled.view()), Error);
  ConvOptions split;
  split.split_k = 2;
  EXPECT_THROW(conv_bn_act_fwd(ctx, conv, x.view(), w, e, padded.view(), split), Error);
  EXPECT_EQ(conv_workspace_bytes(conv, w, x.view().shape), 0u);
  EXPECT_THROW(
      pack_subpixel_conv_weights(ctx, std::vector<float>(18 * 8, 1.0f), 18, 1, 1, 8, DType::F32, 4),
      Error);
}

}  // namespace
}  // namespace farsee::test
