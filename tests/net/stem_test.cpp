// The space-to-depth stem (net/stem.h) against the plain 7x7 stride-2 stem on the reference
// executor (the oracle, untouched): input and weights rearranged by net/stem.cpp, the 4x4 conv run
// by conv_bn_act_fwd on cpu and emu (two schedules), fp32 and fp16, even and odd sizes. And the
// stem's max-pool fused into the space-to-depth stem conv (ConvEpilogue::max_pool, fp16, emu)
// against the stem then max_pool_fwd.
#include "net/stem.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/conv_bn_act.h"
#include "kernels/pool.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

struct StemData {
  Shape4 x;
  int K;
  std::vector<float> input, weights, bias;
};

// What follows the stem conv: nothing, max_pool_fwd, or the pool fused into the conv.
enum class Pool { None, After, Fused };

// conv(x, w) + bias, ReLU, on ctx: the plain stem (s2d false) or its space-to-depth form; then
// the 3x3 / s2 / pad 1 max-pool when `pool` says so.
std::vector<float> run_stem(const Context& ctx, DType dtype, const StemData& d, bool s2d,
                            Pool pool = Pool::None) {
  const ConvShape stem = square_conv(7, 2);
  const int channels = net::stem_s2d_channels(dtype);
  const Shape4 xs = s2d ? net::stem_s2d_shape(d.x, channels) : d.x;
  std::vector<float> input = d.input;
  ConvWeights w;
  if (s2d) {
    input.resize(size_t(xs.elements()));
    net::stem_s2d_input(d.input.data(), d.x, channels, input.data());
    w = pack_conv_weights(ctx, net::stem_s2d_weights(d.weights, d.K, channels), d.K, 4, 4, channels,
                          dtype);
  } else {
    w = pack_conv_weights(ctx, d.weights, d.K, 7, 7, 3, dtype);
  }
  const ConvShape conv = s2d ? net::stem_s2d_conv(stem) : stem;
  NhwcTestTensor x(ctx, dtype, xs);
  x.upload(input);
  rt::Buffer bias = to_executor(ctx, d.bias);
  ConvEpilogue e;
  e.bias = bias.as<float>();
  e.relu = true;
  const Shape4 ys{d.x.n, stem.out_h(d.x.h), stem.out_w(d.x.w), d.K};
  EXPECT_EQ(conv_output_shape(conv, w, e, xs), ys);
  // fp16: 32-byte block pixels go through the 16-byte cp.async loader, not the gather loader.
  if (s2d && dtype == DType::F16) {
    EXPECT_FALSE(plan_conv(conv, w, x.view()).gather_activations);
  }
  const Shape4 pooled = max_pool_output_shape(MaxPoolParams{}, ys);
  if (pool == Pool::Fused) {
    e.max_pool = true;
    EXPECT_EQ(conv_output_shape(conv, w, e, xs), pooled);
    NhwcTestTensor p(ctx, dtype, pooled);  // poisoned: an unwritten element stays NaN
    conv_bn_act_fwd(ctx, conv, x.view(), w, e, p.view());
    return p.download();
  }
  NhwcTestTensor y(ctx, dtype, ys);
  conv_bn_act_fwd(ctx, conv, x.view(), w, e, y.view());
  if (pool == Pool::None) return y.download();
  NhwcTestTensor p(ctx, dtype, pooled);
  max_pool_fwd(ctx, MaxPoolParams{}, y.view(), p.view());
  return p.download();
}

class StemSpaceToDepth : public ::testing::TestWithParam<ExecCase> {};

// Small integers (x in [-3, 3], w in [-2, 2], bias in [-4, 4]): every sum is an exact integer
// below 2^11, so fp32 and fp16 results must equal the reference's bit for bit.
TEST_P(StemSpaceToDepth, EqualsThePlainStem) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  uint32_t seed = 700;
  for (DType dtype : {DType::F32, DType::F16}) {
    for (Shape4 x : {Shape4{2, 10, 14, 3}, Shape4{1, 9, 11, 3}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " x " + to_string(x));
      StemData d{x, 24, {}, {}, {}};
      d.input = small_ints(size_t(x.elements()), seed++, -3, 3);
      d.weights = small_ints(size_t(d.K) * 7 * 7 * 3, seed++, -2, 2);
      d.bias = small_ints(size_t(d.K), seed++, -4, 4);
      const std::vector<float> got = run_stem(exec_context(GetParam()), dtype, d, true);
      const std::vector<float> want = run_stem(reference_context(), dtype, d, false);
      EXPECT_TRUE(all_equal(got, want));
    }
  }
}

// The fused stem + max-pool (fp16): pooled tiles of 5 x 5 from 11 x 11 conv patches. Case 1:
// conv output 5 x 11 (two tiles across, patches cut by the right and bottom edges), K = 72 past
// one 64-wide tile; case 2: two images of 11 x 4 (two tiles down), K = 20 (K % 8 != 0: element
// stores). Small integers: bitwise the reference's plain stem then its max-pool; random floats
// (case 1): bitwise the same executor's space-to-depth stem then max_pool_fwd (max is exact, the
// activations are rounded to fp16 before it in both). Emu's MMAs dominate the time: 12 blocks.
TEST_P(StemSpaceToDepth, FusedMaxPoolEqualsStemThenPool) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  if (GetParam().executor == Executor::Cpu) GTEST_SKIP() << "the fused pool is emu/cuda only";
  const Context ctx = exec_context(GetParam());
  uint32_t seed = 900;
  for (auto [x, K] : {std::pair{Shape4{1, 10, 22, 3}, 72}, std::pair{Shape4{2, 21, 8, 3}, 20}}) {
    SCOPED_TRACE("x " + to_string(x) + ", K " + std::to_string(K));
    StemData d{x, K, {}, {}, {}};
    d.input = small_ints(size_t(x.elements()), seed++, -3, 3);
    d.weights = small_ints(size_t(K) * 7 * 7 * 3, seed++, -2, 2);
    d.bias = small_ints(size_t(K), seed++, -4, 4);
    const std::vector<float> fused = run_stem(ctx, DType::F16, d, true, Pool::Fused);
    EXPECT_TRUE(all_equal(fused, run_stem(reference_context(), DType::F16, d, false, Pool::After)));
    if (K != 72) continue;
    d.input = random_floats(size_t(x.elements()), seed++, -1.f, 1.f);
    d.weights = random_floats(size_t(K) * 7 * 7 * 3, seed++, -0.2f, 0.2f);
    d.bias = random_floats(size_t(K), seed++, -0.5f, 0.5f);
    EXPECT_TRUE(all_equal(run_stem(ctx, DType::F16, d, true, Pool::Fused),
                          run_stem(ctx, DType::F16, d, true, Pool::After)));
  }
}

// Where the fused pool does not run, conv_bn_act_fwd says so instead of storing the plain conv.
TEST_P(StemSpaceToDepth, FusedMaxPoolRefusals) {
  FARSEE_PREPARE_EXEC_CASE(GetParam());
  StemData d{Shape4{1, 8, 8, 3}, 8, std::vector<float>(8 * 8 * 3, 1.f),
             std::vector<float>(8 * 7 * 7 * 3, 1.f), std::vector<float>(8, 0.f)};
  const Context ctx = exec_context(GetParam());
  if (GetParam().executor == Executor::Cpu) {
    EXPECT_THROW(run_stem(ctx, DType::F16, d, true, Pool::Fused), Error);
  } else {
    EXPECT_THROW(run_stem(ctx, DType::F32, d, true, Pool::Fused), Error);   // fp16 only
    EXPECT_THROW(run_stem(ctx, DType::F16, d, false, Pool::Fused), Error);  // 3 channels: gather
  }
  EXPECT_THROW(run_stem(reference_context(), DType::F16, d, false, Pool::Fused), Error);
}

INSTANTIATE_TEST_SUITE_P(Executors, StemSpaceToDepth, ::testing::ValuesIn(kernel_exec_cases()),
                         ExecCaseName());

// The rearrangement itself: block pixel (Y, X) holds x[2Y - 1 + a, 2X - 1 + b] at a*6 + b*3 + c,
// zeros outside x and in the padding channels; weights tap (u, v) holds w[2u + a][2v + b].
TEST(StemSpaceToDepthLayout, InputAndWeights) {
  const Shape4 x{1, 3, 4, 3};
  std::vector<float> input(size_t(x.elements()));
  for (size_t i = 0; i < input.size(); ++i) input[i] = float(i + 1);
  const Shape4 s = net::stem_s2d_shape(x, 16);
  EXPECT_EQ(s, (Shape4{1, 3, 3, 16}));
  std::vector<float> out(size_t(s.elements()), -1.0f);
  net::stem_s2d_input(input.data(), x, 16, out.data());
  auto at = [&](int by, int bx, int ch) { return out[size_t((by * s.w + bx) * 16 + ch)]; };
  EXPECT_EQ(at(0, 0, 0), 0.0f);                                        // x[-1, -1]: padding
  EXPECT_EQ(at(0, 0, 9), input[0]);                                    // a = b = 1: x[0, 0, 0]
  EXPECT_EQ(at(1, 1, 0 * 6 + 1 * 3 + 2), input[(1 * 4 + 2) * 3 + 2]);  // x[1, 2, 2]
  EXPECT_EQ(at(2, 2, 1 * 6 + 0 * 3 + 1), 0.0f);                        // x[3, 3]: below the image
  EXPECT_EQ(at(1, 1, 12), 0.0f);                                       // padding channel
  std::vector<float> w(7 * 7 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i + 1);
  const std::vector<float> w4 = net::stem_s2d_weights(w, 1, 12);
  EXPECT_EQ(w4[size_t((1 * 4 + 2) * 12 + 1 * 6 + 0 * 3 + 2)], w[(3 * 7 + 4) * 3 + 2]);
  EXPECT_EQ(w4[size_t((3 * 4 + 0) * 12 + 1 * 6)], 0.0f);  // tap r = 7: zero
  EXPECT_THROW(net::stem_s2d_conv(square_conv(3, 2)), Error);
  EXPECT_THROW(net::stem_s2d_weights(w, 2, 12), Error);
}

}  // namespace
}  // namespace farsee::test
