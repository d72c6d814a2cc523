#include "net/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>

#include "kernels/batchnorm.h"
#include "kernels/core/half_convert.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/elementwise.h"
#include "kernels/grad_scaler.h"
#include "kernels/pixel_shuffle.h"
#include "kernels/pixel_unshuffle.h"
#include "kernels/pool.h"
#include "kernels/sgd.h"
#include "kernels/softmax_cross_entropy.h"
#include "net/sync_batchnorm.h"
#include "weights/conv_layout.h"

namespace farsee::net {
namespace {

const HostTensor& tensor(const HostTensors& params, const std::string& name) {
  auto it = params.find(name);
  FARSEE_REQUIRE(it != params.end(), "missing parameter tensor '" << name << "'");
  return it->second;
}

// KRSC rows [K][R][S][C] -> OIHW [K][C][R][S].
std::vector<float> krsc_to_oihw(const float* krsc, int K, int R, int S, int C) {
  std::vector<float> out(size_t(K) * R * S * C);
  for (int k = 0; k < K; ++k)
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s)
        for (int c = 0; c < C; ++c)
          out[((size_t(k) * C + c) * R + r) * S + s] = krsc[((size_t(k) * R + r) * S + s) * C + c];
  return out;
}

bool is_conv_layer(const Layer& l) {
  return !l.depthwise;
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.compare(0, std::strlen(prefix), prefix) == 0;
}
bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// splitmix64 stream; uniform doubles in [0, 1) from the top 53 bits.
struct InitRng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace

HostTensors training_init(const FarSeeConfig& config, uint64_t seed, const HostTensors* backbone) {
  const std::vector<ParamSpec> specs = parameter_specs(config);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ParamSpec& spec : specs) shapes[spec.name] = spec.shape;
  InitRng rng{seed ^ 0x7261696e696e6974ull};
  HostTensors out;
  for (const ParamSpec& spec : specs) {
    const bool in_backbone = starts_with(spec.name, "backbone.");
    HostTensor t;
    t.shape = spec.shape;
    t.data.assign(size_t(weights::shape_numel(spec.shape)), 0.f);
    if (in_backbone && backbone) {
      auto it = backbone->find(spec.name);
      FARSEE_REQUIRE(it != backbone->end(),
                     "--init: the backbone lacks tensor '" << spec.name << "'");
      FARSEE_REQUIRE(it->second.shape == spec.shape,
                     "--init: tensor '" << spec.name << "' has shape "
                                        << weights::shape_text(it->second.shape) << ", expected "
                                        << weights::shape_text(spec.shape));
      out.emplace(spec.name, it->second);
      continue;
    }
    if (spec.shape.size() == 4) {
      if (in_backbone) {  // kaiming_normal_(mode='fan_out', nonlinearity='relu')
        const double stddev =
            std::sqrt(2.0 / double(spec.shape[0] * spec.shape[2] * spec.shape[3]));
        for (float& v : t.data) v = float(stddev * rng.normal());
      } else {  // nn.Conv2d default: bound 1 / sqrt(fan_in)
        const double bound = 1.0 / std::sqrt(double(spec.shape[1] * spec.shape[2] * spec.shape[3]));
        for (float& v : t.data) v = float(bound * (2.0 * rng.uniform() - 1.0));
      }
    } else if (ends_with(spec.name, ".running_var")) {
      std::fill(t.data.begin(), t.data.end(), 1.f);
    } else if (ends_with(spec.name, ".bias")) {
      const std::string owner = spec.name.substr(0, spec.name.size() - 5);
      auto w = shapes.find(owner + ".weight");
      if (w != shapes.end() && w->second.size() == 4) {  // conv bias: nn.Conv2d default
        const double bound = 1.0 / std::sqrt(double(w->second[1] * w->second[2] * w->second[3]));
        for (float& v : t.data) v = float(bound * (2.0 * rng.uniform() - 1.0));
      }                                            // BN bias: 0
    } else if (ends_with(spec.name, ".weight")) {  // BN weight
      std::fill(t.data.begin(), t.data.end(), 1.f);
    }  // running_mean: 0
    out.emplace(spec.name, std::move(t));
  }
  return out;
}

Trainer::Trainer(const FarSeeConfig& config, const HostTensors& init, const Context& ctx, int n,
                 int h, int w, int label_h, int label_w, const MixedPrecision& precision)
    : config_(config), precision_(precision), ctx_(ctx) {
  config_.validate();
  check_parameters(config_, init);
  check_precision();
  if (mixed()) scale_.scale = precision_.init_scale;
  if (label_h == 0) label_h = h;
  if (label_w == 0) label_w = w;
  graph_ = build_train_graph(config_, n, h, w, label_h, label_w);
  plan_ = plan_memory(graph_.buffer_lifetimes(precision_.activations), int64_t(rt::kAlignment));
  layout_ = parameter_layout(graph_.inference.layers);
  // A stream of its own on the executors that queue work and capture graphs (the default stream
  // cannot be captured).
  if (rt::uses_graphs(ctx_.executor) && ctx_.stream == nullptr) {
    own_stream_ = rt::Stream(ctx_.executor);
    ctx_.stream = own_stream_.get();
  }
  allocate_parameters(init);
  allocate_conv_weights();
  repack_all();
  workspace_ = rt::Buffer(ctx_.executor, std::max<size_t>(workspace_bytes(), 256));
  // Zeroed once: every split-K conv launch leaves its counters zero (kernels/conv_bn_act.h).
  tile_counters_ = rt::Buffer(ctx_.executor, std::max<size_t>(tile_counter_count(), 1) * 4);
  fill_zero(ctx_, tile_counters_.data(), tile_counters_.bytes());
  arena_ = rt::Buffer(ctx_.executor, size_t(plan_.arena_bytes));
  labels_ = rt::Buffer(ctx_.executor, size_t(n) * label_h * label_w);
  lr_ = rt::Buffer(ctx_.executor, 256);
  scalars_ = rt::Buffer(ctx_.executor, 256);
  fill_zero(ctx_, scalars_.data(), scalars_.bytes());
  rt::synchronize(ctx_);
}

void Trainer::check_precision() {
  FARSEE_REQUIRE(precision_.activations == DType::F32 || precision_.activations == DType::F16,
                 "Trainer: activations must be fp32 or fp16 (mixed precision)");
  FARSEE_REQUIRE(!precision_.tf32 || precision_.activations == DType::F32,
                 "Trainer: tf32 convolutions need fp32 activations");
  FARSEE_REQUIRE(!precision_.tf32 || ctx_.executor != Executor::Cpu,
                 "Trainer: precision tf32 is not available on the cpu executor (no TF32 "
                 "convolutions there): use fp32 on cpu, or the cuda executor");
  if (!mixed()) return;
  const MixedPrecision& p = precision_;
  FARSEE_REQUIRE(std::isfinite(p.init_scale) && p.init_scale > 0.0f,
                 "Trainer: initial loss scale " << p.init_scale << " must be positive and finite");
  FARSEE_REQUIRE(p.growth_factor > 1.0f && p.backoff_factor > 0.0f && p.backoff_factor < 1.0f &&
                     p.growth_interval >= 1,
                 "Trainer: loss-scale growth factor "
                     << p.growth_factor << " (needs > 1), backoff factor " << p.backoff_factor
                     << " (needs 0 < b < 1), growth interval " << p.growth_interval
                     << " (needs >= 1)");
}

void Trainer::allocate_parameters(const HostTensors& init) {
  // Host images of the parameter and running-statistics arenas.
  std::vector<float> host_params, host_running;
  to_arenas(init, host_params, &host_running);
  const size_t param_bytes = host_params.size() * sizeof(float);
  params_ = rt::Buffer(ctx_.executor, param_bytes);
  grads_ = rt::Buffer(ctx_.executor, param_bytes);
  momenta_ = rt::Buffer(ctx_.executor, param_bytes);
  running_ = rt::Buffer(ctx_.executor, host_running.size() * sizeof(float));
  saved_ =
      rt::Buffer(ctx_.executor, size_t(std::max<int64_t>(layout_.saved_floats, 1)) * sizeof(float));
  rt::copy_to_device(ctx_, params_.data(), host_params.data(), param_bytes);
  rt::copy_to_device(ctx_, running_.data(), host_running.data(),
                     host_running.size() * sizeof(float));
  rt::synchronize(ctx_);  // the host arenas die with this function
  fill_zero(ctx_, grads_.data(), param_bytes);
  fill_zero(ctx_, momenta_.data(), param_bytes);
  fill_zero(ctx_, saved_.data(), saved_.bytes());
}

void Trainer::allocate_conv_weights() {
  const std::vector<Layer>& layers = graph_.inference.layers;
  weights_.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    if (!is_conv_layer(l)) continue;
    LayerWeights& lw = weights_[i];
    const DType dt = precision_.activations;  // fp16: the tensor-core operands
    lw.forward = alloc_conv_weights(ctx_, l.K, l.R, l.S, l.C, dt, ConvWeightUse::Forward);
    lw.backward_data =
        alloc_conv_weights(ctx_, l.K, l.R, l.S, l.C, dt, ConvWeightUse::BackwardData);
  }
}

// One workspace serves every op (they run one after another on one stream): the largest need.
size_t Trainer::workspace_bytes() const {
  size_t ws = 0;
  for (const TrainStep& s : graph_.steps) {
    const Shape4 xs = s.x.shape;
    switch (s.op) {
      case TrainOp::Conv:
        ws = std::max(ws, conv_workspace_bytes(s.conv, weights_[size_t(s.layer)].forward, xs));
        break;
      case TrainOp::ConvBackward: {
        const int K = graph_.inference.layers[size_t(s.layer)].K;
        ws = std::max(ws, conv_bwd_weight_workspace_bytes(s.conv, K, xs));
        if (s.dx.valid()) ws = std::max(ws, conv_bwd_data_workspace_bytes(s.conv, K, xs));
        break;
      }
      case TrainOp::BatchNorm:
      case TrainOp::BatchNormBackward:
        ws = std::max(ws, batchnorm_workspace_bytes(xs));
        break;
      case TrainOp::DepthwiseBackward: {
        DepthwiseParams d;
        d.stride = s.conv.stride_h;
        d.dilation = s.conv.dilation_h;
        d.relu = false;
        ws = std::max(ws, depthwise_atrous_bwd_weight_workspace_bytes(d, xs));
        break;
      }
      case TrainOp::Loss:
        ws = std::max(ws, softmax_ce_workspace_bytes(xs, graph_.label_h, graph_.label_w));
        break;
      default:
        break;
    }
  }
  return ws;
}

// Split-K tile counters for the forward convs, the dgrads and the wgrads (one set: they run one at
// a time).
size_t Trainer::tile_counter_count() const {
  size_t count = 0;
  for (const TrainStep& s : graph_.steps) {
    if (s.op == TrainOp::Conv) {
      count = std::max(
          count, conv_tile_counter_count(s.conv, weights_[size_t(s.layer)].forward, s.x.shape));
    } else if (s.op == TrainOp::ConvBackward) {
      const int K = graph_.inference.layers[size_t(s.layer)].K;
      count = std::max(count, conv_bwd_weight_tile_counter_count(s.conv, K, s.x.shape));
      if (s.dx.valid())
        count = std::max(count, conv_bwd_data_tile_counter_count(s.conv, K, s.x.shape));
    }
  }
  return count;
}

Trainer::~Trainer() {
  rt::graph_destroy(cuda_graph_);  // then own_stream_ (the last member)
}

void Trainer::set_class_weights(const std::vector<float>& weights) {
  if (!weights.empty()) {
    FARSEE_REQUIRE(int(weights.size()) == config_.num_classes,
                   "Trainer: " << weights.size() << " class weights for " << config_.num_classes
                               << " classes");
    for (size_t c = 0; c < weights.size(); ++c) {
      FARSEE_REQUIRE(
          std::isfinite(weights[c]) && weights[c] >= 0.0f,
          "Trainer: class weight " << c << " is " << weights[c] << "; expected finite and >= 0");
    }
    if (class_weights_.bytes() == 0) {
      class_weights_ = rt::Buffer(ctx_.executor, weights.size() * sizeof(float));
    }
    rt::copy_to_device(ctx_, class_weights_.data(), weights.data(), weights.size() * sizeof(float));
    rt::synchronize(ctx_);
  }
  class_weights_host_ = weights;
  rt::graph_destroy(cuda_graph_);  // a captured step holds the old pointer (or none)
  cuda_graph_ = nullptr;
}

int64_t Trainer::device_bytes() const {
  int64_t total =
      int64_t(params_.bytes() + grads_.bytes() + momenta_.bytes() + running_.bytes() +
              saved_.bytes() + arena_.bytes() + workspace_.bytes() + tile_counters_.bytes() +
              labels_.bytes() + lr_.bytes() + scalars_.bytes() + class_weights_.bytes());
  for (const LayerWeights& w : weights_) {
    total += int64_t(w.forward.buffer.bytes() + w.backward_data.buffer.bytes());
  }
  return total;
}

float* Trainer::param(int64_t offset) const {
  return offset < 0 ? nullptr : params_.as<float>() + offset;
}
float* Trainer::grad(int64_t offset) const {
  return offset < 0 ? nullptr : grads_.as<float>() + offset;
}

TensorView Trainer::view(const TensorRef& r) const {
  if (!r.valid()) return TensorView{};
  const BufferDesc& b = graph_.buffers[size_t(r.buffer)];
  TensorView v;
  v.dtype = precision_.activations;
  v.data = static_cast<char*>(arena_.data()) + plan_.offsets[size_t(r.buffer)] +
           int64_t(r.channel_offset) * int64_t(dtype_size(v.dtype));
  v.shape = r.shape;
  v.pixel_stride = b.shape.c;
  return v;
}

// This rank's share of the loss's normaliser (section 10.2): the counted labels' class weights.
void Trainer::count_label_weights(const uint8_t* labels) {
  local_weight_sum_ = 0;
  for (size_t i = 0; i < labels_.bytes(); ++i) {
    if (labels[i] == 255) continue;
    local_weight_sum_ += class_weights_host_.empty() ? 1.0 : double(class_weights_host_[labels[i]]);
  }
}

void Trainer::set_batch(const float* input_nhwc, const uint8_t* labels) {
  const TensorView in = view(graph_.input);
  const size_t count = size_t(in.shape.elements());
  std::vector<uint16_t> half;
  if (in.dtype == DType::F16) {  // rounded to nearest even, as PyTorch's input.half()
    half.resize(count);
    for (size_t i = 0; i < count; ++i) half[i] = float_to_half_bits(input_nhwc[i]);
    rt::copy_to_device(ctx_, in.data, half.data(), count * sizeof(uint16_t));
  } else {
    rt::copy_to_device(ctx_, in.data, input_nhwc, count * sizeof(float));
  }
  rt::copy_to_device(ctx_, labels_.data(), labels, labels_.bytes());
  if (distributed()) count_label_weights(labels);
  // The copies read host memory when they execute: `half` dies here, and the caller may reuse its
  // buffers (a loader's pinned batch) once this returns.
  rt::synchronize(ctx_);
}

Trainer::RawSlot& Trainer::raw_slot(int slot) {
  FARSEE_REQUIRE(slot == 0 || slot == 1, "Trainer: raw batch slot " << slot << " (0 or 1)");
  return raw_slots_[slot];
}

Trainer::RawStaging Trainer::raw_staging(int64_t image_bytes, int64_t label_bytes) {
  rt::synchronize(ctx_);  // the previous batch's augmentation has run
  wait_raw_uploads();     // and its copies have read the staging
  return raw_staging(image_bytes, label_bytes, 0);
}

Trainer::RawStaging Trainer::raw_staging(int64_t image_bytes, int64_t label_bytes, int slot) {
  FARSEE_REQUIRE(image_bytes > 0 && label_bytes > 0,
                 "Trainer::raw_staging: " << image_bytes << " image and " << label_bytes
                                          << " label bytes (both must be positive)");
  RawSlot& s = raw_slot(slot);
  const Executor e = ctx_.executor;
  s.images.reserve(e, size_t(image_bytes));
  s.labels.reserve(e, size_t(label_bytes));
  s.samples.reserve(e, size_t(graph_.inference.n) * sizeof(AugmentSample));
  return RawStaging{s.images.as<uint8_t>(), s.labels.as<uint8_t>(), s.samples.as<AugmentSample>()};
}

void Trainer::upload_raw_batch(int slot, int64_t image_bytes, int64_t label_bytes) {
  RawSlot& s = raw_slot(slot);
  FARSEE_REQUIRE(int64_t(s.images.bytes()) >= image_bytes &&
                     int64_t(s.labels.bytes()) >= label_bytes && image_bytes > 0,
                 "Trainer::upload_raw_batch: " << image_bytes << " image / " << label_bytes
                                               << " label bytes beyond slot " << slot
                                               << "'s staging (call raw_staging first)");
  const int n = graph_.inference.n;
  const size_t sample_bytes = size_t(n) * sizeof(AugmentSample);
  check_augment_samples(s.samples.as<AugmentSample>(), n, image_bytes, label_bytes);
  const Executor e = ctx_.executor;
  s.device_images.reserve(e, size_t(image_bytes));
  s.device_labels.reserve(e, size_t(label_bytes));
  s.device_samples.reserve(e, sample_bytes);
  if (!copy_stream_) copy_stream_ = rt::Stream(e);
  if (!s.uploaded) s.uploaded = rt::Event(e);
  const Context copy{e, copy_stream_.get()};
  rt::copy_to_device(copy, s.device_images.data(), s.images.data(), size_t(image_bytes));
  rt::copy_to_device(copy, s.device_labels.data(), s.labels.data(), size_t(label_bytes));
  rt::copy_to_device(copy, s.device_samples.data(), s.samples.data(), sample_bytes);
  rt::event_record(copy, s.uploaded.get());
  s.image_bytes = image_bytes;
  s.label_bytes = label_bytes;
}

void Trainer::augment_uploaded(int slot, const AugmentNormalise& normalise) {
  RawSlot& s = raw_slot(slot);
  FARSEE_REQUIRE(s.image_bytes > 0,
                 "Trainer::augment_uploaded: slot " << slot << " holds no uploaded batch");
  rt::stream_wait_event(ctx_, s.uploaded.get());
  AugmentBatch batch;
  batch.images = s.device_images.as<uint8_t>();
  batch.image_bytes = s.image_bytes;
  batch.labels = s.device_labels.as<uint8_t>();
  batch.label_bytes = s.label_bytes;
  batch.samples = s.device_samples.as<AugmentSample>();
  batch.normalise = normalise;
  augment_fwd(ctx_, batch, view(graph_.input), labels_.as<uint8_t>(), graph_.label_h,
              graph_.label_w);
  if (distributed()) {  // the normaliser counts the augmented labels: back to the host (waits)
    std::vector<uint8_t> labels(labels_.bytes());
    rt::copy_to_host(ctx_, labels.data(), labels_.data(), labels.size());
    count_label_weights(labels.data());
  }
}

void Trainer::wait_raw_uploads() {
  if (copy_stream_) rt::synchronize(Context{ctx_.executor, copy_stream_.get()});
}

void Trainer::augment_raw_batch(int64_t image_bytes, int64_t label_bytes,
                                const AugmentNormalise& normalise) {
  upload_raw_batch(0, image_bytes, label_bytes);
  augment_uploaded(0, normalise);
}

void Trainer::fill_activations(uint8_t byte) {
  rt::memset(ctx_, arena_.data(), byte, size_t(plan_.arena_bytes));
}

namespace {

// The wgrad options of a conv whose forward and dgrad run with `o`: the same workspace, tile
// counters (the trainer's launches run one at a time) and math (tf32 or strict fp32).
ConvWgradOptions wgrad_options(const ConvOptions& o) {
  ConvWgradOptions w;
  w.workspace = o.workspace;
  w.workspace_bytes = o.workspace_bytes;
  w.tile_counters = o.tile_counters;
  w.tile_counter_count = o.tile_counter_count;
  w.tf32 = o.tf32;
  return w;
}

}  // namespace

void Trainer::run(const TrainStep& s) {
  const LayerSlots* slots = s.layer >= 0 ? &layout_.layers[size_t(s.layer)] : nullptr;
  ConvOptions options;
  options.workspace = workspace_.data();
  options.workspace_bytes = workspace_.bytes();
  options.tf32 = precision_.tf32;
  options.tile_counters = tile_counters_.as<int>();
  options.tile_counter_count = tile_counters_.bytes() / sizeof(int);
  DepthwiseParams dw;
  dw.stride = s.conv.stride_h;
  dw.dilation = s.conv.dilation_h;
  dw.relu = false;
  switch (s.op) {
    case TrainOp::Conv: {
      ConvEpilogue e;
      e.bias = s.bias ? param(slots->bias) : nullptr;
      e.shuffle_factor = s.shuffle;
      conv_bn_act_fwd(ctx_, s.conv, view(s.x), weights_[size_t(s.layer)].forward, e, view(s.y),
                      options);
      break;
    }
    case TrainOp::BatchNorm:
    case TrainOp::BatchNormBackward:
      run_batchnorm(s, *slots);
      break;
    case TrainOp::Depthwise:
      depthwise_atrous_fwd(ctx_, dw, view(s.x), param(slots->weight), nullptr, nullptr, view(s.y));
      break;
    case TrainOp::MaxPool:
      max_pool_fwd(ctx_, s.pool, view(s.x), view(s.y));
      break;
    case TrainOp::PixelShuffle:
      pixel_shuffle_fwd(ctx_, s.shuffle, view(s.x), view(s.y));
      break;
    case TrainOp::Loss:
      softmax_ce_upsample(
          ctx_, config_.align_corners, view(s.x), labels_.as<uint8_t>(), graph_.label_h,
          graph_.label_w, scalar<float>(offsetof(StepScalars, loss)), view(s.dx),
          scale_.scale * loss_factor_, workspace_.data(), workspace_.bytes(), nullptr,
          class_weights_host_.empty() ? nullptr : class_weights_.as<float>(),
          mixed() ? scalar<float>(offsetof(StepScalars, scale)) : nullptr);
      break;
    case TrainOp::ConvBackward: {
      conv_bwd_weight(ctx_, s.conv, view(s.x), view(s.dy), s.shuffle, grad(slots->weight),
                      s.bias ? grad(slots->bias) : nullptr, wgrad_options(options));
      if (s.dx.valid()) {
        conv_bwd_data(ctx_, s.conv, view(s.dy), s.shuffle, weights_[size_t(s.layer)].backward_data,
                      view(s.dx), s.accumulate_dx, options);
      }
      break;
    }
    case TrainOp::DepthwiseBackward:
      depthwise_atrous_bwd_weight(ctx_, dw, view(s.x), view(s.dy), grad(slots->weight),
                                  workspace_.data(), workspace_.bytes());
      depthwise_atrous_bwd_data(ctx_, dw, view(s.dy), param(slots->weight), view(s.dx),
                                s.accumulate_dx);
      break;
    case TrainOp::MaxPoolBackward:
      max_pool_bwd(ctx_, s.pool, view(s.x), view(s.dy), view(s.dx));
      break;
    case TrainOp::PixelShuffleBackward:
      pixel_unshuffle_fwd(ctx_, s.shuffle, view(s.dy), view(s.dx));  // shuffle's backward
      break;
  }
}

void Trainer::upload_loss_scale() {
  if (!mixed()) return;
  FARSEE_REQUIRE(scale_.scale > 0.0f && std::isfinite(1.0f / scale_.scale),
                 "mixed precision: the loss scale fell to "
                     << scale_.scale << " after " << scale_.skipped_steps
                     << " skipped steps: the gradients are not finite at any scale");
  // scale_ changes only after a wait (finish_step's read-back, load_state, load_loss_scale), so
  // between two waits host_scale_ is rewritten with the same bytes: a copy still queued (an
  // asynchronous executor reads the source when the copy runs) reads the value it was given.
  host_scale_[0] = scale_.scale;
  host_scale_[1] = 1.0f / scale_.scale;
  static_assert(offsetof(StepScalars, inv_scale) == offsetof(StepScalars, scale) + sizeof(float),
                "scale and inv_scale are copied together");
  rt::copy_to_device(ctx_, scalar<float>(offsetof(StepScalars, scale)), host_scale_,
                     sizeof(host_scale_));
}

void Trainer::zero_gradients() {
  fill_zero(ctx_, grads_.data(), grads_.bytes());
  if (mixed()) fill_zero(ctx_, scalar<int32_t>(offsetof(StepScalars, found_inf)), sizeof(int32_t));
}

void Trainer::unscale_gradients() {
  if (!mixed()) return;
  grad_unscale_check(ctx_, layout_.parameter_floats, grads_.as<float>(), 1.0f / scale_.scale,
                     scalar<int32_t>(offsetof(StepScalars, found_inf)),
                     scalar<float>(offsetof(StepScalars, inv_scale)));
}

void Trainer::run_compute_gradients() {
  zero_gradients();
  if (distributed()) share_loss_normaliser();
  for (const TrainStep& s : graph_.steps) run(s);
  if (distributed()) all_reduce_gradients();
  unscale_gradients();
}

// One call over the whole arena, before the unscale: NCCL on the device, else host memory
// (reference, cpu, and emu's host-addressable memory).
void Trainer::all_reduce_gradients() {
  if (ctx_.executor == Executor::Cuda) {
    device_all_reduce_(grads_.as<float>(), layout_.parameter_floats, ctx_.stream);
    return;
  }
  rt::synchronize(ctx_);
  comm_->all_reduce_sum(grads_.as<float>(), layout_.parameter_floats, "gradients");
}

void Trainer::run_batchnorm(const TrainStep& s, const LayerSlots& slots) {
  BatchNormTrainArgs bn;     // eps 1e-5, momentum 0.1 (PyTorch's defaults)
  bn.sync = bn_sync_.get();  // set only when distributed with SyncBN on cuda or emu
  float* saved = saved_.as<float>();
  float* running = running_.as<float>();
  const bool host_sync = distributed() && sync_bn_ && !bn_sync_;
  if (s.op == TrainOp::BatchNorm && host_sync) {
    sync_batchnorm_train_fwd(*comm_, view(s.x), param(slots.gamma), param(slots.beta),
                             view(s.residual), s.relu, view(s.y), saved + slots.save_mean,
                             saved + slots.save_invstd, running + slots.running_mean,
                             running + slots.running_var, bn);
  } else if (s.op == TrainOp::BatchNorm) {
    batchnorm_train_fwd(ctx_, view(s.x), param(slots.gamma), param(slots.beta), view(s.residual),
                        s.relu, view(s.y), saved + slots.save_mean, saved + slots.save_invstd,
                        running + slots.running_mean, running + slots.running_var, bn,
                        workspace_.data(), workspace_.bytes());
  } else if (host_sync) {
    sync_batchnorm_train_bwd(*comm_, view(s.x), view(s.y), s.relu, view(s.dy),
                             saved + slots.save_mean, saved + slots.save_invstd, param(slots.gamma),
                             view(s.dx), view(s.dresidual), s.accumulate_dresidual,
                             grad(slots.gamma), grad(slots.beta));
  } else {
    batchnorm_train_bwd(ctx_, view(s.x), view(s.y), s.relu, view(s.dy), saved + slots.save_mean,
                        saved + slots.save_invstd, param(slots.gamma), view(s.dx),
                        view(s.dresidual), s.accumulate_dresidual, grad(slots.gamma),
                        grad(slots.beta), workspace_.data(), workspace_.bytes(), bn.sync);
  }
}

void Trainer::set_data_parallel(Collective* comm, bool sync_bn) {
  comm_ = comm;
  sync_bn_ = sync_bn;
  bn_sync_.reset();
  if (!distributed()) return;
  const bool host = ctx_.executor == Executor::Reference || ctx_.executor == Executor::Cpu;
  const bool cuda = ctx_.executor == Executor::Cuda;
  FARSEE_REQUIRE(!cuda || device_all_reduce_,
                 "data parallelism over " << comm->size()
                                          << " ranks on cuda needs NCCL (this build has none: "
                                             "DESIGN.md section 10.2)");
  if (sync_bn && !host) bn_sync_ = std::make_unique<CollectiveBatchNormSync>(*comm);
}

// The loss of rank r is sum_r / S_r (the op's weighted mean); the global batch's is
// sum over r of sum_r / S with S = sum of S_r, so d(logits) scales by S_r / S and the loss
// reported is the rank-order sum of loss_r * S_r / S (0 for a rank whose labels all count 0).
void Trainer::share_loss_normaliser() {
  double total = local_weight_sum_;
  comm_->all_reduce_sum(&total, 1, "loss normaliser");
  loss_share_ = total > 0 ? local_weight_sum_ / total : 1.0;
  loss_factor_ = float(loss_share_);
}

float Trainer::global_loss(float local_loss) {
  if (!distributed()) return local_loss;
  double v = local_weight_sum_ > 0 ? double(local_loss) * loss_share_ : 0.0;
  comm_->all_reduce_sum(&v, 1, "loss");
  return float(v);
}

void Trainer::compute_gradients() {
  upload_loss_scale();
  run_compute_gradients();
}

void Trainer::run_sgd(const SgdArgs& sgd, const float* lr_in_memory) {
  sgd_step(ctx_, layout_.parameter_floats, params_.as<float>(), grads_.as<float>(),
           momenta_.as<float>(), sgd.lr, sgd.momentum, sgd.weight_decay, sgd_steps_applied() == 0,
           mixed() ? scalar<int32_t>(offsetof(StepScalars, found_inf)) : nullptr, lr_in_memory);
  repack_all();
}

Trainer::StepScalars Trainer::read_back() const {
  StepScalars r;
  rt::copy_to_host(ctx_, &r, scalars_.data(), offsetof(StepScalars, scale));
  rt::synchronize(ctx_);
  ++readbacks_;
  return r;
}

float Trainer::finish_step(bool want_loss) {
  ++steps_done_;
  if (!mixed() && !want_loss) return NAN;
  const StepScalars r = read_back();
  if (mixed()) update_loss_scale(r.found_inf != 0);
  return r.loss;
}

void Trainer::update_loss_scale(bool found) {
  scale_.last_step_skipped = found;
  if (found) {
    ++scale_.skipped_steps;
    scale_.scale *= precision_.backoff_factor;
    scale_.growth_tracker = 0;
  } else if (++scale_.growth_tracker == precision_.growth_interval) {
    const float grown = scale_.scale * precision_.growth_factor;
    if (std::isfinite(grown)) scale_.scale = grown;
    scale_.growth_tracker = 0;
  }
}

void Trainer::load_loss_scale(const LossScaleState& state) {
  FARSEE_REQUIRE(std::isfinite(state.scale) && state.scale > 0.0f,
                 "load_loss_scale: scale " << state.scale << " must be positive and finite");
  FARSEE_REQUIRE(
      state.growth_tracker >= 0 && state.skipped_steps >= 0 && state.skipped_steps <= steps_done_,
      "load_loss_scale: growth tracker " << state.growth_tracker << ", skipped steps "
                                         << state.skipped_steps << " of " << steps_done_
                                         << " steps done");
  FARSEE_REQUIRE(mixed() || (state.scale == 1.0f && state.skipped_steps == 0),
                 "load_loss_scale: a loss-scaler state (scale "
                     << state.scale << ", " << state.skipped_steps
                     << " skipped steps) for an fp32 trainer (mixed precision only)");
  rt::synchronize(ctx_);  // a queued upload_loss_scale copy reads host_scale_
  scale_ = state;
  rt::graph_destroy(cuda_graph_);
  cuda_graph_ = nullptr;
}

void Trainer::repack_all() {
  const std::vector<Layer>& layers = graph_.inference.layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!is_conv_layer(layers[i])) continue;
    refresh_conv_weights(ctx_, param(layout_.layers[i].weight), weights_[i].forward);
    refresh_conv_weights(ctx_, param(layout_.layers[i].weight), weights_[i].backward_data);
  }
}

void Trainer::apply_sgd(const SgdArgs& sgd) {
  run_sgd(sgd);
  finish_step(false);
}

void Trainer::run_all(const SgdArgs& sgd, const float* lr_in_memory) {
  run_compute_gradients();
  run_sgd(sgd, lr_in_memory);
}

float Trainer::step(const SgdArgs& sgd, bool use_cuda_graph) {
  // Data parallelism runs eagerly: the loss factor is a value argument of the loss step and the
  // all-reduce waits on the host.
  const bool graphs = use_cuda_graph && rt::uses_graphs(ctx_.executor) && !distributed();
  upload_loss_scale();  // read from memory by the loss and the unscale, eager or replayed
  // Eager until the momentum buffers exist (the first applied SGD step is different) and until
  // this process has run a whole step eagerly: every kernel's first launch (lazy module loading,
  // which drivers before 12.3 cannot do inside capture) and its one-time function attributes
  // then happen outside capture, after a --resume too.
  if (!graphs || sgd_steps_applied() == 0 || !ran_eager_step_) {
    run_all(sgd);
    ran_eager_step_ = true;
  } else {
    // The learning rate and the loss scale are read from memory by the captured step (schedules
    // and the scaler change them from step to step); momentum and weight decay are baked in
    // (they rarely change).
    FARSEE_REQUIRE(std::isfinite(sgd.lr) && sgd.lr >= 0.0f,
                   "Trainer::step: lr " << sgd.lr << " must be finite and >= 0");
    host_lr_ = sgd.lr;
    rt::copy_to_device(ctx_, lr_.data(), &host_lr_, sizeof(float));  // stream-ordered
    if (cuda_graph_ &&
        (graph_momentum_ != sgd.momentum || graph_weight_decay_ != sgd.weight_decay)) {
      rt::graph_destroy(cuda_graph_);
      cuda_graph_ = nullptr;
    }
    if (!cuda_graph_) {
      rt::graph_begin_capture(ctx_);
      try {
        run_all(sgd, lr_.as<float>());
      } catch (...) {
        try {
          rt::graph_destroy(rt::graph_end_capture(ctx_));
        } catch (...) {
        }
        throw;
      }
      cuda_graph_ = rt::graph_end_capture(ctx_);
      ++graphs_captured_;
      graph_momentum_ = sgd.momentum;
      graph_weight_decay_ = sgd.weight_decay;
    }
    rt::graph_launch(ctx_, cuda_graph_);
  }
  return global_loss(finish_step(true));
}

float Trainer::loss() const {
  return read_back().loss;
}

HostTensors Trainer::to_named(const std::vector<float>& arena, bool gradients) const {
  std::vector<float> running;
  if (!gradients) {
    running.resize(running_.bytes() / sizeof(float));
    rt::copy_to_host(ctx_, running.data(), running_.data(), running_.bytes());
    rt::synchronize(ctx_);
  }
  HostTensors out;
  const std::vector<Layer>& layers = graph_.inference.layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const LayerSlots& s = layout_.layers[i];
    int64_t row = 0;
    for (const ParamUnit& u : l.units) {
      const int64_t per_row = int64_t(l.R) * l.S * l.C;
      const float* w = arena.data() + s.weight + row * per_row;
      HostTensor wt;
      wt.shape = {u.out_channels, u.in_channels, u.kernel, u.kernel};
      wt.data = l.depthwise ? std::vector<float>(w, w + u.out_channels * per_row)
                            : krsc_to_oihw(w, u.out_channels, l.R, l.S, l.C);
      out.emplace(u.conv + ".weight", std::move(wt));
      auto vec = [&](const float* base, int64_t slot) {
        HostTensor t;
        t.shape = {u.out_channels};
        t.data.assign(base + slot + row, base + slot + row + u.out_channels);
        return t;
      };
      if (u.conv_bias) out.emplace(u.conv + ".bias", vec(arena.data(), s.bias));
      if (!u.bn.empty()) {
        out.emplace(u.bn + ".weight", vec(arena.data(), s.gamma));
        out.emplace(u.bn + ".bias", vec(arena.data(), s.beta));
        if (!gradients) {
          out.emplace(u.bn + ".running_mean", vec(running.data(), s.running_mean));
          out.emplace(u.bn + ".running_var", vec(running.data(), s.running_var));
        }
      }
      row += u.out_channels;
    }
  }
  return out;
}

void Trainer::to_arenas(const HostTensors& named, std::vector<float>& params,
                        std::vector<float>* running) const {
  params.assign(size_t(layout_.parameter_floats), 0.f);
  if (running) running->assign(size_t(std::max<int64_t>(layout_.running_floats, 1)), 0.f);
  const std::vector<Layer>& layers = graph_.inference.layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const LayerSlots& s = layout_.layers[i];
    int64_t row = 0;  // output channel of the first row of this unit
    for (const ParamUnit& u : l.units) {
      const std::string wname = u.conv + ".weight";
      const HostTensor& wt = tensor(named, wname);
      // Depthwise [C][1][3][3] converts to [C][3][3][1] = [C][3][3].
      const std::vector<float> krsc = weights::oihw_to_krsc(wt.data, wt.shape, wname);
      const int64_t per_row = int64_t(l.R) * l.S * l.C;
      std::copy(krsc.begin(), krsc.end(), params.begin() + s.weight + row * per_row);
      if (u.conv_bias) {
        const HostTensor& b = tensor(named, u.conv + ".bias");
        std::copy(b.data.begin(), b.data.end(), params.begin() + s.bias + row);
      }
      if (!u.bn.empty()) {
        auto put = [&](std::vector<float>& arena, int64_t slot, const char* leaf) {
          const HostTensor& t = tensor(named, u.bn + leaf);
          FARSEE_REQUIRE(int64_t(t.data.size()) == u.out_channels,
                         "tensor '" << u.bn + leaf << "' holds " << t.data.size()
                                    << " values, expected " << u.out_channels);
          std::copy(t.data.begin(), t.data.end(), arena.begin() + slot + row);
        };
        put(params, s.gamma, ".weight");
        put(params, s.beta, ".bias");
        if (running) {
          put(*running, s.running_mean, ".running_mean");
          put(*running, s.running_var, ".running_var");
        }
      }
      row += u.out_channels;
    }
  }
}

HostTensors Trainer::momenta() const {
  std::vector<float> host(momenta_.bytes() / sizeof(float));
  rt::copy_to_host(ctx_, host.data(), momenta_.data(), momenta_.bytes());
  rt::synchronize(ctx_);
  return to_named(host, true);
}

void Trainer::load_state(const HostTensors& state, const HostTensors& momenta, int64_t steps_done) {
  FARSEE_REQUIRE(steps_done >= 0, "load_state: steps_done " << steps_done << " < 0");
  check_parameters(config_, state);
  std::vector<float> host_params, host_running, host_momenta;
  to_arenas(state, host_params, &host_running);
  to_arenas(momenta, host_momenta, nullptr);
  rt::synchronize(ctx_);
  rt::copy_to_device(ctx_, params_.data(), host_params.data(), params_.bytes());
  rt::copy_to_device(ctx_, running_.data(), host_running.data(), running_.bytes());
  rt::copy_to_device(ctx_, momenta_.data(), host_momenta.data(), momenta_.bytes());
  repack_all();
  rt::synchronize(ctx_);
  rt::graph_destroy(cuda_graph_);
  cuda_graph_ = nullptr;
  steps_done_ = steps_done;
  // The scaler starts afresh (load_loss_scale restores a stored one): every step counts as applied.
  scale_ = LossScaleState{};
  if (mixed()) scale_.scale = precision_.init_scale;
}

HostTensors Trainer::state() const {
  std::vector<float> host(params_.bytes() / sizeof(float));
  rt::copy_to_host(ctx_, host.data(), params_.data(), params_.bytes());
  rt::synchronize(ctx_);
  return to_named(host, false);
}

HostTensors Trainer::gradients() const {
  std::vector<float> host(grads_.bytes() / sizeof(float));
  rt::copy_to_host(ctx_, host.data(), grads_.data(), grads_.bytes());
  rt::synchronize(ctx_);
  return to_named(host, true);
}

std::vector<Trainer::StepTime> Trainer::profile_step(const SgdArgs& sgd) {
  std::vector<StepTime> times;
  rt::Timer timer(ctx_.executor);
  upload_loss_scale();
  timer.record_start(ctx_);
  zero_gradients();
  timer.record_stop(ctx_);
  times.push_back({"zero_grads", timer.elapsed_ms()});
  for (const TrainStep& s : graph_.steps) {
    timer.record_start(ctx_);
    run(s);
    timer.record_stop(ctx_);
    times.push_back({s.name + " [" + train_op_name(s.op) + "]", timer.elapsed_ms()});
  }
  if (mixed()) {
    timer.record_start(ctx_);
    unscale_gradients();
    timer.record_stop(ctx_);
    times.push_back({"grad_unscale_check", timer.elapsed_ms()});
  }
  timer.record_start(ctx_);
  run_sgd(sgd);
  timer.record_stop(ctx_);
  times.push_back({"sgd+repack", timer.elapsed_ms()});
  finish_step(false);
  return times;
}

}  // namespace farsee::net
