#include "net/farsee_net.h"

#include <algorithm>
#include <cstring>

#include "kernels/core/half_convert.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/pool.h"
#include "kernels/reference/resize.h"
#include "kernels/resize_argmax.h"

namespace farsee::net {

FarSeeNet::FarSeeNet(const FarSeeConfig& config, const HostTensors& params, const Context& ctx,
                     DType activation_dtype)
    : config_(config), ctx_(ctx), dtype_(activation_dtype) {
  config_.validate();
  const std::vector<std::string> unknown = check_parameters(config_, params);
  (void)unknown;  // the file loader reports them; an in-memory map may carry extras
  if (ctx_.executor == Executor::Cuda && ctx_.stream == nullptr) {
    ctx_.stream = rt::stream_create(Executor::Cuda);
    owns_stream_ = true;
  }
  try {
    layers_ = build_layers(config_);
    std::vector<FoldedLayer> folded;
    folded.reserve(layers_.size());
    for (const Layer& l : layers_) folded.push_back(fold_layer(l, params));

    // fp32 parameter arena: every layer's bias, then depthwise weights; each 256-byte aligned.
    auto aligned_floats = [](size_t n) { return (n + 63) / 64 * 64; };
    size_t arena_floats = 0;
    for (size_t i = 0; i < layers_.size(); ++i) {
      arena_floats += aligned_floats(folded[i].bias.size());
      if (layers_[i].depthwise) arena_floats += aligned_floats(folded[i].weight.size());
    }
    std::vector<float> host_arena(arena_floats, 0.f);
    param_arena_ = rt::Buffer(ctx_.executor, arena_floats * sizeof(float));
    params_.resize(layers_.size());
    size_t cursor = 0;
    auto place = [&](const std::vector<float>& v) {
      std::memcpy(host_arena.data() + cursor, v.data(), v.size() * sizeof(float));
      const float* p = param_arena_.as<float>() + cursor;
      cursor += aligned_floats(v.size());
      return p;
    };
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& l = layers_[i];
      params_[i].bias = place(folded[i].bias);
      if (l.depthwise) {
        params_[i].dw_weight = place(folded[i].weight);
      } else {
        params_[i].conv = pack_conv_weights(ctx_, folded[i].weight, l.K, l.R, l.S, l.C, dtype_);
        parameter_bytes_ += int64_t(params_[i].conv.buffer.bytes());
      }
    }
    rt::copy_to_device(ctx_, param_arena_.data(), host_arena.data(),
                       host_arena.size() * sizeof(float));
    rt::synchronize(ctx_);
    parameter_bytes_ += int64_t(param_arena_.bytes());
  } catch (...) {
    if (owns_stream_) rt::stream_destroy(ctx_.executor, ctx_.stream);
    throw;
  }
}

FarSeeNet::~FarSeeNet() {
  rt::graph_destroy(cuda_graph_);
  if (owns_stream_) rt::stream_destroy(ctx_.executor, ctx_.stream);
}

void FarSeeNet::prepare(int n, int h, int w, int out_h, int out_w) {
  if (out_h == 0) out_h = h;
  if (out_w == 0) out_w = w;
  FARSEE_REQUIRE(out_h > 0 && out_w > 0,
                 "output size " << out_h << "x" << out_w << " (HxW) must be positive");
  if (graph_ && graph_->n == n && graph_->h == h && graph_->w == w && out_h == out_h_ &&
      out_w == out_w_) {
    return;
  }
  auto graph = std::make_unique<Graph>(build_graph(config_, n, h, w));
  // Steps index layers_ (built once at load): the layer list does not depend on the shape.
  FARSEE_REQUIRE(graph->layers.size() == layers_.size(), "FarSeeNet: layer list changed");
  MemoryPlan plan = plan_memory(graph->buffer_lifetimes(dtype_), int64_t(rt::kAlignment));
  // Release the old arena before allocating the new one (large shapes on small GPUs).
  rt::graph_destroy(cuda_graph_);
  cuda_graph_ = nullptr;
  graph_.reset();
  arena_ = rt::Buffer();
  workspace_ = rt::Buffer();
  labels_ = rt::Buffer();
  arena_ = rt::Buffer(ctx_.executor, size_t(plan.arena_bytes));
  // One split-K workspace shared by every conv (they run one after another on one stream).
  size_t workspace_bytes = 0;
  for (const Step& s : graph->steps) {
    if (s.kind == StepKind::Conv) {
      workspace_bytes =
          std::max(workspace_bytes, conv_workspace_bytes(s.conv, params_[s.layer].conv, s.x.shape));
    }
  }
  workspace_ = rt::Buffer(ctx_.executor, workspace_bytes);
  labels_ = rt::Buffer(ctx_.executor, size_t(n) * out_h * out_w);
  graph_ = std::move(graph);
  plan_ = std::move(plan);
  out_h_ = out_h;
  out_w_ = out_w;
  forwards_since_prepare_ = 0;
}

void FarSeeNet::fill_activations(uint8_t byte) {
  FARSEE_REQUIRE(graph_, "FarSeeNet::fill_activations: prepare() has not been called");
  rt::memset(ctx_, arena_.data(), byte, size_t(plan_.arena_bytes));
}

const Graph& FarSeeNet::graph() const {
  FARSEE_REQUIRE(graph_, "FarSeeNet: prepare() has not been called");
  return *graph_;
}

const MemoryPlan& FarSeeNet::memory_plan() const {
  FARSEE_REQUIRE(graph_, "FarSeeNet: prepare() has not been called");
  return plan_;
}

TensorView FarSeeNet::view(const TensorRef& r) const {
  const BufferDesc& b = graph_->buffers[r.buffer];
  TensorView v;
  v.dtype = dtype_;
  v.data = static_cast<char*>(arena_.data()) + plan_.offsets[r.buffer] +
           int64_t(r.channel_offset) * int64_t(dtype_size(dtype_));
  v.shape = r.shape;
  v.pixel_stride = b.shape.c;
  return v;
}

void FarSeeNet::set_input(const float* nhwc) {
  const TensorView in = view(graph().input);
  const size_t count = size_t(in.shape.elements());
  if (dtype_ == DType::F32) {
    rt::copy_to_device(ctx_, in.data, nhwc, count * sizeof(float));
  } else {
    std::vector<uint16_t> half(count);
    for (size_t i = 0; i < count; ++i) half[i] = float_to_half_bits(nhwc[i]);
    rt::copy_to_device(ctx_, in.data, half.data(), count * sizeof(uint16_t));
  }
}

void FarSeeNet::run_step(const Step& s) {
  const TensorView x = view(s.x), y = view(s.y);
  switch (s.kind) {
    case StepKind::Conv: {
      const LayerParams& p = params_[s.layer];
      ConvEpilogue e;
      e.bias = p.bias;  // BN scale is folded into the weights
      if (s.residual.valid()) e.residual = view(s.residual);
      e.relu = s.relu;
      e.shuffle_factor = s.shuffle;
      ConvOptions options;
      options.workspace = workspace_.data();
      options.workspace_bytes = workspace_.bytes();
      conv_bn_act_fwd(ctx_, s.conv, x, p.conv, e, y, options);
      break;
    }
    case StepKind::Depthwise: {
      const LayerParams& p = params_[s.layer];
      DepthwiseParams d;
      d.stride = s.conv.stride_h;
      d.dilation = s.conv.dilation_h;
      d.relu = s.relu;
      depthwise_atrous_fwd(ctx_, d, x, p.dw_weight, nullptr, p.bias, y);
      break;
    }
    case StepKind::MaxPool:
      max_pool_fwd(ctx_, s.pool, x, y);
      break;
  }
}

void FarSeeNet::run_output() {
  resize_argmax_fwd(ctx_, config_.align_corners, view(graph_->logits), out_h_, out_w_,
                    labels_.as<uint8_t>());
}

void FarSeeNet::run_steps() {
  for (const Step& s : graph_->steps) run_step(s);
  run_output();
}

std::vector<FarSeeNet::StepTime> FarSeeNet::profile_forward() {
  FARSEE_REQUIRE(graph_, "FarSeeNet::profile_forward: prepare() has not been called");
  std::vector<StepTime> times;
  rt::Timer timer(ctx_.executor);
  for (const Step& s : graph_->steps) {
    timer.record_start(ctx_);
    run_step(s);
    timer.record_stop(ctx_);
    times.push_back({s.name, timer.elapsed_ms()});
  }
  timer.record_start(ctx_);
  run_output();
  timer.record_stop(ctx_);
  times.push_back({"output.resize_argmax", timer.elapsed_ms()});
  ++forwards_since_prepare_;
  return times;
}

void FarSeeNet::forward(bool use_cuda_graph) {
  FARSEE_REQUIRE(graph_, "FarSeeNet::forward: prepare() has not been called");
  const bool graphs = use_cuda_graph && ctx_.executor == Executor::Cuda;
  // The first run is eager so every kernel's one-time setup (attributes, workspaces) happens
  // outside the capture.
  if (!graphs || forwards_since_prepare_ == 0) {
    run_steps();
  } else {
    if (!cuda_graph_) {
      rt::graph_begin_capture(ctx_);
      try {
        run_steps();
      } catch (...) {
        try {  // leave capture mode so the stream stays usable
          rt::graph_destroy(rt::graph_end_capture(ctx_));
        } catch (...) {
        }
        throw;
      }
      cuda_graph_ = rt::graph_end_capture(ctx_);
    }
    rt::graph_launch(ctx_, cuda_graph_);
  }
  ++forwards_since_prepare_;
}

std::vector<uint8_t> FarSeeNet::labels() const {
  FARSEE_REQUIRE(graph_, "FarSeeNet::labels: prepare() has not been called");
  std::vector<uint8_t> out(size_t(graph_->n) * out_h_ * out_w_);
  rt::copy_to_host(ctx_, out.data(), labels_.data(), out.size());
  rt::synchronize(ctx_);
  return out;
}

std::vector<uint8_t> FarSeeNet::labels_at(int out_h, int out_w) const {
  const Graph& g = graph();
  rt::Buffer labels(ctx_.executor, size_t(g.n) * out_h * out_w);
  resize_argmax_fwd(ctx_, config_.align_corners, view(g.logits), out_h, out_w,
                    labels.as<uint8_t>());
  std::vector<uint8_t> out(labels.bytes());
  rt::copy_to_host(ctx_, out.data(), labels.data(), out.size());
  rt::synchronize(ctx_);
  return out;
}

Shape4 FarSeeNet::logits_shape() const {
  return graph().logits.shape;
}

std::vector<float> FarSeeNet::logits() const {
  const Graph& g = graph();
  const TensorView v = view(g.logits);
  const size_t count = size_t(v.shape.pixels()) * v.pixel_stride;
  std::vector<char> raw(count * dtype_size(dtype_));
  rt::copy_to_host(ctx_, raw.data(), v.data, raw.size());
  rt::synchronize(ctx_);
  std::vector<float> out(size_t(v.shape.elements()));
  for (int64_t p = 0; p < v.shape.pixels(); ++p) {
    for (int c = 0; c < v.shape.c; ++c) {
      const int64_t i = p * v.pixel_stride + c;
      out[size_t(p * v.shape.c + c)] = read_element(raw.data(), dtype_, i);
    }
  }
  return out;
}

std::vector<float> FarSeeNet::resized_logits_nchw(int out_h, int out_w) const {
  FARSEE_REQUIRE(out_h > 0 && out_w > 0,
                 "resized_logits_nchw: output size " << out_h << "x" << out_w << " (HxW)");
  const Shape4 ls = logits_shape();
  std::vector<float> low = logits();
  std::vector<float> high(size_t(ls.n) * out_h * out_w * ls.c);
  reference::resize_bilinear_fwd(
      config_.align_corners, make_view(low.data(), DType::F32, ls),
      make_view(high.data(), DType::F32, Shape4{ls.n, out_h, out_w, ls.c}));
  std::vector<float> nchw(high.size());
  const size_t plane = size_t(out_h) * out_w;
  for (int n = 0; n < ls.n; ++n) {
    for (size_t p = 0; p < plane; ++p) {
      for (int c = 0; c < ls.c; ++c) {
        nchw[(size_t(n) * ls.c + c) * plane + p] = high[(size_t(n) * plane + p) * ls.c + c];
      }
    }
  }
  return nchw;
}

void normalise_rgb(float* rgb, int64_t pixels) {
  for (int64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < 3; ++c) rgb[p * 3 + c] = (rgb[p * 3 + c] - kImageMean[c]) / kImageStd[c];
  }
}

}  // namespace farsee::net
