// The cpu executor's reductions are split by the problem shape only (kernels/cpu/*.cpp): the same
// inputs give bitwise the same outputs for any OpenMP thread count. Each case runs an op with 1, 2
// and 3 threads and compares the results byte for byte (conv forward, dgrad and wgrad with a
// pixel-shuffled dy, BN training forward and backward, depthwise wgrad, max-pool backward; the deep
// layers' channel / tap blocks) on shapes large enough to use several segments and tiles.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/conv_bn_act.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/pool.h"
#include "tests/support/executors.h"

extern "C" void omp_set_num_threads(int);
extern "C" int omp_get_max_threads();

namespace farsee::test {
namespace {

const Context kCpu{Executor::Cpu, nullptr};

// Runs `op` (which fills `out`) once per thread count; every result must equal the first bitwise.
// The shapes are above kernels/cpu/parallel.h's thresholds (smaller ops run on one thread).
void expect_thread_count_independent(const char* what, const std::function<void()>& op,
                                     const std::vector<float>& out) {
  const int saved = omp_get_max_threads();
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    op();
    if (first.empty()) {
      first = out;
      continue;
    }
    ASSERT_EQ(out.size(), first.size());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(0, std::memcmp(&out[i], &first[i], sizeof(float)))
          << what << ": element " << i << " differs with " << threads << " threads (" << out[i]
          << " vs " << first[i] << " with 1)";
    }
  }
  omp_set_num_threads(saved);
}

TensorView host_view(std::vector<float>& v, Shape4 s) {
  return make_view(v.data(), DType::F32, s);
}

TEST(CpuDeterminism, ConvForwardDgradWgrad) {
  // 3x3 stride-2 conv, dy pixel-shuffled by 2; 2 x 48 x 48 = 4608 output pixels: the wgrad
  // runs 4 segments, the forward and dgrad several tiles; 170M multiply-adds, above the
  // single-thread threshold (kernels/cpu/parallel.h), so the threads really split the work.
  const ConvShape conv = square_conv(3, 2);
  const Shape4 xs{2, 96, 96, 64};
  const int K = 64, t = 2;
  std::vector<float> x = random_floats(size_t(xs.elements()), 1);
  std::vector<float> w = random_floats(size_t(K) * 9 * xs.c, 2);
  const ConvWeights fw = pack_conv_weights(kCpu, w, K, 3, 3, xs.c, DType::F32);
  ConvWeights bw = alloc_conv_weights(kCpu, K, 3, 3, xs.c, DType::F32, ConvWeightUse::BackwardData);
  refresh_conv_weights(kCpu, w.data(), bw);
  const Shape4 ys{xs.n, conv.out_h(xs.h) * t, conv.out_w(xs.w) * t, K / (t * t)};
  std::vector<float> y(size_t(ys.elements()));
  ConvEpilogue e;
  e.shuffle_factor = t;
  std::vector<float> xv = x;
  expect_thread_count_independent(
      "conv_bn_act_fwd",
      [&] { conv_bn_act_fwd(kCpu, conv, host_view(xv, xs), fw, e, host_view(y, ys)); }, y);
  std::vector<float> dy = random_floats(size_t(ys.elements()), 3);
  std::vector<float> dx(size_t(xs.elements()));
  expect_thread_count_independent(
      "conv_bwd_data",
      [&] { conv_bwd_data(kCpu, conv, host_view(dy, ys), t, bw, host_view(dx, xs), false); }, dx);
  std::vector<float> dwb(size_t(K) * 9 * xs.c + K);
  expect_thread_count_independent(
      "conv_bwd_weight",
      [&] {
        std::fill(dwb.begin(), dwb.end(), 0.0f);
        conv_bwd_weight(kCpu, conv, host_view(xv, xs), host_view(dy, ys), t, dwb.data(),
                        dwb.data() + size_t(K) * 9 * xs.c, nullptr, 0);
      },
      dwb);
}

TEST(CpuDeterminism, DeepLayerChannelAndTapBlocks) {
  // A layer4-class 3x3 on an 8x8 map (256 -> 256, 38M multiply-adds): the forward and dgrad cut
  // into channel blocks, the wgrad into one tap per block (kernels/cpu/conv_bn_act.cpp).
  const ConvShape conv = square_conv(3, 1);
  const Shape4 xs{1, 8, 8, 256};
  const int K = 256;
  std::vector<float> x = random_floats(size_t(xs.elements()), 11);
  std::vector<float> w = random_floats(size_t(K) * 9 * xs.c, 12);
  const ConvWeights fw = pack_conv_weights(kCpu, w, K, 3, 3, xs.c, DType::F32);
  ConvWeights bw = alloc_conv_weights(kCpu, K, 3, 3, xs.c, DType::F32, ConvWeightUse::BackwardData);
  refresh_conv_weights(kCpu, w.data(), bw);
  const Shape4 ys{1, 8, 8, K};
  std::vector<float> y(size_t(ys.elements()));
  expect_thread_count_independent(
      "conv_bn_act_fwd",
      [&] { conv_bn_act_fwd(kCpu, conv, host_view(x, xs), fw, ConvEpilogue{}, host_view(y, ys)); },
      y);
  std::vector<float> dy = random_floats(size_t(ys.elements()), 13);
  std::vector<float> dx(size_t(xs.elements()));
  expect_thread_count_independent(
      "conv_bwd_data",
      [&] { conv_bwd_data(kCpu, conv, host_view(dy, ys), 1, bw, host_view(dx, xs), false); }, dx);
  std::vector<float> dwb(size_t(K) * 9 * xs.c + K);
  expect_thread_count_independent(
      "conv_bwd_weight",
      [&] {
        std::fill(dwb.begin(), dwb.end(), 0.0f);
        conv_bwd_weight(kCpu, conv, host_view(x, xs), host_view(dy, ys), 1, dwb.data(),
                        dwb.data() + size_t(K) * 9 * xs.c, nullptr, 0);
      },
      dwb);
}

TEST(CpuDeterminism, MaxPoolBackward) {
  // The stem's pool at 2 x 96 x 128 x 64 (dy 2 x 48 x 64): above the threading threshold.
  const Shape4 xs{2, 96, 128, 64};
  const MaxPoolParams p{3, 2, 1};
  const Shape4 ys = max_pool_output_shape(p, xs);
  std::vector<float> x = random_floats(size_t(xs.elements()), 14);
  std::vector<float> dy = random_floats(size_t(ys.elements()), 15);
  std::vector<float> dx(x.size());
  expect_thread_count_independent(
      "max_pool_bwd",
      [&] { max_pool_bwd(kCpu, p, host_view(x, xs), host_view(dy, ys), host_view(dx, xs)); }, dx);
}

TEST(CpuDeterminism, BatchNormAndDepthwiseWgrad) {
  // 40960 pixels (20 BN segments) x 64 channels: above the single-thread threshold.
  const Shape4 s{2, 128, 160, 64};
  std::vector<float> x = random_floats(size_t(s.elements()), 4, -2.0f, 3.0f);
  std::vector<float> gamma = random_floats(size_t(s.c), 5), beta = random_floats(size_t(s.c), 6);
  std::vector<float> y(x.size()), out(x.size() + 4 * size_t(s.c));
  std::vector<float> ws(batchnorm_workspace_bytes(s) / sizeof(float) + 1);
  expect_thread_count_independent(
      "batchnorm_train_fwd",
      [&] {
        std::vector<float> rm(size_t(s.c), 0.0f), rv(size_t(s.c), 1.0f), sm(size_t(s.c)),
            si(size_t(s.c));
        batchnorm_train_fwd(kCpu, host_view(x, s), gamma.data(), beta.data(), TensorView{}, true,
                            host_view(y, s), sm.data(), si.data(), rm.data(), rv.data(),
                            BatchNormTrainArgs{}, ws.data(), ws.size() * sizeof(float));
        std::copy(y.begin(), y.end(), out.begin());
        std::copy(sm.begin(), sm.end(), out.begin() + long(x.size()));
        std::copy(si.begin(), si.end(), out.begin() + long(x.size()) + s.c);
        std::copy(rm.begin(), rm.end(), out.begin() + long(x.size()) + 2 * s.c);
        std::copy(rv.begin(), rv.end(), out.begin() + long(x.size()) + 3 * s.c);
      },
      out);
  std::vector<float> dy = random_floats(x.size(), 7);
  std::vector<float> mean(size_t(s.c), 0.1f), invstd(size_t(s.c), 0.9f);
  std::vector<float> dx(x.size()), grads(x.size() + 2 * size_t(s.c));
  expect_thread_count_independent(
      "batchnorm_train_bwd",
      [&] {
        std::vector<float> dg(size_t(s.c), 0.0f), db(size_t(s.c), 0.0f);
        batchnorm_train_bwd(kCpu, host_view(x, s), host_view(y, s), true, host_view(dy, s),
                            mean.data(), invstd.data(), gamma.data(), host_view(dx, s),
                            TensorView{}, false, dg.data(), db.data(), ws.data(),
                            ws.size() * sizeof(float));
        std::copy(dx.begin(), dx.end(), grads.begin());
        std::copy(dg.begin(), dg.end(), grads.begin() + long(x.size()));
        std::copy(db.begin(), db.end(), grads.begin() + long(x.size()) + s.c);
      },
      grads);
  const DepthwiseParams p{1, 2, false};
  std::vector<float> dw(size_t(s.c) * 9);
  std::vector<float> dws(depthwise_atrous_bwd_weight_workspace_bytes(p, s) / sizeof(float) + 1);
  expect_thread_count_independent(
      "depthwise_atrous_bwd_weight",
      [&] {
        std::fill(dw.begin(), dw.end(), 0.0f);
        depthwise_atrous_bwd_weight(kCpu, p, host_view(x, s), host_view(dy, s), dw.data(),
                                    dws.data(), dws.size() * sizeof(float));
      },
      dw);
}

}  // namespace
}  // namespace farsee::test
