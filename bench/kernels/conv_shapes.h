// The convolutions of both network presets at a 512x1024 input, batch 1, shared by the conv
// benchmarks (conv_bench.cpp: forward; conv_backward_bench.cpp: dgrad and wgrad), with their
// geometry, useful FLOPs and benchmark base names.
#pragma once

#include <string>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/core/conv_shape.h"
#include "kernels/core/dtype.h"
#include "kernels/core/tensor.h"

namespace farsee::bench {

struct NetConv {
  const char* layer;  // preset and layer name(s)
  Shape4 x;
  int K, kernel, stride;
  int shuffle = 1;
  bool relu = true;
  bool residual = false;
};

// Input 512x1024, batch 1. ResNet-18 front-end (shared by both presets), then each head.
inline const std::vector<NetConv>& net_convs() {
  static const std::vector<NetConv> convs = {
      {"stem", {1, 512, 1024, 3}, 64, 7, 2},
      {"layer1.conv1", {1, 128, 256, 64}, 64, 3, 1},
      {"layer1.conv2+residual", {1, 128, 256, 64}, 64, 3, 1, 1, true, true},
      {"layer2.0.conv1", {1, 128, 256, 64}, 128, 3, 2},
      {"layer2.0.downsample", {1, 128, 256, 64}, 128, 1, 2, 1, false},
      {"layer2.conv2+residual", {1, 64, 128, 128}, 128, 3, 1, 1, true, true},
      {"layer3.0.conv1", {1, 64, 128, 128}, 256, 3, 2},
      {"layer3.0.downsample", {1, 64, 128, 128}, 256, 1, 2, 1, false},
      {"layer3.conv2+residual", {1, 32, 64, 256}, 256, 3, 1, 1, true, true},
      {"layer4.0.conv1", {1, 32, 64, 256}, 512, 3, 2},
      {"layer4.0.downsample", {1, 32, 64, 256}, 512, 1, 2, 1, false},
      {"layer4.conv2+residual", {1, 16, 32, 512}, 512, 3, 1, 1, true, true},
      // paper head (rtseg's F-ASPP-1 1x1s are the same 512 -> 1024 GEMM)
      {"paper+rtseg.aspp1.merged1x1", {1, 16, 32, 512}, 1024, 1, 1},
      {"paper.aspp1.project", {1, 16, 32, 1024}, 256, 1, 1},
      {"paper.up1.subpixel", {1, 16, 32, 256}, 256 * 16, 1, 1, 4},
      {"paper.low", {1, 64, 128, 128}, 48, 1, 1},
      {"paper.aspp2.merged1x1", {1, 64, 128, 304}, 512, 1, 1},
      {"paper.aspp2.project", {1, 64, 128, 512}, 128, 1, 1},
      {"paper.up2.logits", {1, 64, 128, 128}, 19 * 16, 1, 1, 4, false},
      // rtseg head
      {"rtseg.up1.subpixel", {1, 16, 32, 1024}, 2048, 1, 1, 2, false},
      {"rtseg.low", {1, 32, 64, 256}, 48, 1, 1},
      {"rtseg.aspp2.merged1x1", {1, 32, 64, 560}, 384, 1, 1},
      {"rtseg.head.conv1x1", {1, 32, 64, 384}, 512, 1, 1},
      {"rtseg.head.conv3x3", {1, 32, 64, 512}, 512, 3, 1},
      {"rtseg.up2.logits", {1, 32, 64, 512}, 19 * 16, 1, 1, 4, false},
  };
  return convs;
}

// The same convolutions at the 1024x2048 input as well (every map twice as high and wide): the
// forward benchmarks cover both sizes.
inline const std::vector<NetConv>& net_convs_both_sizes() {
  static const std::vector<NetConv> convs = [] {
    std::vector<NetConv> all = net_convs();
    for (NetConv c : net_convs()) {
      c.x.h *= 2;
      c.x.w *= 2;
      all.push_back(c);
    }
    return all;
  }();
  return convs;
}

inline ConvShape geometry(const NetConv& c) {
  return square_conv(c.kernel, c.stride);
}

inline Shape4 conv_out_shape(const NetConv& c) {
  const ConvShape g = geometry(c);
  return Shape4{c.x.n, g.out_h(c.x.h), g.out_w(c.x.w), c.K};
}

inline double flops(const NetConv& c) {
  return 2.0 * double(conv_out_shape(c).pixels()) * c.K * c.kernel * c.kernel * c.x.c;
}

// op: "conv", "conv_bwd_data", "conv_bwd_weight".
inline std::string base_name(DType dtype, const NetConv& c, const char* op = "conv") {
  std::string name = std::string(op) + "/" + dtype_name(dtype) + "/" + c.layer + "/" +
                     shape_name(c.x) + "/" + std::to_string(c.kernel) + "x" +
                     std::to_string(c.kernel) + "s" + std::to_string(c.stride) + "-K" +
                     std::to_string(c.K);
  if (c.shuffle > 1) name += "/shuffle" + std::to_string(c.shuffle);
  return name;
}

// TFLOP/s counter: the useful work of one launch (2 * output pixels * K * R*S*C).
inline void set_flops_counter(benchmark::State& state, const NetConv& c) {
  state.counters["TFLOP/s"] =
      benchmark::Counter(flops(c) * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace farsee::bench
