#include "tools/emu_profile/roofline.h"

#include <algorithm>
#include <cstdio>

namespace farsee::tools {

namespace {

double elements(const Shape4& s) {
  return double(s.n) * s.h * s.w * s.c;
}

// Minimal traffic of one step: activations in and out, residual, weights and biases (conv weights
// in the activation dtype, depthwise weights and all biases fp32, as net::FarSeeNet packs them).
double step_bytes(const net::Graph& g, const net::Step& s, double elem) {
  double bytes = (elements(s.x.shape) + elements(s.y.shape)) * elem;
  if (s.residual.valid()) bytes += elements(s.residual.shape) * elem;
  if (s.kind == net::StepKind::MaxPool) return bytes;
  const net::Layer& l = g.layers[size_t(s.layer)];
  const double weights = double(l.K) * l.R * l.S * l.C;
  bytes += s.kind == net::StepKind::Depthwise ? weights * 4 : weights * elem;
  return bytes + double(l.K) * 4;
}

double floor_us(double macs, double bytes, const GpuPeaks& gpu, DType dtype) {
  const double flops = dtype == DType::F16 ? gpu.fp16_flops : gpu.fp32_flops;
  return 1e6 * std::max(2.0 * macs / flops, bytes / gpu.bytes_per_s);
}

RooflineRow make_row(const std::string& name, double macs, double bytes, DType dtype) {
  return RooflineRow{name, macs, bytes, floor_us(macs, bytes, kH100, dtype),
                     floor_us(macs, bytes, kH200, dtype)};
}

}  // namespace

std::vector<RooflineRow> roofline(const net::Graph& g, DType dtype, int out_h, int out_w) {
  const double elem = double(dtype_size(dtype));
  std::vector<RooflineRow> rows;
  for (const net::Step& s : g.steps)
    rows.push_back(make_row(s.name, g.step_macs(s), step_bytes(g, s, elem), dtype));
  const double labels = double(g.n) * (out_h ? out_h : g.h) * (out_w ? out_w : g.w);
  rows.push_back(
      make_row("output.resize_argmax", 0, elements(g.logits.shape) * elem + labels, dtype));
  RooflineRow total{"total", 0, 0, 0, 0};
  for (const RooflineRow& r : rows) {
    total.macs += r.macs;
    total.bytes += r.bytes;
    total.h100_us += r.h100_us;
    total.h200_us += r.h200_us;
  }
  rows.push_back(total);
  return rows;
}

std::string roofline_markdown(const std::vector<RooflineRow>& rows) {
  std::string out =
      "| step | MMAC | min MB | floor H100 us | floor H200 us |\n| --- | --- | --- | --- | --- |\n";
  char line[256];
  for (const RooflineRow& r : rows) {
    std::snprintf(line, sizeof line, "| %s | %.1f | %.2f | %.2f | %.2f |\n", r.step.c_str(),
                  r.macs / 1e6, r.bytes / 1e6, r.h100_us, r.h200_us);
    out += line;
  }
  return out;
}

}  // namespace farsee::tools
