// Microbenchmarks of the spatial backward kernels (training, batch 8, a 512x1024 input as in the
// paper's training recipe), fp32 and fp16 activation storage. Names:
// <op>/<dtype>/<shape>/<variant>. Bytes processed: compulsory traffic (inputs read once, outputs
// written once), see bench_util.h.
//   max_pool_bwd          3x3/s2/p1 on the stem output 8x256x512x64 (x, dy in; dx out)
//   depthwise_bwd_data    F-ASPP maps 8x16x32x256 (stride 32) and 8x64x128x128 (stride 8), rates
//   depthwise_bwd_weight  6 and 12 (dy, weights in; dx out / x, dy in; dw out)
//   softmax_ce_upsample   logits 8x256x512x19 (stride 2), labels 8x1024x2048 (the paper's
//                         supervision size), both align_corners; loss + gradient, all three
//                         launches
#include <cstdint>
#include <string>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/pool.h"
#include "kernels/softmax_cross_entropy.h"

namespace farsee::bench {
namespace {

constexpr DType kDTypes[] = {DType::F32, DType::F16};

void register_max_pool_bwd() {
  const Shape4 x_shape{8, 256, 512, 64};
  for (DType dtype : kDTypes) {
    const std::string name =
        std::string("max_pool_bwd/") + dtype_name(dtype) + "/" + shape_name(x_shape) + "/3x3s2";
    register_gpu_benchmark(name, [=](benchmark::State& state) {
      const Context ctx = cuda_context();
      const MaxPoolParams params{3, 2, 1};
      DeviceTensor x(ctx, dtype, x_shape, 1);
      DeviceTensor dy(ctx, dtype, max_pool_output_shape(params, x_shape), 2);
      DeviceTensor dx(ctx, dtype, x_shape, 3);
      time_launches(state, ctx, x.bytes() + dy.bytes() + dx.bytes(),
                    [&] { max_pool_bwd(ctx, params, x.view, dy.view, dx.view); });
    });
  }
}

void register_depthwise_bwd() {
  const Shape4 maps[] = {{8, 16, 32, 256}, {8, 64, 128, 128}};
  for (DType dtype : kDTypes) {
    for (const Shape4& x_shape : maps) {
      for (int dilation : {6, 12}) {
        const std::string suffix = std::string(dtype_name(dtype)) + "/" + shape_name(x_shape) +
                                   "/rate" + std::to_string(dilation);
        const DepthwiseParams params{1, dilation, false};
        register_gpu_benchmark("depthwise_bwd_data/" + suffix, [=](benchmark::State& state) {
          const Context ctx = cuda_context();
          DeviceTensor dy(ctx, dtype, depthwise_atrous_output_shape(params, x_shape), 1);
          DeviceTensor dx(ctx, dtype, x_shape, 2);
          rt::Buffer weight = device_floats(ctx, size_t(x_shape.c) * 9, 3);
          time_launches(state, ctx, dy.bytes() + dx.bytes(), [&] {
            depthwise_atrous_bwd_data(ctx, params, dy.view, weight.as<float>(), dx.view, false);
          });
        });
        register_gpu_benchmark("depthwise_bwd_weight/" + suffix, [=](benchmark::State& state) {
          const Context ctx = cuda_context();
          DeviceTensor x(ctx, dtype, x_shape, 1);
          DeviceTensor dy(ctx, dtype, depthwise_atrous_output_shape(params, x_shape), 2);
          rt::Buffer dw = device_floats(ctx, size_t(x_shape.c) * 9, 3);
          const size_t ws_bytes = depthwise_atrous_bwd_weight_workspace_bytes(params, x_shape);
          rt::Buffer ws(ctx.executor, ws_bytes);
          time_launches(state, ctx, x.bytes() + dy.bytes(), [&] {
            depthwise_atrous_bwd_weight(ctx, params, x.view, dy.view, dw.as<float>(), ws.data(),
                                        ws_bytes);
          });
        });
      }
    }
  }
}

void register_softmax_ce() {
  const Shape4 logits_shape{8, 256, 512, 19};
  const int label_h = 1024, label_w = 2048;
  for (DType dtype : kDTypes) {
    for (bool align_corners : {false, true}) {
      const std::string name = std::string("softmax_ce_upsample/") + dtype_name(dtype) + "/" +
                               shape_name(logits_shape) + "/labels1024x2048" +
                               (align_corners ? "/align_corners" : "");
      register_gpu_benchmark(name, [=](benchmark::State& state) {
        const Context ctx = cuda_context();
        DeviceTensor logits(ctx, dtype, logits_shape, 1);
        DeviceTensor dlogits(ctx, DType::F32, logits_shape, 2);
        const int64_t label_count = int64_t(logits_shape.n) * label_h * label_w;
        // Labels: classes 0..18 with ~10% ignored.
        const std::vector<float> u = random_values(size_t(label_count), 3, 0.0f, 1.0f);
        std::vector<uint8_t> host(u.size());
        for (size_t i = 0; i < host.size(); ++i)
          host[i] = u[i] < 0.1f ? 255 : uint8_t(int(u[i] * 190.0f) % 19);
        rt::Buffer labels(ctx.executor, host.size());
        rt::copy_to_device(ctx, labels.data(), host.data(), host.size());
        const size_t ws_bytes = softmax_ce_workspace_bytes(logits_shape, label_h, label_w);
        rt::Buffer ws(ctx.executor, ws_bytes);
        rt::Buffer loss(ctx.executor, sizeof(float));
        time_launches(state, ctx, logits.bytes() + label_count + dlogits.bytes(), [&] {
          softmax_ce_upsample(ctx, align_corners, logits.view, labels.as<uint8_t>(), label_h,
                              label_w, loss.as<float>(), dlogits.view, 1.0f, ws.data(), ws_bytes);
        });
      });
    }
  }
}

const bool kRegistered = [] {
  register_max_pool_bwd();
  register_depthwise_bwd();
  register_softmax_ce();
  return true;
}();

}  // namespace
}  // namespace farsee::bench
