// The space-to-depth stem (net/stem.h) against the plain 7x7 stride-2 stem on the reference
// executor (the oracle, untouched): input and weights rearranged by net/stem.cpp, the 4x4 conv run
// by conv_bn_act_fwd on cpu and emu (two schedules), fp32 and fp16, even and odd sizes.
#include "net/stem.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/conv_bn_act.h"
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

// conv(x, w) + bias, ReLU, on ctx: the plain stem (s2d false) or its space-to-depth form.
std::vector<float> run_stem(const Context& ctx, DType dtype, const StemData& d, bool s2d) {
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
  if (s2d && dtype == DType::F16) EXPECT_FALSE(plan_conv(conv, w, x.view()).gather_activations);
  NhwcTestTensor y(ctx, dtype, ys);
  conv_bn_act_fwd(ctx, conv, x.view(), w, e, y.view());
  return y.download();
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
