// The convolutions of both network presets (paper, rtseg), batch 1, shared by the conv
// benchmarks (conv_bench.cpp: forward at 512x1024 and 1024x2048; conv_backward_bench.cpp: dgrad
// and wgrad at 512x1024), with their geometry, useful FLOPs and benchmark base names. Derived from
// net::build_graph (the conv steps the network runs), so the benchmarks cannot drift from the
// network: one entry per distinct (input shape, K, geometry, epilogue), named after the first step
// that has it ("paper+rtseg." when both presets run it, "(xN)" when N steps of that preset share
// it).
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/core/conv_shape.h"
#include "kernels/core/dtype.h"
#include "kernels/core/tensor.h"
#include "net/config.h"
#include "net/graph.h"

namespace farsee::bench {

struct NetConv {
  std::string layer;  // preset(s) and the first step's name
  Shape4 x;
  int K, kernel, stride;
  int shuffle = 1;
  bool relu = true;
  bool residual = false;
  ConvShape conv;  // the step's geometry (padding, dilation)
};

// The distinct conv steps of both presets at input h x w, batch 1, in the network's order.
inline std::vector<NetConv> graph_convs(int h, int w) {
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, bool, bool>;
  std::vector<NetConv> convs;
  std::vector<std::vector<std::string>> presets;  // per entry: the presets that run it
  std::vector<int> counts;                        // per entry: its steps in the first preset
  std::map<Key, size_t> index;
  for (const char* preset : {"paper", "rtseg"}) {
    const net::Graph g = net::build_graph(net::preset_config(preset), 1, h, w);
    for (const net::Step& s : g.steps) {
      if (s.kind != net::StepKind::Conv) continue;
      const net::Layer& l = g.layers[size_t(s.layer)];
      const ConvShape& c = s.conv;
      const Key key{s.x.shape.h, s.x.shape.w, s.x.shape.c,       l.K,
                    l.R,         c.stride_h,  c.pad_h,           c.dilation_h,
                    s.shuffle,   s.relu,      s.residual.valid()};
      const auto [it, fresh] = index.emplace(key, convs.size());
      if (fresh) {
        convs.push_back(NetConv{s.name, s.x.shape, l.K, l.R, c.stride_h, s.shuffle, s.relu,
                                s.residual.valid(), c});
        presets.push_back({preset});
        counts.push_back(1);
      } else {
        std::vector<std::string>& who = presets[it->second];
        if (std::find(who.begin(), who.end(), preset) == who.end()) who.push_back(preset);
        if (who[0] == preset) ++counts[it->second];
      }
    }
  }
  for (size_t i = 0; i < convs.size(); ++i) {
    std::string who = presets[i][0];
    for (size_t p = 1; p < presets[i].size(); ++p) who += "+" + presets[i][p];
    convs[i].layer = who + "." + convs[i].layer;
    if (counts[i] > 1) convs[i].layer += "(x" + std::to_string(counts[i]) + ")";
  }
  return convs;
}

// At the 512x1024 input (the backward benchmarks).
inline const std::vector<NetConv>& net_convs() {
  static const std::vector<NetConv> convs = graph_convs(512, 1024);
  return convs;
}

// At the 512x1024 and the 1024x2048 inputs (the forward benchmarks).
inline const std::vector<NetConv>& net_convs_both_sizes() {
  static const std::vector<NetConv> convs = [] {
    std::vector<NetConv> all = net_convs();
    for (const NetConv& c : graph_convs(1024, 2048)) all.push_back(c);
    return all;
  }();
  return convs;
}

inline ConvShape geometry(const NetConv& c) {
  return c.conv;
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
