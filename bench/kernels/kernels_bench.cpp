// Microbenchmarks of depthwise_atrous, max_pool, pixel_shuffle and resize_argmax at the sizes of
// the network (batch 1), fp32 and fp16 storage. Names: <op>/<dtype>/<input HxWxC>/<variant>.
// Sizes (a 512x1024 input unless noted):
//   depthwise_atrous  64x128x256 and 128x256x128 at rates 6/12/18 (the maps of a 1024x2048-class
//                     input), and the paper preset's own F-ASPP maps at 512x1024: 16x32x256
//                     (F-ASPP-1, stride 32) and 64x128x128 (F-ASPP-2, stride 8)
//   depthwise_atrous_branches  rates 6/12/18 in one launch, 64x128x256 and 16x32x256
//   max_pool          3x3/s2 on the stem output 256x512x64
//   pixel_shuffle     x4 of the two sub-pixel convs: 16x32x4096 -> 64x128x256, 64x128x304 ->
//                     256x512x19
//   resize_argmax     19-class logits 256x512 -> 1024x2048 labels (the paper's supervision size),
//                     align_corners false (paper preset) and true (rtseg preset)
#include <string>

#include "bench/kernels/bench_util.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/pixel_shuffle.h"
#include "kernels/pool.h"
#include "kernels/resize_argmax.h"

namespace farsee::bench {
namespace {

constexpr DType kDTypes[] = {DType::F32, DType::F16};

void register_depthwise_atrous() {
  const Shape4 maps[] = {
      {1, 64, 128, 256}, {1, 128, 256, 128}, {1, 16, 32, 256}, {1, 64, 128, 128}};
  for (DType dtype : kDTypes) {
    for (const Shape4& x_shape : maps) {
      for (int dilation : {6, 12, 18}) {
        const std::string name = std::string("depthwise_atrous/") + dtype_name(dtype) + "/" +
                                 shape_name(x_shape) + "/rate" + std::to_string(dilation);
        register_gpu_benchmark(name, [=](benchmark::State& state) {
          const Context ctx = cuda_context();
          const DepthwiseParams params{1, dilation, true};
          DeviceTensor x(ctx, dtype, x_shape, 1);
          DeviceTensor y(ctx, dtype, depthwise_atrous_output_shape(params, x_shape), 2);
          rt::Buffer weight = device_floats(ctx, size_t(x_shape.c) * 9, 3);
          rt::Buffer scale = device_floats(ctx, size_t(x_shape.c), 4, 0.5f, 1.5f);
          rt::Buffer bias = device_floats(ctx, size_t(x_shape.c), 5);
          time_launches(state, ctx, x.bytes() + y.bytes(), [&] {
            depthwise_atrous_fwd(ctx, params, x.view, weight.as<float>(), scale.as<float>(),
                                 bias.as<float>(), y.view);
          });
        });
      }
    }
  }
}

// The three branches of an F-ASPP block (rates 6/12/18) in one launch, against three launches
// of depthwise_atrous_fwd above.
void register_depthwise_branches() {
  const Shape4 maps[] = {{1, 64, 128, 256}, {1, 16, 32, 256}};
  for (DType dtype : kDTypes) {
    for (const Shape4& x_shape : maps) {
      const std::string name = std::string("depthwise_atrous_branches/") + dtype_name(dtype) + "/" +
                               shape_name(x_shape) + "/rates6-12-18";
      register_gpu_benchmark(name, [=](benchmark::State& state) {
        const Context ctx = cuda_context();
        std::vector<DeviceTensor> xs, ys;
        std::vector<rt::Buffer> params;
        xs.reserve(3);
        ys.reserve(3);
        DepthwiseBranches b;
        b.count = 3;
        for (int i = 0; i < b.count; ++i) {
          xs.emplace_back(ctx, dtype, x_shape, 1 + i);
          ys.emplace_back(ctx, dtype, x_shape, 4 + i);
          params.push_back(device_floats(ctx, size_t(x_shape.c) * 9, 7 + i));
          params.push_back(device_floats(ctx, size_t(x_shape.c), 10 + i));
        }
        for (int i = 0; i < b.count; ++i) {
          b.branch[i] = DepthwiseBranch{6 * (i + 1),
                                        xs[size_t(i)].view,
                                        ys[size_t(i)].view,
                                        params[size_t(2 * i)].as<float>(),
                                        nullptr,
                                        params[size_t(2 * i + 1)].as<float>()};
        }
        time_launches(state, ctx, 3 * (xs[0].bytes() + ys[0].bytes()),
                      [&] { depthwise_atrous_branches_fwd(ctx, b); });
      });
    }
  }
}

void register_max_pool() {
  const Shape4 x_shape{1, 256, 512, 64};
  for (DType dtype : kDTypes) {
    const std::string name =
        std::string("max_pool/") + dtype_name(dtype) + "/" + shape_name(x_shape) + "/3x3s2";
    register_gpu_benchmark(name, [=](benchmark::State& state) {
      const Context ctx = cuda_context();
      const MaxPoolParams params{3, 2, 1};
      DeviceTensor x(ctx, dtype, x_shape, 1);
      DeviceTensor y(ctx, dtype, max_pool_output_shape(params, x_shape), 2);
      time_launches(state, ctx, x.bytes() + y.bytes(),
                    [&] { max_pool_fwd(ctx, params, x.view, y.view); });
    });
  }
}

void register_pixel_shuffle() {
  const Shape4 inputs[] = {{1, 16, 32, 256 * 16}, {1, 64, 128, 19 * 16}};
  for (DType dtype : kDTypes) {
    for (const Shape4& x_shape : inputs) {
      const std::string name =
          std::string("pixel_shuffle/") + dtype_name(dtype) + "/" + shape_name(x_shape) + "/x4";
      register_gpu_benchmark(name, [=](benchmark::State& state) {
        const Context ctx = cuda_context();
        constexpr int kFactor = 4;
        DeviceTensor x(ctx, dtype, x_shape, 1);
        DeviceTensor y(ctx, dtype, pixel_shuffle_output_shape(kFactor, x_shape), 2);
        time_launches(state, ctx, x.bytes() + y.bytes(),
                      [&] { pixel_shuffle_fwd(ctx, kFactor, x.view, y.view); });
      });
    }
  }
}

void register_resize_argmax() {
  const Shape4 logits_shape{1, 256, 512, 19};
  const int out_h = 1024, out_w = 2048;
  for (DType dtype : kDTypes) {
    for (bool align_corners : {false, true}) {
      const std::string name = std::string("resize_argmax/") + dtype_name(dtype) + "/" +
                               shape_name(logits_shape) + "/to1024x2048" +
                               (align_corners ? "/align_corners" : "");
      register_gpu_benchmark(name, [=](benchmark::State& state) {
        const Context ctx = cuda_context();
        DeviceTensor logits(ctx, dtype, logits_shape, 1);
        const int64_t label_bytes = int64_t(logits_shape.n) * out_h * out_w;
        rt::Buffer labels(ctx.executor, size_t(label_bytes));
        time_launches(state, ctx, logits.bytes() + label_bytes, [&] {
          resize_argmax_fwd(ctx, align_corners, logits.view, out_h, out_w, labels.as<uint8_t>());
        });
      });
    }
  }
}

const bool kRegistered = [] {
  register_depthwise_atrous();
  register_depthwise_branches();
  register_max_pool();
  register_pixel_shuffle();
  register_resize_argmax();
  return true;
}();

}  // namespace
}  // namespace farsee::bench
