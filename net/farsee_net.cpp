#include "net/farsee_net.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "kernels/core/half_convert.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/pool.h"
#include "kernels/reference/resize.h"
#include "kernels/resize_argmax.h"
#include "net/stem.h"

namespace farsee::net {
namespace {

// fp16 conv weights: a folded value that fp16 cannot hold (rounds to Inf) is an error naming the
// PyTorch tensor, the element (OIHW) and the value, never a silent Inf in the packed weights.
void check_fits_fp16(const Layer& l, const std::vector<float>& krsc, const HostTensors& params) {
  const int64_t row = int64_t(l.R) * l.S * l.C;
  for (size_t i = 0; i < krsc.size(); ++i) {
    const float v = krsc[i];
    if (!std::isfinite(v) || (float_to_half_bits(v) & 0x7fff) != 0x7c00) continue;
    int k = int(int64_t(i) / row);
    const int64_t rsc = int64_t(i) % row;
    const int r = int(rsc / (int64_t(l.S) * l.C)), s = int(rsc / l.C % l.S), c = int(rsc % l.C);
    const ParamUnit* unit = nullptr;
    for (const ParamUnit& u : l.units) {
      if (k < u.out_channels) {
        unit = &u;
        break;
      }
      k -= u.out_channels;
    }
    FARSEE_REQUIRE(unit != nullptr, "check_fits_fp16: row outside the units of " << l.name);
    const std::string name = unit->conv + ".weight";
    std::ostringstream stored;
    auto it = params.find(name);
    if (it != params.end()) {
      const int64_t oihw = ((int64_t(k) * l.C + c) * l.R + r) * l.S + s;
      stored << " (stored value " << it->second.data[size_t(oihw)] << ", scaled by BN '" << unit->bn
             << "')";
    }
    FARSEE_REQUIRE(false, "fp16 weights: parameter tensor '"
                              << name << "' element [" << k << ", " << c << ", " << r << ", " << s
                              << "] is " << v << (unit->bn.empty() ? "" : stored.str())
                              << ", which overflows fp16 (largest finite value 65504): use "
                                 "--precision fp32, or check the weights");
  }
}

}  // namespace

FarSeeNet::FarSeeNet(const FarSeeConfig& config, const HostTensors& params, const Context& ctx,
                     DType activation_dtype)
    : FarSeeNet(config, params, ctx, precision_of(activation_dtype)) {}

FarSeeNet::FarSeeNet(const FarSeeConfig& config, const HostTensors& params, const Context& ctx,
                     Precision precision)
    : config_(config),
      ctx_(ctx),
      dtype_(storage_dtype(precision)),
      tf32_(precision == Precision::TF32) {
  FARSEE_REQUIRE(!tf32_ || ctx.executor != Executor::Cpu,
                 "FarSeeNet: precision tf32 is not available on the cpu executor (no TF32 "
                 "convolutions there): use fp32 on cpu, or the cuda executor");
  config_.validate();
  const std::vector<std::string> unknown = check_parameters(config_, params);
  (void)unknown;  // the file loader reports them; an in-memory map may carry extras
  // A stream of its own on the executors that queue work and capture graphs (the default stream
  // cannot be captured).
  if (rt::uses_graphs(ctx_.executor) && ctx_.stream == nullptr) {
    own_stream_ = rt::Stream(ctx_.executor);
    ctx_.stream = own_stream_.get();
  }
  layers_ = build_layers(config_);
  stem_s2d_ = stem_space_to_depth(ctx_.executor);
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
      if (dtype_ == DType::F16) check_fits_fp16(l, folded[i].weight, params);
      params_[i].conv = pack_conv_layer(int(i), folded[i].weight);
      parameter_bytes_ += int64_t(params_[i].conv.buffer.bytes());
    }
  }
  rt::copy_to_device(ctx_, param_arena_.data(), host_arena.data(),
                     host_arena.size() * sizeof(float));
  rt::synchronize(ctx_);
  parameter_bytes_ += int64_t(param_arena_.bytes());
}

bool FarSeeNet::is_s2d_stem(int layer) const {
  const Layer& l = layers_[size_t(layer)];
  return stem_s2d_ && !l.depthwise && l.R == 7 && l.S == 7 && l.C == 3;
}

// The executor's layout; the sub-pixel convs in sub-pixel order, the stem as space-to-depth.
ConvWeights FarSeeNet::pack_conv_layer(int layer, const std::vector<float>& krsc) const {
  const Layer& l = layers_[size_t(layer)];
  if (is_s2d_stem(layer)) {
    const int channels = stem_s2d_channels(dtype_);
    return pack_conv_weights(ctx_, stem_s2d_weights(krsc, l.K, channels), l.K, 4, 4, channels,
                             dtype_);
  }
  if (l.subpixel > 1)
    return pack_subpixel_conv_weights(ctx_, krsc, l.K, l.R, l.S, l.C, dtype_, l.subpixel);
  return pack_conv_weights(ctx_, krsc, l.K, l.R, l.S, l.C, dtype_);
}

FarSeeNet::~FarSeeNet() {
  outputs_.clear();  // their CUDA graphs first, then own_stream_ (the last member)
  shapes_.clear();
}

FarSeeNet::OutputState::~OutputState() {
  rt::graph_destroy(cuda_graph);
}

rt::Buffer FarSeeNet::allocate(size_t bytes, const std::string& what, const ShapeState* keep) {
  for (int attempt = 0;; ++attempt) {
    std::string why;
    try {
      return rt::Buffer(ctx_.executor, bytes);
    } catch (const std::bad_alloc&) {
      why = "std::bad_alloc";
    } catch (const Error& e) {
      why = e.what();
    }
    const bool others =
        std::any_of(shapes_.begin(), shapes_.end(), [&](const auto& s) { return s.get() != keep; });
    if (attempt == 0 && others) {  // make room: drop every other cached shape, then retry
      std::vector<const ShapeState*> drop;
      for (const auto& s : shapes_) {
        if (s.get() != keep) drop.push_back(s.get());
      }
      for (const ShapeState* s : drop) release_shape(s);
      continue;
    }
    std::ostringstream size;
    size.setf(std::ios::fixed);
    size.precision(1);
    size << double(bytes) / 1e6 << " MB";
    FARSEE_REQUIRE(false, "out of memory: cannot allocate "
                              << size.str() << " for " << what << " on "
                              << executor_name(ctx_.executor) << " (" << why << ")");
  }
}

void FarSeeNet::release_shape(const ShapeState* s) {
  for (size_t i = outputs_.size(); i-- > 0;) {
    if (outputs_[i]->shape == s) {
      if (output_ == outputs_[i].get()) output_ = nullptr;
      outputs_.erase(outputs_.begin() + std::ptrdiff_t(i));
    }
  }
  for (size_t i = 0; i < shapes_.size(); ++i) {
    if (shapes_[i].get() == s) {
      if (shape_ == s) shape_ = nullptr;
      shapes_.erase(shapes_.begin() + std::ptrdiff_t(i));
      break;
    }
  }
}

void FarSeeNet::evict_shape(const ShapeState* keep) {
  const ShapeState* oldest = nullptr;
  for (const auto& s : shapes_) {
    if (s.get() != keep && (!oldest || s->last_used < oldest->last_used)) oldest = s.get();
  }
  if (oldest) release_shape(oldest);
}

FarSeeNet::ShapeState* FarSeeNet::add_shape(int n, int h, int w) {
  auto graph = std::make_unique<Graph>(build_graph(config_, n, h, w));
  // Steps index layers_ (built once at load): the layer list does not depend on the shape.
  FARSEE_REQUIRE(graph->layers.size() == layers_.size(), "FarSeeNet: layer list changed");
  MemoryPlan plan = plan_memory(graph->buffer_lifetimes(dtype_), int64_t(rt::kAlignment));
  while (int(shapes_.size()) >= kCachedShapes) evict_shape(nullptr);
  const std::string shape_text =
      "batch " + std::to_string(n) + ", input " + std::to_string(h) + "x" + std::to_string(w);
  auto state = std::make_unique<ShapeState>();
  state->arena =
      allocate(size_t(plan.arena_bytes), "the activation arena (" + shape_text + ")", nullptr);
  allocate_split_k(*state, *graph, shape_text);
  if (stem_s2d_) {
    const Shape4 s2d = stem_s2d_shape(graph->input.shape, stem_s2d_channels(dtype_));
    state->stem_input = allocate(size_t(s2d.elements()) * dtype_size(dtype_),
                                 "the space-to-depth stem input (" + shape_text + ")", nullptr);
  }
  state->graph = std::move(graph);
  state->plan = std::move(plan);
  shapes_.push_back(std::move(state));
  ++stats_.arenas_built;
  return shapes_.back().get();
}

// One split-K workspace and one set of tile counters shared by every conv (they run one after
// another on one stream). The counters are zeroed here, once: every conv launch leaves them zero
// (kernels/conv_bn_act.h), so eager runs and graph replays need no per-launch memset.
void FarSeeNet::allocate_split_k(ShapeState& state, const Graph& graph,
                                 const std::string& shape_text) {
  size_t workspace_bytes = 0, counters = 0;
  for (const Step& s : graph.steps) {
    if (s.kind == StepKind::Conv) {
      const ConvWeights& w = params_[s.layer].conv;
      workspace_bytes = std::max(workspace_bytes, conv_workspace_bytes(s.conv, w, s.x.shape));
      counters = std::max(counters, conv_tile_counter_count(s.conv, w, s.x.shape));
    }
  }
  state.workspace =
      allocate(workspace_bytes, "the split-K workspace (" + shape_text + ")", nullptr);
  state.tile_counters =
      allocate(counters * sizeof(int), "the split-K tile counters (" + shape_text + ")", nullptr);
  if (counters > 0) rt::memset(ctx_, state.tile_counters.data(), 0, state.tile_counters.bytes());
}

FarSeeNet::OutputState* FarSeeNet::add_output(ShapeState* shape, int out_h, int out_w) {
  while (int(outputs_.size()) >= kCachedOutputs) {
    auto oldest =
        std::min_element(outputs_.begin(), outputs_.end(),
                         [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
    if (output_ == oldest->get()) output_ = nullptr;
    outputs_.erase(oldest);
  }
  auto state = std::make_unique<OutputState>();
  state->shape = shape;
  state->out_h = out_h;
  state->out_w = out_w;
  state->labels = allocate(size_t(shape->graph->n) * out_h * out_w,
                           "the labels (" + std::to_string(shape->graph->n) + "x" +
                               std::to_string(out_h) + "x" + std::to_string(out_w) + " uint8)",
                           shape);
  outputs_.push_back(std::move(state));
  ++stats_.outputs_built;
  return outputs_.back().get();
}

void FarSeeNet::prepare(int n, int h, int w, int out_h, int out_w) {
  if (out_h == 0) out_h = h;
  if (out_w == 0) out_w = w;
  FARSEE_REQUIRE(out_h > 0 && out_w > 0,
                 "output size " << out_h << "x" << out_w << " (HxW) must be positive");
  ++clock_;
  ShapeState* shape = nullptr;
  for (const auto& s : shapes_) {
    if (s->graph->n == n && s->graph->h == h && s->graph->w == w) shape = s.get();
  }
  if (!shape) shape = add_shape(n, h, w);
  shape->last_used = clock_;
  OutputState* output = nullptr;
  for (const auto& o : outputs_) {
    if (o->shape == shape && o->out_h == out_h && o->out_w == out_w) output = o.get();
  }
  if (!output) output = add_output(shape, out_h, out_w);
  output->last_used = clock_;
  shape_ = shape;
  output_ = output;
}

FarSeeNet::CacheStats FarSeeNet::cache_stats() const {
  CacheStats s = stats_;
  s.cached_shapes = int(shapes_.size());
  s.cached_outputs = int(outputs_.size());
  return s;
}

const Graph& FarSeeNet::current_graph(const char* caller) const {
  FARSEE_REQUIRE(prepared(), "FarSeeNet::" << caller << ": prepare() has not been called");
  return *shape_->graph;
}

int FarSeeNet::out_h() const {
  return output_ ? output_->out_h : 0;
}
int FarSeeNet::out_w() const {
  return output_ ? output_->out_w : 0;
}

void FarSeeNet::fill_activations(uint8_t byte) {
  current_graph("fill_activations");
  rt::memset(ctx_, shape_->arena.data(), byte, size_t(shape_->plan.arena_bytes));
  if (stem_s2d_) rt::memset(ctx_, shape_->stem_input.data(), byte, shape_->stem_input.bytes());
}

const Graph& FarSeeNet::graph() const {
  return current_graph("graph");
}

const MemoryPlan& FarSeeNet::memory_plan() const {
  current_graph("memory_plan");
  return shape_->plan;
}

TensorView FarSeeNet::view(const TensorRef& r) const {
  const BufferDesc& b = shape_->graph->buffers[r.buffer];
  TensorView v;
  v.dtype = dtype_;
  v.data = static_cast<char*>(shape_->arena.data()) + shape_->plan.offsets[r.buffer] +
           int64_t(r.channel_offset) * int64_t(dtype_size(dtype_));
  v.shape = r.shape;
  v.pixel_stride = b.shape.c;
  return v;
}

TensorView FarSeeNet::stem_input_view() const {
  TensorView v;
  v.dtype = dtype_;
  v.data = shape_->stem_input.data();
  v.shape = stem_s2d_shape(shape_->graph->input.shape, stem_s2d_channels(dtype_));
  v.pixel_stride = v.shape.c;
  return v;
}

// The tensor set_input fills: the space-to-depth stem's input, else the graph's.
size_t FarSeeNet::packed_input_bytes() const {
  const TensorView in = stem_s2d_ ? stem_input_view() : view(graph().input);
  return size_t(in.shape.elements()) * dtype_size(dtype_);
}

void FarSeeNet::pack_input(const float* nhwc, void* packed) const {
  const Shape4 shape = graph().input.shape;
  std::vector<float> s2d;  // the space-to-depth stem's input, rearranged on the way up
  if (stem_s2d_) {
    const int channels = stem_s2d_channels(dtype_);
    if (dtype_ == DType::F32)
      return stem_s2d_input(nhwc, shape, channels, static_cast<float*>(packed));
    s2d.resize(size_t(stem_s2d_shape(shape, channels).elements()));
    stem_s2d_input(nhwc, shape, channels, s2d.data());
    nhwc = s2d.data();
  }
  const size_t count = packed_input_bytes() / dtype_size(dtype_);
  if (dtype_ == DType::F32) {
    std::memcpy(packed, nhwc, count * sizeof(float));
  } else {
    auto* half = static_cast<uint16_t*>(packed);
    for (size_t i = 0; i < count; ++i) half[i] = float_to_half_bits(nhwc[i]);
  }
}

void FarSeeNet::set_input(const float* nhwc) {
  void* dst = stem_s2d_ ? shape_->stem_input.data() : view(graph().input).data;
  const size_t bytes = packed_input_bytes();
  if (stem_s2d_ || dtype_ != DType::F32) {
    std::vector<char> packed(bytes);
    pack_input(nhwc, packed.data());
    rt::copy_to_device(ctx_, dst, packed.data(), bytes);
    // The copy reads host memory when it executes: `packed` dies here.
    rt::synchronize(ctx_);
  } else {
    rt::copy_to_device(ctx_, dst, nhwc, bytes);
    rt::synchronize(ctx_);  // the caller may reuse `nhwc` once this returns
  }
}

void FarSeeNet::set_input_device(const void* packed) {
  void* dst = stem_s2d_ ? shape_->stem_input.data() : view(graph().input).data;
  rt::copy_device(ctx_, dst, packed, packed_input_bytes());
}

const uint8_t* FarSeeNet::device_labels() const {
  current_graph("device_labels");
  return output_->labels.as<uint8_t>();
}

size_t FarSeeNet::labels_bytes() const {
  return size_t(current_graph("labels_bytes").n) * output_->out_h * output_->out_w;
}

void FarSeeNet::run_step(const Step& s, const Step* fused_pool) {
  const TensorView x = view(s.x), y = view(fused_pool != nullptr ? fused_pool->y : s.y);
  switch (s.kind) {
    case StepKind::Conv: {
      const LayerParams& p = params_[s.layer];
      ConvEpilogue e;
      e.bias = p.bias;  // BN scale is folded into the weights
      if (s.residual.valid()) e.residual = view(s.residual);
      e.relu = s.relu;
      e.shuffle_factor = s.shuffle;
      e.max_pool = fused_pool != nullptr;
      ConvOptions options;
      options.workspace = shape_->workspace.data();
      options.workspace_bytes = shape_->workspace.bytes();
      options.tf32 = tf32_;
      options.tile_counters = shape_->tile_counters.as<int>();
      options.tile_counter_count = shape_->tile_counters.bytes() / sizeof(int);
      options.programmatic_launch = true;  // inference: no kernel writes the weights (PDL opt-in)
      if (is_s2d_stem(s.layer)) {
        conv_bn_act_fwd(ctx_, stem_s2d_conv(s.conv), stem_input_view(), p.conv, e, y, options);
      } else {
        conv_bn_act_fwd(ctx_, s.conv, x, p.conv, e, y, options);
      }
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
  resize_argmax_fwd(ctx_, config_.align_corners, view(shape_->graph->logits), output_->out_h,
                    output_->out_w, output_->labels.as<uint8_t>());
}

// Consecutive depthwise steps reading one buffer with one stride and activation (the branches of
// an F-ASPP block, graph.h) run as ONE launch; returns how many steps that was (>= 1).
size_t FarSeeNet::run_depthwise_branches(const std::vector<Step>& steps, size_t first) {
  const Step& f = steps[first];
  DepthwiseBranches b;
  b.stride = f.conv.stride_h;
  b.relu = f.relu;
  size_t i = first;
  for (; i < steps.size() && b.count < kMaxDepthwiseBranches; ++i) {
    const Step& s = steps[i];
    if (s.kind != StepKind::Depthwise || s.x.buffer != f.x.buffer || !(s.x.shape == f.x.shape) ||
        s.conv.stride_h != b.stride || s.relu != b.relu)
      break;
    const LayerParams& p = params_[s.layer];
    b.branch[b.count++] =
        DepthwiseBranch{s.conv.dilation_h, view(s.x), view(s.y), p.dw_weight, nullptr, p.bias};
  }
  depthwise_atrous_branches_fwd(ctx_, b);
  return i - first;
}

namespace {
// The max-pool step that the space-to-depth stem conv steps[first] absorbs in fp16
// (ConvEpilogue::max_pool: the stem's output never goes to memory), or null: the next step pools
// exactly the stem's output, 3x3 / s2 / pad 1, and no other step reads it.
const Step* fused_stem_pool(const std::vector<Step>& steps, size_t first, bool s2d_stem,
                            DType dtype) {
  const Step& s = steps[first];
  if (!s2d_stem || dtype != DType::F16 || s.residual.valid() || s.shuffle != 1 ||
      first + 1 >= steps.size())
    return nullptr;
  const Step& p = steps[first + 1];
  const MaxPoolParams fused;
  if (p.kind != StepKind::MaxPool || p.x.buffer != s.y.buffer ||
      p.x.channel_offset != s.y.channel_offset || !(p.x.shape == s.y.shape) ||
      p.pool.kernel != fused.kernel || p.pool.stride != fused.stride || p.pool.pad != fused.pad)
    return nullptr;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i != first + 1 &&
        (steps[i].x.buffer == s.y.buffer || steps[i].residual.buffer == s.y.buffer))
      return nullptr;
  }
  return &p;
}
}  // namespace

// One launch: the F-ASPP depthwise branches merged, the fp16 stem conv with its max-pool, or one
// step.
size_t FarSeeNet::run_launch(const std::vector<Step>& steps, size_t first) {
  const Step& s = steps[first];
  if (s.kind == StepKind::Depthwise) return run_depthwise_branches(steps, first);
  const Step* pool = s.kind == StepKind::Conv
                         ? fused_stem_pool(steps, first, is_s2d_stem(s.layer), dtype_)
                         : nullptr;
  run_step(s, pool);
  return pool != nullptr ? 2 : 1;
}

// The forward, launch by launch (profile_forward() runs the same launches).
void FarSeeNet::run_steps() {
  const std::vector<Step>& steps = shape_->graph->steps;
  for (size_t i = 0; i < steps.size();) i += run_launch(steps, i);
  run_output();
}

namespace {
// `name` without the dotted scope it shares with `first` ("head.aspp1.branch2.dw" after
// "head.aspp1.branch1.dw": "branch2.dw"), to name a merged launch briefly.
std::string without_shared_scope(const std::string& name, const std::string& first) {
  size_t common = 0;
  while (common < name.size() && common < first.size() && name[common] == first[common]) ++common;
  const size_t dot = name.rfind('.', common == 0 ? 0 : common - 1);
  return dot == std::string::npos ? name : name.substr(dot + 1);
}
}  // namespace

std::vector<FarSeeNet::StepTime> FarSeeNet::profile_forward() {
  const Graph& g = current_graph("profile_forward");
  std::vector<StepTime> times;
  rt::Timer timer(ctx_.executor);
  for (size_t i = 0; i < g.steps.size();) {
    timer.record_start(ctx_);
    const size_t covered = run_launch(g.steps, i);
    timer.record_stop(ctx_);
    std::string name = g.steps[i].name;
    for (size_t k = 1; k < covered; ++k)
      name += "+" + without_shared_scope(g.steps[i + k].name, name);
    times.push_back({name, timer.elapsed_ms(), int(covered)});
    i += covered;
  }
  timer.record_start(ctx_);
  run_output();
  timer.record_stop(ctx_);
  times.push_back({"output.resize_argmax", timer.elapsed_ms(), 1});
  ++output_->forwards;
  return times;
}

void FarSeeNet::forward(bool use_cuda_graph) {
  current_graph("forward");
  OutputState& out = *output_;
  const bool graphs = use_cuda_graph && rt::uses_graphs(ctx_.executor);
  // The first run is eager so every kernel's one-time setup (attributes, workspaces) happens
  // outside the capture.
  if (!graphs || out.forwards == 0) {
    run_steps();
  } else {
    if (!out.cuda_graph) {
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
      out.cuda_graph = rt::graph_end_capture(ctx_);
      ++stats_.cuda_graphs_captured;
    }
    rt::graph_launch(ctx_, out.cuda_graph);
  }
  ++out.forwards;
}

std::vector<uint8_t> FarSeeNet::labels() const {
  std::vector<uint8_t> out(labels_bytes());
  rt::copy_to_host(ctx_, out.data(), output_->labels.data(), out.size());
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
