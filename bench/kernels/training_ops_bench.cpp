// Microbenchmarks of the training ops of TRAINING_API h2 at the shapes of FarSee-Net training
// (batch 8, 512x1024 crops unless noted), fp32 and fp16 storage. Names: <op>/<dtype>/<NxHxWxC>/..
//   batchnorm_train_fwd  residual+ReLU (the ResNet block's second BN) and plain ReLU, on the
//                        stride-4 map 8x128x256x64 and the stride-32 map 8x16x32x512, plus the
//                        stride-8/16 maps 8x64x128x128 and 8x32x64x256 (3 launches each: stats,
//                        final, apply). Bytes: x + residual + y once (compulsory; x is read twice).
//   batchnorm_train_bwd  same shapes, ReLU mask + dresidual (3 launches: reduce, final, apply).
//                        Bytes: x, y, dy read once, dx and dresidual written once.
//   sgd_step             13M fp32 parameters (about the paper model), momentum 0.9, weight decay
//                        5e-4: params read+written, grads read, buffer read+written.
#include <string>

#include "bench/kernels/bench_util.h"
#include "kernels/batchnorm.h"
#include "kernels/sgd.h"

namespace farsee::bench {
namespace {

constexpr DType kDTypes[] = {DType::F32, DType::F16};
const Shape4 kBnShapes[] = {
    {8, 128, 256, 64}, {8, 64, 128, 128}, {8, 32, 64, 256}, {8, 16, 32, 512}};

void register_batchnorm() {
  for (DType dtype : kDTypes) {
    for (const Shape4& s : kBnShapes) {
      for (bool residual : {true, false}) {
        const std::string variant = residual ? "residual_relu" : "relu";
        const std::string suffix =
            std::string(dtype_name(dtype)) + "/" + shape_name(s) + "/" + variant;
        register_gpu_benchmark("batchnorm_train_fwd/" + suffix, [=](benchmark::State& state) {
          const Context ctx = cuda_context();
          DeviceTensor x(ctx, dtype, s, 1), r(ctx, dtype, s, 2), y(ctx, dtype, s, 3);
          rt::Buffer gamma = device_floats(ctx, size_t(s.c), 4, 0.5f, 1.5f);
          rt::Buffer beta = device_floats(ctx, size_t(s.c), 5);
          rt::Buffer stats = device_floats(ctx, size_t(4 * s.c), 6, 0.5f, 1.5f);
          rt::Buffer ws(ctx.executor, batchnorm_workspace_bytes(s));
          float* st = stats.as<float>();
          const TensorView rv = residual ? r.view : TensorView{};
          const int64_t bytes = x.bytes() + y.bytes() + (residual ? r.bytes() : 0);
          time_launches(state, ctx, bytes, [&] {
            batchnorm_train_fwd(ctx, x.view, gamma.as<float>(), beta.as<float>(), rv, true, y.view,
                                st, st + s.c, st + 2 * s.c, st + 3 * s.c, BatchNormTrainArgs{},
                                ws.data(), ws.bytes());
          });
        });
        register_gpu_benchmark("batchnorm_train_bwd/" + suffix, [=](benchmark::State& state) {
          const Context ctx = cuda_context();
          DeviceTensor x(ctx, dtype, s, 1), y(ctx, dtype, s, 2), dy(ctx, dtype, s, 3);
          DeviceTensor dx(ctx, dtype, s, 4), dres(ctx, dtype, s, 5);
          rt::Buffer mean = device_floats(ctx, size_t(s.c), 6);
          rt::Buffer invstd = device_floats(ctx, size_t(s.c), 7, 0.5f, 1.5f);
          rt::Buffer gamma = device_floats(ctx, size_t(s.c), 8, 0.5f, 1.5f);
          rt::Buffer grads = device_floats(ctx, size_t(2 * s.c), 9);
          rt::Buffer ws(ctx.executor, batchnorm_workspace_bytes(s));
          const TensorView drv = residual ? dres.view : TensorView{};
          const int64_t bytes =
              x.bytes() + y.bytes() + dy.bytes() + dx.bytes() + (residual ? dres.bytes() : 0);
          time_launches(state, ctx, bytes, [&] {
            batchnorm_train_bwd(ctx, x.view, y.view, true, dy.view, mean.as<float>(),
                                invstd.as<float>(), gamma.as<float>(), dx.view, drv, false,
                                grads.as<float>(), grads.as<float>() + s.c, ws.data(), ws.bytes());
          });
        });
      }
    }
  }
}

void register_sgd() {
  constexpr int64_t kParams = 13 * 1000 * 1000;
  register_gpu_benchmark("sgd_step/fp32/13M/momentum0.9_wd5e-4", [](benchmark::State& state) {
    const Context ctx = cuda_context();
    rt::Buffer p = device_floats(ctx, size_t(kParams), 1);
    rt::Buffer g = device_floats(ctx, size_t(kParams), 2, -1e-3f, 1e-3f);
    rt::Buffer buf = device_floats(ctx, size_t(kParams), 3, -1e-3f, 1e-3f);
    time_launches(state, ctx, kParams * 4 * 5, [&] {
      sgd_step(ctx, kParams, p.as<float>(), g.as<float>(), buf.as<float>(), 1e-3f, 0.9f, 5e-4f,
               false);
    });
  });
}

const bool kRegistered = [] {
  register_batchnorm();
  register_sgd();
  return true;
}();

}  // namespace
}  // namespace farsee::bench
