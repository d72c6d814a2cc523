// Reference conv2d: hand-worked cases, PyTorch fixtures (both loops: direct and im2col + dgemm),
// channel slices, fp16 storage, bad arguments, and the speed the network tests rely on.
#include "kernels/reference/conv2d.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

using reference::Conv2dAlgo;

const Context kRef{Executor::Reference, nullptr};

std::string algo_name(Conv2dAlgo a) {
  switch (a) {
    case Conv2dAlgo::Auto:
      return "auto";
    case Conv2dAlgo::Direct:
      return "direct";
    case Conv2dAlgo::Gemm:
      return "gemm";
  }
  return "?";
}

// Dense KRSC weights in fp32 or fp16 storage, viewed as a {K, R, S, C} TensorView.
struct HostWeights {
  std::vector<float> f32;
  std::vector<uint16_t> f16;
  TensorView view;
  HostWeights(const std::vector<float>& krsc, Shape4 shape, DType dtype) {
    if (dtype == DType::F32) {
      f32 = krsc;
      view = make_view(f32.data(), dtype, shape);
    } else {
      f16 = to_half_bits(krsc);
      view = make_view(f16.data(), dtype, shape);
    }
  }
};

// Runs the reference conv on dense or sliced fp32/fp16 tensors; returns y as dense NHWC floats.
std::vector<float> run_conv(Conv2dAlgo algo, const ConvShape& conv, Shape4 xs,
                            const std::vector<float>& x_nhwc, Shape4 ws,
                            const std::vector<float>& w_krsc, const float* bias, DType dtype,
                            Placement xp = {}, Placement yp = {}) {
  NhwcTestTensor x(kRef, dtype, xs, xp);
  x.upload(x_nhwc);
  HostWeights w(w_krsc, ws, dtype);
  NhwcTestTensor y(kRef, dtype, reference::conv2d_output_shape(conv, xs, ws.n), yp);
  reference::conv2d_fwd(algo, conv, x.view(), w.view, bias, y.view());
  std::vector<float> out = y.download();
  EXPECT_TRUE(y.outside_untouched());
  return out;
}

class Conv2dAlgos : public ::testing::TestWithParam<Conv2dAlgo> {};

// 3x3 input 1..9, pad 1. Output channel 0: all-ones kernel (+0.5 bias), i.e. the sum of each
// 3x3 neighbourhood; channel 1: centre tap 2 (-1 bias), i.e. 2x - 1.
TEST_P(Conv2dAlgos, HandWorkedOnesKernelWithPadding) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> w(2 * 9, 0.0f);
  for (int i = 0; i < 9; ++i) w[i] = 1.0f;
  w[9 + 4] = 2.0f;
  const float bias[2] = {0.5f, -1.0f};
  const std::vector<float> got = run_conv(GetParam(), square_conv(3), Shape4{1, 3, 3, 1}, x,
                                          Shape4{2, 3, 3, 1}, w, bias, DType::F32);
  // clang-format off
  const std::vector<float> want = {
      12.5f, 1,  21.5f, 3,  16.5f, 5,
      27.5f, 7,  45.5f, 9,  33.5f, 11,
      24.5f, 13, 39.5f, 15, 28.5f, 17};
  // clang-format on
  EXPECT_TRUE(all_equal(got, want));
}

// 5x5, two channels (v and -v, v(i, j) = 5i + j + 1), groups 2, 3x3 dilation 2, pad 2, stride 2
// -> 3x3. Group 0 (k = 0): taps (0,0) and (2,2) = 1: y = v(2oy-2, 2ox-2) + v(2oy+2, 2ox+2), zero
// outside. Group 1 (k = 1, reads channel 1 only): centre tap 1: y = -v(2oy, 2ox).
TEST_P(Conv2dAlgos, HandWorkedStrideDilationGroups) {
  std::vector<float> x;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      x.push_back(float(5 * i + j + 1));
      x.push_back(-float(5 * i + j + 1));
    }
  std::vector<float> w(2 * 9, 0.0f);
  w[0] = w[8] = 1.0f;
  w[9 + 4] = 1.0f;
  ConvShape conv = square_conv(3, 2, 2, 2);
  const std::vector<float> got =
      run_conv(GetParam(), conv, Shape4{1, 5, 5, 2}, x, Shape4{2, 3, 3, 1}, w, nullptr, DType::F32);
  // clang-format off
  const std::vector<float> want = {
      13, -1,   15, -3,   0, -5,
      23, -11,  26, -13,  3, -15,
      0,  -21,  11, -23,  13, -25};
  // clang-format on
  EXPECT_TRUE(all_equal(got, want));
}

INSTANTIATE_TEST_SUITE_P(Reference, Conv2dAlgos,
                         ::testing::Values(Conv2dAlgo::Auto, Conv2dAlgo::Direct, Conv2dAlgo::Gemm),
                         [](const auto& info) { return algo_name(info.param); });

// ---- PyTorch fixtures ----

struct ConvFixture {
  ConvShape conv;
  Shape4 xs, ws, ys;
  std::vector<float> x, w, bias, y;
};

ConvFixture load_conv_fixture(const std::string& name) {
  const OpFixture f(name);
  ConvFixture c;
  const std::vector<int32_t> p = f.params();
  EXPECT_EQ(p.size(), 8u) << f.path("params");
  c.x = f.nhwc("x", &c.xs);
  c.w = f.nhwc("w", &c.ws);  // OIHW -> KRSC is the NCHW -> NHWC permutation
  c.y = f.nhwc("y", &c.ys);
  c.conv.kernel_h = c.ws.h;
  c.conv.kernel_w = c.ws.w;
  c.conv.stride_h = p[0];
  c.conv.stride_w = p[1];
  c.conv.pad_h = p[2];
  c.conv.pad_w = p[3];
  c.conv.dilation_h = p[4];
  c.conv.dilation_w = p[5];
  c.conv.groups = p[6];
  if (p[7]) c.bias = f.floats("bias");
  return c;
}

const char* const kConvFixtures[] = {
    "conv_stem_7x7_s2",  "conv_3x3_s1_b3", "conv_3x3_s2",     "conv_1x1_b3",
    "conv_1x1_s2",       "conv_3x3_d2",    "conv_3x3_d6",     "conv_depthwise_d2_b3",
    "conv_depthwise_s2", "conv_groups2",   "conv_asymmetric", "conv_3x3_wide"};

class Conv2dFixture : public ::testing::TestWithParam<const char*> {};

// The fixture's y is float64 PyTorch rounded to fp32; ours is a double sum rounded to fp32, so
// they can differ only where the two double results straddle an fp32 rounding boundary: by one
// ulp (rtol 2^-23 = 1.2e-7; measured: bit-exact on every fixture). atol covers the double sums'
// own error (~1e-16 * sum |x * w| < 1e-13) for outputs near zero.
constexpr double kConvRtol = 1.2e-7, kConvAtol = 1e-12;

TEST_P(Conv2dFixture, MatchesPyTorchWithEveryAlgo) {
  const ConvFixture c = load_conv_fixture(GetParam());
  ASSERT_EQ(reference::conv2d_output_shape(c.conv, c.xs, c.ws.n), c.ys);
  const float* bias = c.bias.empty() ? nullptr : c.bias.data();
  for (Conv2dAlgo algo : {Conv2dAlgo::Auto, Conv2dAlgo::Direct, Conv2dAlgo::Gemm}) {
    SCOPED_TRACE(algo_name(algo));
    EXPECT_TRUE(all_close(run_conv(algo, c.conv, c.xs, c.x, c.ws, c.w, bias, DType::F32), c.y,
                          kConvAtol, kConvRtol));
    // x and y as channel slices of wider buffers (the concat-for-free layout).
    EXPECT_TRUE(all_close(run_conv(algo, c.conv, c.xs, c.x, c.ws, c.w, bias, DType::F32,
                                   Placement{3, c.xs.c + 5}, Placement{1, c.ys.c + 2}),
                          c.y, kConvAtol, kConvRtol));
  }
}

// fp16 storage of x, w and y: the same as computing in fp32 on the fp16-rounded inputs and
// rounding the result to fp16 (both are one double sum, rounded to fp32, then to fp16): exact.
TEST_P(Conv2dFixture, Fp16StorageIsRoundedFp32) {
  const ConvFixture c = load_conv_fixture(GetParam());
  const float* bias = c.bias.empty() ? nullptr : c.bias.data();
  const std::vector<float> x16 = round_to_half(c.x), w16 = round_to_half(c.w);
  for (Conv2dAlgo algo : {Conv2dAlgo::Direct, Conv2dAlgo::Gemm}) {
    SCOPED_TRACE(algo_name(algo));
    const std::vector<float> want =
        round_to_half(run_conv(algo, c.conv, c.xs, x16, c.ws, w16, bias, DType::F32));
    const std::vector<float> got = run_conv(algo, c.conv, c.xs, x16, c.ws, w16, bias, DType::F16,
                                            Placement{2, c.xs.c + 3}, Placement{1, c.ys.c + 1});
    EXPECT_TRUE(all_equal(got, want));
  }
}

INSTANTIATE_TEST_SUITE_P(PyTorch, Conv2dFixture, ::testing::ValuesIn(kConvFixtures),
                         [](const auto& info) { return std::string(info.param); });

// ---- bad arguments ----

TEST(Conv2dArgs, BadShapesNameTheTensor) {
  std::vector<float> xb(1 * 6 * 6 * 4), wb(8 * 3 * 3 * 4), yb(1 * 6 * 6 * 8);
  const TensorView x = make_view(xb.data(), DType::F32, Shape4{1, 6, 6, 4});
  const TensorView w = make_view(wb.data(), DType::F32, Shape4{8, 3, 3, 4});
  const TensorView y = make_view(yb.data(), DType::F32, Shape4{1, 6, 6, 8});
  const ConvShape conv = square_conv(3);
  EXPECT_NO_THROW(reference::conv2d_fwd(conv, x, w, nullptr, y));

  TensorView y_bad = y;
  y_bad.shape.h = 5;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::conv2d_fwd(conv, x, w, nullptr, y_bad); },
                                      "conv2d_fwd: y"));
  TensorView w_bad = w;
  w_bad.shape.c = 3;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::conv2d_fwd(conv, x, w_bad, nullptr, y); },
                                      "conv2d_fwd: w"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::conv2d_fwd(square_conv(3, 1, 1, 3), x, w, nullptr, y); }, "groups"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::conv2d_fwd(square_conv(5), x, w, nullptr, y); }, "conv2d_fwd: w"));
  ConvShape too_big = square_conv(3);
  too_big.pad_h = too_big.pad_w = 0;
  too_big.dilation_h = too_big.dilation_w = 4;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::conv2d_fwd(too_big, x, w, nullptr, y); },
                                      "smaller than the dilated"));
  ConvShape zero_stride = conv;
  zero_stride.stride_w = 0;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::conv2d_fwd(zero_stride, x, w, nullptr, y); },
                                      "stride"));
  TensorView x_null = x;
  x_null.data = nullptr;
  EXPECT_TRUE(throws_error_mentioning([&] { reference::conv2d_fwd(conv, x_null, w, nullptr, y); },
                                      "conv2d_fwd: x"));
}

// ---- speed ----

// Every conv of ResNet-18 on a 64x128 image (~0.3 GMAC, what the network tests run per forward
// pass). Measured on the 2 shared cores of the dev machine under load: 0.03-0.1 s (3-10 GMAC/s).
// The bound is a generous guard against falling back to a slow loop, not a benchmark.
TEST(Conv2dSpeed, ResNet18ConvsAt64x128) {
  struct Layer {
    int in_c, out_c, k, stride, in_h, in_w;
  };
  const std::vector<Layer> layers = {
      {3, 64, 7, 2, 64, 128},  // stem
      {64, 64, 3, 1, 16, 32},  {64, 64, 3, 1, 16, 32},  {64, 64, 3, 1, 16, 32},
      {64, 64, 3, 1, 16, 32},  // layer1
      {64, 128, 3, 2, 16, 32}, {128, 128, 3, 1, 8, 16}, {128, 128, 3, 1, 8, 16},
      {128, 128, 3, 1, 8, 16}, {64, 128, 1, 2, 16, 32},  // layer2
      {128, 256, 3, 2, 8, 16}, {256, 256, 3, 1, 4, 8},  {256, 256, 3, 1, 4, 8},
      {256, 256, 3, 1, 4, 8},  {128, 256, 1, 2, 8, 16},  // layer3
      {256, 512, 3, 2, 4, 8},  {512, 512, 3, 1, 2, 4},  {512, 512, 3, 1, 2, 4},
      {512, 512, 3, 1, 2, 4},  {256, 512, 1, 2, 4, 8}};  // layer4
  struct Data {
    ConvShape conv;
    Shape4 xs, ws, ys;
    std::vector<float> x, w, y;
  };
  std::vector<Data> data;
  double macs = 0;
  for (const Layer& l : layers) {
    Data d;
    d.conv = square_conv(l.k, l.stride);
    d.xs = Shape4{1, l.in_h, l.in_w, l.in_c};
    d.ws = Shape4{l.out_c, l.k, l.k, l.in_c};
    d.ys = reference::conv2d_output_shape(d.conv, d.xs, l.out_c);
    d.x = random_floats(size_t(d.xs.elements()), 1);
    d.w = random_floats(size_t(d.ws.elements()), 2);
    d.y.resize(size_t(d.ys.elements()));
    macs += double(d.ys.elements()) * l.k * l.k * l.in_c;
    data.push_back(std::move(d));
  }
  const auto start = std::chrono::steady_clock::now();
  for (Data& d : data) {
    reference::conv2d_fwd(d.conv, make_view(d.x.data(), DType::F32, d.xs),
                          make_view(d.w.data(), DType::F32, d.ws), nullptr,
                          make_view(d.y.data(), DType::F32, d.ys));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("ResNet-18 convs at 64x128: %.3f GMAC in %.3f s (%.2f GMAC/s)\n", macs * 1e-9,
              seconds, macs * 1e-9 / seconds);
  EXPECT_GT(macs, 0.25e9);
  EXPECT_LT(seconds, 5.0);
}

}  // namespace
}  // namespace farsee::test
