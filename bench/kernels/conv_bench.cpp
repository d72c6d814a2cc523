// Microbenchmarks of conv_bn_act: every convolution of both network presets at the 512x1024 and
// 1024x2048 inputs, batch 1, fp16 and fp32 storage, with the baselines in the same binary:
//   farsee          conv_bn_act_fwd with the plan's heuristic (split-K workspace supplied)
//   farsee/<tile>   fp16 only: each block tile forced (no split-K), to check the heuristic
//   cudnn           cuDNN's fastest algorithm (cudnnFindConvolutionForwardAlgorithm, once per
//   shape) for the same
//                   convolution, NHWC, conv only (no BN/ReLU/shuffle); fp16 with tensor cores,
//                   fp32 restricted to FMA math (no TF32, like for like). Built when bench/
//                   CMakeLists.txt finds cudnn.h and libcudnn (FARSEE_BENCH_CUDNN).
//   cublas          1x1 stride-1 convolutions as the plain GEMM Y[M][K] = X[M][C] * W[K][C]^T
//                   (cublasGemmEx, fp32 compute; FARSEE_BENCH_CUBLAS).
// Names: conv/<dtype>/<layer>/<input HxWxC>/<RxS>s<stride>-K<K>[/shuffle<t>]/<variant>.
// Counters: TFLOP/s = 2 * output pixels * K * R*S*C per launch (the useful work; padding and
// zero-padded channels not counted), from the CUDA-event time (bench/kernels/bench_util.h).
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "bench/kernels/conv_shapes.h"
#include "kernels/conv_bn_act.h"

#if FARSEE_HAVE_CUDA && FARSEE_BENCH_CUDNN
#include <cudnn.h>
#endif
#if FARSEE_HAVE_CUDA && FARSEE_BENCH_CUBLAS
#include <cublas_v2.h>
#endif

namespace farsee::bench {
namespace {

void register_farsee(DType dtype, const NetConv& c, ConvTile tile) {
  std::string name = base_name(dtype, c) + "/farsee";
  if (tile != ConvTile::Auto) name += std::string("/") + conv_tile_name(tile);
  register_gpu_benchmark(name, [=](benchmark::State& state) {
    const Context ctx = cuda_context();
    const ConvShape conv = geometry(c);
    const ConvWeights w = pack_conv_weights(
        ctx, random_values(size_t(c.K) * c.kernel * c.kernel * c.x.c, 3, -0.1f, 0.1f), c.K,
        c.kernel, c.kernel, c.x.c, dtype);
    ConvEpilogue e;
    e.relu = c.relu;
    e.shuffle_factor = c.shuffle;
    rt::Buffer scale = device_floats(ctx, size_t(c.K), 4, 0.5f, 1.5f);
    rt::Buffer bias = device_floats(ctx, size_t(c.K), 5);
    e.scale = scale.as<float>();
    e.bias = bias.as<float>();
    DeviceTensor x(ctx, dtype, c.x, 1);
    DeviceTensor y(ctx, dtype, conv_output_shape(conv, w, e, c.x), 2);
    DeviceTensor residual(ctx, dtype, c.residual ? conv_out_shape(c) : Shape4{1, 1, 1, 1}, 6);
    if (c.residual) e.residual = residual.view;
    ConvOptions options;
    options.tile = tile;
    rt::Buffer workspace, counters;
    if (tile == ConvTile::Auto) {
      options.workspace_bytes = conv_workspace_bytes(conv, w, c.x);
      if (options.workspace_bytes > 0) {
        workspace = rt::Buffer(ctx.executor, options.workspace_bytes);
        options.workspace = workspace.data();
        // Split-K tile counters: zeroed once, every launch leaves them zero.
        options.tile_counter_count = conv_tile_counter_count(conv, w, c.x);
        counters = rt::Buffer(ctx.executor, options.tile_counter_count * sizeof(int));
        rt::memset(ctx, counters.data(), 0, counters.bytes());
        options.tile_counters = counters.as<int>();
      }
    } else {
      options.split_k = 1;
    }
    const ConvPlan plan = plan_conv(conv, w, x.view, options);
    state.SetLabel(std::string(conv_tile_name(plan.tile)) + " split" +
                   std::to_string(plan.split_k) + (plan.gather_activations ? " gather" : ""));
    const int64_t bytes =
        x.bytes() + y.bytes() + int64_t(w.buffer.bytes()) + (c.residual ? residual.bytes() : 0);
    time_launches(state, ctx, bytes,
                  [&] { conv_bn_act_fwd(ctx, conv, x.view, w, e, y.view, options); });
    set_flops_counter(state, c);
  });
}

#if FARSEE_HAVE_CUDA && FARSEE_BENCH_CUDNN
#define FARSEE_CUDNN_CHECK(expr)                                                \
  do {                                                                          \
    cudnnStatus_t farsee_cudnn_status_ = (expr);                                \
    FARSEE_REQUIRE(farsee_cudnn_status_ == CUDNN_STATUS_SUCCESS,                \
                   #expr << ": " << cudnnGetErrorString(farsee_cudnn_status_)); \
  } while (0)

void register_cudnn(DType dtype, const NetConv& c) {
  register_gpu_benchmark(base_name(dtype, c) + "/cudnn", [=](benchmark::State& state) {
    const Context ctx = cuda_context();
    const cudnnDataType_t type = dtype == DType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    const Shape4 out = conv_out_shape(c);
    const ConvShape g = geometry(c);
    DeviceTensor x(ctx, dtype, c.x, 1);
    DeviceTensor w(ctx, dtype, Shape4{c.K, c.kernel, c.kernel, c.x.c}, 3);
    DeviceTensor y(ctx, dtype, out, 2);
    cudnnHandle_t handle;
    FARSEE_CUDNN_CHECK(cudnnCreate(&handle));
    cudnnTensorDescriptor_t x_desc, y_desc;
    cudnnFilterDescriptor_t w_desc;
    cudnnConvolutionDescriptor_t conv_desc;
    FARSEE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc));
    FARSEE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc));
    FARSEE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc));
    FARSEE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc));
    FARSEE_CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(x_desc, CUDNN_TENSOR_NHWC, type, c.x.n, c.x.c, c.x.h, c.x.w));
    FARSEE_CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(y_desc, CUDNN_TENSOR_NHWC, type, out.n, out.c, out.h, out.w));
    FARSEE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc, type, CUDNN_TENSOR_NHWC, c.K, c.x.c,
                                                  c.kernel, c.kernel));
    FARSEE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc, g.pad_h, g.pad_w, g.stride_h,
                                                       g.stride_w, g.dilation_h, g.dilation_w,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    FARSEE_CUDNN_CHECK(cudnnSetConvolutionMathType(
        conv_desc, dtype == DType::F16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    // cudnnFind times every algorithm: do it once per shape, not at every benchmark repetition
    // (Google Benchmark may call this function several times).
    static std::map<std::string, cudnnConvolutionFwdAlgoPerf_t> best_by_shape;
    const std::string key = base_name(dtype, c);
    if (best_by_shape.count(key) == 0) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int returned = 0;
      FARSEE_CUDNN_CHECK(
          cudnnFindConvolutionForwardAlgorithm(handle, x_desc, w_desc, conv_desc, y_desc,
                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
      int found = -1;
      for (int i = 0; i < returned && found < 0; ++i) {
        if (perf[i].status == CUDNN_STATUS_SUCCESS) found = i;
      }
      FARSEE_REQUIRE(found >= 0, "cuDNN found no algorithm for " << key);
      best_by_shape[key] = perf[found];
    }
    const cudnnConvolutionFwdAlgoPerf_t best = best_by_shape[key];
    rt::Buffer workspace(ctx.executor, std::max<size_t>(best.memory, 256));
    state.SetLabel("algo " + std::to_string(int(best.algo)));
    const float alpha = 1.0f, beta = 0.0f;
    time_launches(state, ctx, x.bytes() + w.bytes() + y.bytes(), [&] {
      FARSEE_CUDNN_CHECK(cudnnConvolutionForward(
          handle, &alpha, x_desc, x.view.data, w_desc, w.view.data, conv_desc, best.algo,
          workspace.data(), best.memory, &beta, y_desc, y.view.data));
    });
    set_flops_counter(state, c);
    cudnnDestroyConvolutionDescriptor(conv_desc);
    cudnnDestroyFilterDescriptor(w_desc);
    cudnnDestroyTensorDescriptor(y_desc);
    cudnnDestroyTensorDescriptor(x_desc);
    cudnnDestroy(handle);
  });
}
#endif

#if FARSEE_HAVE_CUDA && FARSEE_BENCH_CUBLAS
void register_cublas(DType dtype, const NetConv& c) {
  register_gpu_benchmark(base_name(dtype, c) + "/cublas", [=](benchmark::State& state) {
    const Context ctx = cuda_context();
    const Shape4 out = conv_out_shape(c);
    DeviceTensor x(ctx, dtype, c.x, 1);
    DeviceTensor w(ctx, dtype, Shape4{c.K, 1, 1, c.x.c}, 3);
    DeviceTensor y(ctx, dtype, out, 2);
    cublasHandle_t handle;
    FARSEE_REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS, "cublasCreate failed");
    const cudaDataType_t type = dtype == DType::F16 ? CUDA_R_16F : CUDA_R_32F;
    const int M = int(out.pixels()), K = c.K, C = c.x.c;
    const float alpha = 1.0f, beta = 0.0f;
    // Column-major view: Y^T (K x M) = W (row-major [K][C], i.e. C x K column-major)^T * X^T.
    time_launches(state, ctx, x.bytes() + w.bytes() + y.bytes(), [&] {
      const cublasStatus_t s = cublasGemmEx(
          handle, CUBLAS_OP_T, CUBLAS_OP_N, K, M, C, &alpha, w.view.data, type, C, x.view.data,
          type, C, &beta, y.view.data, type, K, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      FARSEE_REQUIRE(s == CUBLAS_STATUS_SUCCESS, "cublasGemmEx failed: " << int(s));
    });
    set_flops_counter(state, c);
    cublasDestroy(handle);
  });
}
#endif

const bool kRegistered = [] {
  for (DType dtype : {DType::F16, DType::F32}) {
    for (const NetConv& c : net_convs_both_sizes()) {
      register_farsee(dtype, c, ConvTile::Auto);
      if (dtype == DType::F16) {
        for (ConvTile t : {ConvTile::M128N128, ConvTile::M128N64, ConvTile::M64N64})
          register_farsee(dtype, c, t);
      }
#if FARSEE_HAVE_CUDA && FARSEE_BENCH_CUDNN
      register_cudnn(dtype, c);
#endif
#if FARSEE_HAVE_CUDA && FARSEE_BENCH_CUBLAS
      if (c.kernel == 1 && c.stride == 1) register_cublas(dtype, c);
#endif
    }
  }
  return true;
}();

}  // namespace
}  // namespace farsee::bench
