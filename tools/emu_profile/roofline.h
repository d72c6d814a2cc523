// The per-step roofline of a FarSee-Net forward, computed from the graph (no GPU, no emulator):
// MACs, the minimal global traffic (every input, residual and weight read once, every output
// written once), and the time floor max(2 MACs / peak FLOP/s, bytes / bandwidth) on H100 and H200
// (DESIGN.md section 9). farsee-emu-profile --roofline prints it as a markdown table;
// tools/scripts/update_roofline.py puts that table into bench/RESULTS.md.
#pragma once

#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "net/graph.h"

namespace farsee::tools {

struct RooflineRow {
  std::string step;
  double macs = 0;
  double bytes = 0;  // minimal global traffic
  double h100_us = 0, h200_us = 0;
};

// Peak rates of the tensor cores (fp16 dense; fp32 storage: the SIMT FFMA peak) and of HBM.
struct GpuPeaks {
  const char* name;
  double fp16_flops, fp32_flops, bytes_per_s;
};
constexpr GpuPeaks kH100{"H100 SXM", 989e12, 67e12, 3.35e12};
constexpr GpuPeaks kH200{"H200", 989e12, 67e12, 4.8e12};

// One row per graph step, then "output.resize_argmax" to out_h x out_w (0: the input size), then
// the total (sums; the floors of a serial forward).
std::vector<RooflineRow> roofline(const net::Graph& g, DType dtype, int out_h = 0, int out_w = 0);
std::string roofline_markdown(const std::vector<RooflineRow>& rows);

}  // namespace farsee::tools
