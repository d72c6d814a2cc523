// Reference conv2d backward (conv2d_bwd_data, conv2d_bwd_weight): central finite differences in
// double of L(x, w, b) = sum(dy * stored(conv(x, w) + b)), where stored() is the identity or the
// pixel shuffle by t, computed by a naive double loop written here (independent of conv2d.cpp).
// L is linear in each of x, w, b, so the central difference is exact up to double rounding
// (~1e-12 relative); the reference rounds its double sums once to fp32. Tolerance:
// atol 1e-5 + rtol 1e-6 on gradients of magnitude <= ~20 (fp32 rounding is 6e-8 relative).
// Also: accumulate (dx +=, dw +=, db +=), channel slices, fp16 storage, bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/conv_bn_act.h"
#include "kernels/reference/conv2d.h"
#include "tests/kernels/nhwc_test_tensor.h"
#include "tests/kernels/reference/test_util.h"
#include "tests/support/compare.h"
#include "tests/support/executors.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

struct BwdCase {
  Shape4 x;
  int K;
  ConvShape conv;
  int shuffle = 1;
};

std::string describe(const BwdCase& k) {
  std::ostringstream s;
  s << "x " << to_string(k.x) << " K " << k.K << " " << k.conv.kernel_h << "x" << k.conv.kernel_w
    << "/s" << k.conv.stride_h << "/p" << k.conv.pad_h << "/d" << k.conv.dilation_h << " shuffle "
    << k.shuffle;
  return s.str();
}

Shape4 conv_out(const BwdCase& k) {
  return Shape4{k.x.n, k.conv.out_h(k.x.h), k.conv.out_w(k.x.w), k.K};
}
Shape4 stored_out(const BwdCase& k) {
  const Shape4 o = conv_out(k);
  return Shape4{o.n, o.h * k.shuffle, o.w * k.shuffle, k.K / (k.shuffle * k.shuffle)};
}

// L = sum over the stored output of dy * stored(conv(x, w) + b), all in double, dense NHWC/KRSC.
double loss(const BwdCase& k, const std::vector<double>& x, const std::vector<double>& w,
            const std::vector<double>& b, const std::vector<double>& dy) {
  const Shape4 o = conv_out(k), st = stored_out(k);
  const ConvShape& c = k.conv;
  const int R = c.kernel_h, S = c.kernel_w, C = k.x.c, t = k.shuffle;
  double total = 0.0;
  for (int n = 0; n < o.n; ++n) {
    for (int oy = 0; oy < o.h; ++oy) {
      for (int ox = 0; ox < o.w; ++ox) {
        for (int kk = 0; kk < k.K; ++kk) {
          double v = b[kk];
          for (int r = 0; r < R; ++r) {
            const int iy = oy * c.stride_h - c.pad_h + r * c.dilation_h;
            if (iy < 0 || iy >= k.x.h) continue;
            for (int s = 0; s < S; ++s) {
              const int ix = ox * c.stride_w - c.pad_w + s * c.dilation_w;
              if (ix < 0 || ix >= k.x.w) continue;
              for (int ch = 0; ch < C; ++ch) {
                v += x[((size_t(n) * k.x.h + iy) * k.x.w + ix) * C + ch] *
                     w[((size_t(kk) * R + r) * S + s) * C + ch];
              }
            }
          }
          // PixelShuffle: conv channel kk = c*t*t + i*t + j -> (oy*t + i, ox*t + j, c).
          const int cc = kk / (t * t), i = (kk / t) % t, j = kk % t;
          total += v * dy[((size_t(n) * st.h + oy * t + i) * st.w + ox * t + j) * st.c + cc];
        }
      }
    }
  }
  return total;
}

// Central difference of L along every element of `param` (linear: exact up to rounding).
std::vector<float> numeric_grad(std::vector<double>& param, const std::function<double()>& f) {
  std::vector<float> g(param.size());
  const double h = 0.5;  // L is linear in param: any step is exact; 0.5 keeps it representable
  for (size_t i = 0; i < param.size(); ++i) {
    const double saved = param[i];
    param[i] = saved + h;
    const double up = f();
    param[i] = saved - h;
    const double down = f();
    param[i] = saved;
    g[i] = float((up - down) / (2 * h));
  }
  return g;
}

std::vector<double> as_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

struct Grads {
  std::vector<float> dx, dw, db;
};

// The reference's gradients for the case (fp32 storage; dx and dy dense or placed).
Grads reference_grads(const BwdCase& k, const std::vector<float>& x, const std::vector<float>& w,
                      const std::vector<float>& dy, Placement dy_place = {},
                      Placement dx_place = {}) {
  NhwcTestTensor dyt(kRef, DType::F32, stored_out(k), dy_place);
  dyt.upload(dy);
  NhwcTestTensor xt(kRef, DType::F32, k.x);
  xt.upload(x);
  std::vector<float> wcopy = w;
  const TensorView wv =
      make_view(wcopy.data(), DType::F32, Shape4{k.K, k.conv.kernel_h, k.conv.kernel_w, k.x.c});
  NhwcTestTensor dx(kRef, DType::F32, k.x, dx_place);
  reference::conv2d_bwd_data(k.conv, dyt.view(), wv, dx.view(), k.shuffle);
  Grads g;
  g.dx = dx.download();
  EXPECT_TRUE(dx.outside_untouched());
  g.dw.assign(w.size(), 0.0f);
  g.db.assign(size_t(k.K), 0.0f);
  reference::conv2d_bwd_weight(k.conv, xt.view(), dyt.view(), k.K, g.dw.data(), g.db.data(),
                               k.shuffle);
  return g;
}

ConvShape geometry(int kernel, int stride, int pad, int dilation) {
  ConvShape c;
  c.kernel_h = c.kernel_w = kernel;
  c.stride_h = c.stride_w = stride;
  c.pad_h = c.pad_w = pad;
  c.dilation_h = c.dilation_w = dilation;
  return c;
}

void check_finite_differences(const BwdCase& k, uint32_t seed) {
  SCOPED_TRACE(describe(k));
  const std::vector<float> x = random_floats(size_t(k.x.elements()), seed);
  const std::vector<float> w =
      random_floats(size_t(k.K) * k.conv.kernel_h * k.conv.kernel_w * k.x.c, seed + 1);
  const std::vector<float> b = random_floats(size_t(k.K), seed + 2);
  const std::vector<float> dy = random_floats(size_t(stored_out(k).elements()), seed + 3);
  const Grads g = reference_grads(k, x, w, dy);
  std::vector<double> xd = as_double(x), wd = as_double(w), bd = as_double(b);
  const std::vector<double> dyd = as_double(dy);
  auto f = [&] { return loss(k, xd, wd, bd, dyd); };
  EXPECT_TRUE(all_close(g.dx, numeric_grad(xd, f), 1e-5, 1e-6)) << "dx";
  EXPECT_TRUE(all_close(g.dw, numeric_grad(wd, f), 1e-5, 1e-6)) << "dw";
  EXPECT_TRUE(all_close(g.db, numeric_grad(bd, f), 1e-5, 1e-6)) << "db";
}

// Every conv shape class of both presets at small size: the 7x7/s2/p3 stem on 3 channels, 3x3
// stride 1 and 2, 1x1 stride 1 and 2, dilation 2, odd H/W, batch 1 and 3.
TEST(Conv2dBackward, FiniteDifferencesEveryShapeClass) {
  const std::vector<BwdCase> cases = {
      {Shape4{1, 11, 9, 3}, 4, geometry(7, 2, 3, 1)}, {Shape4{3, 5, 4, 3}, 5, geometry(3, 1, 1, 1)},
      {Shape4{1, 7, 6, 4}, 3, geometry(3, 2, 1, 1)},  {Shape4{1, 5, 7, 6}, 4, geometry(1, 1, 0, 1)},
      {Shape4{2, 7, 5, 4}, 6, geometry(1, 2, 0, 1)},  {Shape4{1, 7, 8, 3}, 4, geometry(3, 1, 2, 2)},
      {Shape4{1, 6, 6, 2}, 3, geometry(3, 2, 0, 1)},  // no padding: taps past the last output
  };
  uint32_t seed = 10;
  for (const BwdCase& k : cases) check_finite_differences(k, seed += 10);
}

// dy of a pixel-shuffled output (t = 2 and 4), read through the mapping.
TEST(Conv2dBackward, FiniteDifferencesPixelShuffledOutputGradient) {
  check_finite_differences({Shape4{1, 3, 4, 3}, 8, geometry(1, 1, 0, 1), 2}, 100);
  check_finite_differences({Shape4{2, 3, 2, 2}, 32, geometry(1, 1, 0, 1), 4}, 110);
  check_finite_differences({Shape4{1, 4, 3, 2}, 8, geometry(3, 1, 1, 1), 2}, 120);
}

// accumulate / +=: dx += result, dw += sum, db += sum (starting from non-zero values); dx and dy
// as channel slices of wider buffers (nothing outside dx's slice written).
TEST(Conv2dBackward, AccumulatesAndSlices) {
  const BwdCase k{Shape4{2, 5, 6, 5}, 6, geometry(3, 2, 1, 1)};
  const std::vector<float> x = random_floats(size_t(k.x.elements()), 1);
  const std::vector<float> w = random_floats(size_t(k.K) * 9 * k.x.c, 2);
  const std::vector<float> dy = random_floats(size_t(stored_out(k).elements()), 3);
  const Grads plain = reference_grads(k, x, w, dy);
  const Grads sliced = reference_grads(k, x, w, dy, Placement{3, 11}, Placement{2, 9});
  EXPECT_TRUE(all_equal(sliced.dx, plain.dx));

  const std::vector<float> dx0 = random_floats(size_t(k.x.elements()), 4);
  NhwcTestTensor dyt(kRef, DType::F32, stored_out(k));
  dyt.upload(dy);
  NhwcTestTensor dx(kRef, DType::F32, k.x);
  dx.upload(dx0);
  std::vector<float> wcopy = w;
  reference::conv2d_bwd_data(k.conv, dyt.view(), make_view(wcopy.data(), DType::F32, {6, 3, 3, 5}),
                             dx.view(), 1, true);
  std::vector<float> want(dx0.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = float(double(dx0[i]) + double(plain.dx[i]));
  // The reference adds in double and rounds once; the fp32 sum of two fp32 values may differ by
  // one rounding of the result: <= 1.2e-7 relative.
  EXPECT_TRUE(all_close(dx.download(), want, 1e-6, 2.5e-7));

  std::vector<float> dw = random_floats(w.size(), 5), db = random_floats(size_t(k.K), 6);
  const std::vector<float> dw0 = dw, db0 = db;
  NhwcTestTensor xt(kRef, DType::F32, k.x);
  xt.upload(x);
  reference::conv2d_bwd_weight(k.conv, xt.view(), dyt.view(), k.K, dw.data(), db.data());
  for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];
  for (size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];
  EXPECT_TRUE(all_close(dw, plain.dw, 1e-6, 2.5e-7));
  EXPECT_TRUE(all_close(db, plain.db, 1e-6, 2.5e-7));
}

// fp16 storage: the same double sums on the fp16-rounded values, dx rounded once to fp16.
TEST(Conv2dBackward, Fp16StorageMatchesFp32OnRoundedData) {
  const BwdCase k{Shape4{1, 6, 5, 8}, 8, geometry(3, 1, 1, 1)};
  const std::vector<float> x = round_to_half(random_floats(size_t(k.x.elements()), 7));
  const std::vector<float> dy = round_to_half(random_floats(size_t(stored_out(k).elements()), 8));
  const std::vector<float> w = round_to_half(random_floats(size_t(k.K) * 9 * k.x.c, 9));
  const Grads f32 = reference_grads(k, x, w, dy);
  NhwcTestTensor dyt(kRef, DType::F16, stored_out(k));
  dyt.upload(dy);
  NhwcTestTensor xt(kRef, DType::F16, k.x);
  xt.upload(x);
  std::vector<uint16_t> wh = to_half_bits(w);
  NhwcTestTensor dx(kRef, DType::F16, k.x);
  reference::conv2d_bwd_data(k.conv, dyt.view(), make_view(wh.data(), DType::F16, {8, 3, 3, 8}),
                             dx.view());
  EXPECT_TRUE(all_equal(dx.download(), round_to_half(f32.dx)));
  std::vector<float> dw(w.size(), 0.0f);
  reference::conv2d_bwd_weight(k.conv, xt.view(), dyt.view(), k.K, dw.data(), nullptr);
  EXPECT_TRUE(all_equal(dw, f32.dw));
}

TEST(Conv2dBackward, RejectsBadArguments) {
  const BwdCase k{Shape4{1, 6, 5, 4}, 8, geometry(3, 1, 1, 1)};
  NhwcTestTensor dy(kRef, DType::F32, Shape4{1, 6, 5, 8});
  NhwcTestTensor dx(kRef, DType::F32, k.x);
  std::vector<float> w(8 * 9 * 4, 0.0f), dw(w.size(), 0.0f);
  const TensorView wv = make_view(w.data(), DType::F32, {8, 3, 3, 4});
  // dy shaped for shuffle 1 while shuffle is 2
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::conv2d_bwd_data(k.conv, dy.view(), wv, dx.view(), 2); }, "dy"));
  ConvShape grouped = k.conv;
  grouped.groups = 2;
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::conv2d_bwd_data(grouped, dy.view(), wv, dx.view()); }, "groups"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { reference::conv2d_bwd_weight(k.conv, dx.view(), dy.view(), 8, nullptr, nullptr); },
      "dw"));
}

// The public API on the reference executor: alloc/refresh weights, conv_bwd_data (with the
// BackwardData weights) and conv_bwd_weight agree with conv2d_bwd_*.
TEST(ConvBackwardApi, ReferenceExecutorMatchesConv2dBackward) {
  const BwdCase k{Shape4{2, 7, 6, 8}, 16, geometry(3, 2, 1, 1), 2};
  const std::vector<float> x = random_floats(size_t(k.x.elements()), 21);
  const std::vector<float> w = random_floats(size_t(k.K) * 9 * k.x.c, 22);
  const std::vector<float> dy = random_floats(size_t(stored_out(k).elements()), 23);
  const Grads want = reference_grads(k, x, w, dy);

  ConvWeights bw =
      alloc_conv_weights(kRef, k.K, 3, 3, k.x.c, DType::F32, ConvWeightUse::BackwardData);
  rt::Buffer master = to_executor(kRef, w);
  refresh_conv_weights(kRef, master.as<float>(), bw);
  NhwcTestTensor dyt(kRef, DType::F32, stored_out(k));
  dyt.upload(dy);
  NhwcTestTensor xt(kRef, DType::F32, k.x);
  xt.upload(x);
  NhwcTestTensor dx(kRef, DType::F32, k.x);
  conv_bwd_data(kRef, k.conv, dyt.view(), k.shuffle, bw, dx.view(), false);
  EXPECT_TRUE(all_equal(dx.download(), want.dx));

  std::vector<float> dw(w.size(), 0.0f), db(size_t(k.K), 0.0f);
  const size_t ws = conv_bwd_weight_workspace_bytes(k.conv, k.K, k.x);
  rt::Buffer workspace(kRef.executor, ws + 1);
  conv_bwd_weight(kRef, k.conv, xt.view(), dyt.view(), k.shuffle, dw.data(), db.data(),
                  workspace.data(), ws);
  EXPECT_TRUE(all_equal(dw, want.dw));
  EXPECT_TRUE(all_equal(db, want.db));

  // Forward weights are refused by conv_bwd_data.
  ConvWeights fw = alloc_conv_weights(kRef, k.K, 3, 3, k.x.c, DType::F32, ConvWeightUse::Forward);
  EXPECT_TRUE(throws_error_mentioning(
      [&] { conv_bwd_data(kRef, k.conv, dyt.view(), k.shuffle, fw, dx.view(), false); },
      "BackwardData"));
}

}  // namespace
}  // namespace farsee::test
