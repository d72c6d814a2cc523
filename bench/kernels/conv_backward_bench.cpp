// Microbenchmarks of the conv backward passes on every convolution of both network presets
// (bench/kernels/conv_shapes.h: 512x1024 input, batch 1), fp16 and fp32 storage:
//   conv_bwd_data/<dtype>/<layer>/...    dgrad with the plan's heuristic (split-K workspace
//                                        supplied); dy pixel-shuffled for the sub-pixel convs
//   conv_bwd_weight/<dtype>/<layer>/...  wgrad + bias grad with the heuristic's reduction
//                                        splits and workspace (label: splits, tensor cores or SIMT)
// Counters: TFLOP/s = 2 * output pixels * K * R*S*C per launch (the useful work: dgrad at stride
// 2 also computes the zero taps of the valid-tap condition, which are not counted).
#include <algorithm>
#include <string>

#include "bench/kernels/bench_util.h"
#include "bench/kernels/conv_shapes.h"
#include "kernels/conv_bn_act.h"

namespace farsee::bench {
namespace {

Shape4 dy_shape(const NetConv& c) {
  const Shape4 o = conv_out_shape(c);
  const int t = c.shuffle;
  return Shape4{o.n, o.h * t, o.w * t, o.c / (t * t)};
}

void register_dgrad(DType dtype, const NetConv& c) {
  register_gpu_benchmark(base_name(dtype, c, "conv_bwd_data"), [=](benchmark::State& state) {
    const Context ctx = cuda_context();
    const ConvShape conv = geometry(c);
    ConvWeights w =
        alloc_conv_weights(ctx, c.K, c.kernel, c.kernel, c.x.c, dtype, ConvWeightUse::BackwardData);
    rt::Buffer master =
        device_floats(ctx, size_t(c.K) * c.kernel * c.kernel * c.x.c, 3, -0.1f, 0.1f);
    refresh_conv_weights(ctx, master.as<float>(), w);
    DeviceTensor dy(ctx, dtype, dy_shape(c), 1);
    DeviceTensor dx(ctx, dtype, c.x, 2);
    ConvOptions options;
    options.workspace_bytes = conv_bwd_data_workspace_bytes(conv, c.K, c.x);
    rt::Buffer workspace, counters;
    if (options.workspace_bytes > 0) {
      workspace = rt::Buffer(ctx.executor, options.workspace_bytes);
      options.workspace = workspace.data();
      // Split-K tile counters: zeroed once, every launch leaves them zero.
      options.tile_counter_count = conv_bwd_data_tile_counter_count(conv, c.K, c.x);
      counters = rt::Buffer(ctx.executor, options.tile_counter_count * sizeof(int));
      rt::memset(ctx, counters.data(), 0, counters.bytes());
      options.tile_counters = counters.as<int>();
    }
    state.SetLabel("split_k workspace " + std::to_string(options.workspace_bytes));
    time_launches(state, ctx, dy.bytes() + dx.bytes() + int64_t(w.buffer.bytes()), [&] {
      conv_bwd_data(ctx, conv, dy.view, c.shuffle, w, dx.view, false, options);
    });
    set_flops_counter(state, c);
  });
}

void register_wgrad(DType dtype, const NetConv& c) {
  register_gpu_benchmark(base_name(dtype, c, "conv_bwd_weight"), [=](benchmark::State& state) {
    const Context ctx = cuda_context();
    const ConvShape conv = geometry(c);
    DeviceTensor x(ctx, dtype, c.x, 1);
    DeviceTensor dy(ctx, dtype, dy_shape(c), 2);
    const size_t weights = size_t(c.K) * c.kernel * c.kernel * c.x.c;
    rt::Buffer dw = device_floats(ctx, weights, 3), db = device_floats(ctx, size_t(c.K), 4);
    const size_t bytes = conv_bwd_weight_workspace_bytes(conv, c.K, c.x);
    rt::Buffer workspace(ctx.executor, bytes > 0 ? bytes : 256);
    // Split tile counters: zeroed once, every launch leaves them zero.
    ConvWgradOptions options;
    options.workspace = workspace.data();
    options.workspace_bytes = bytes;
    options.tile_counter_count = conv_bwd_weight_tile_counter_count(conv, c.K, c.x);
    rt::Buffer counters(ctx.executor,
                        std::max<size_t>(options.tile_counter_count, 1) * sizeof(int));
    rt::memset(ctx, counters.data(), 0, counters.bytes());
    options.tile_counters = counters.as<int>();
    state.SetLabel("workspace " + std::to_string(bytes) +
                   (dtype == DType::F16 && c.shuffle == 1 && c.x.c % 8 == 0 ? " mma" : " simt"));
    time_launches(state, ctx, x.bytes() + dy.bytes() + int64_t(weights) * 8, [&] {
      conv_bwd_weight(ctx, conv, x.view, dy.view, c.shuffle, dw.as<float>(), db.as<float>(),
                      options);
    });
    set_flops_counter(state, c);
  });
}

const bool kRegistered = [] {
  for (DType dtype : {DType::F16, DType::F32}) {
    for (const NetConv& c : net_convs()) {
      register_dgrad(dtype, c);
      register_wgrad(dtype, c);
    }
  }
  return true;
}();

}  // namespace
}  // namespace farsee::bench
