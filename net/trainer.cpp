#include "net/trainer.h"

#include <algorithm>
#include <cstring>

#include "kernels/batchnorm.h"
#include "kernels/depthwise_atrous.h"
#include "kernels/elementwise.h"
#include "kernels/pixel_shuffle.h"
#include "kernels/pixel_unshuffle.h"
#include "kernels/pool.h"
#include "kernels/sgd.h"
#include "kernels/softmax_cross_entropy.h"
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

}  // namespace

Trainer::Trainer(const FarSeeConfig& config, const HostTensors& init, const Context& ctx, int n,
                 int h, int w, int label_h, int label_w)
    : config_(config), ctx_(ctx) {
  config_.validate();
  check_parameters(config_, init);
  if (label_h == 0) label_h = h;
  if (label_w == 0) label_w = w;
  graph_ = build_train_graph(config_, n, h, w, label_h, label_w);
  plan_ = plan_memory(graph_.buffer_lifetimes(DType::F32), int64_t(rt::kAlignment));
  layout_ = parameter_layout(graph_.inference.layers);
  if (ctx_.executor == Executor::Cuda && ctx_.stream == nullptr) {
    ctx_.stream = rt::stream_create(Executor::Cuda);
    owns_stream_ = true;
  }
  try {
    const std::vector<Layer>& layers = graph_.inference.layers;
    // Host images of the parameter and running-statistics arenas.
    std::vector<float> host_params(size_t(layout_.parameter_floats), 0.f);
    std::vector<float> host_running(size_t(std::max<int64_t>(layout_.running_floats, 1)), 0.f);
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      const LayerSlots& s = layout_.layers[i];
      int64_t row = 0;  // output channel of the first row of this unit
      for (const ParamUnit& u : l.units) {
        const std::string wname = u.conv + ".weight";
        const HostTensor& wt = tensor(init, wname);
        // Depthwise [C][1][3][3] converts to [C][3][3][1] = [C][3][3].
        const std::vector<float> krsc = weights::oihw_to_krsc(wt.data, wt.shape, wname);
        const int64_t per_row = int64_t(l.R) * l.S * l.C;
        std::copy(krsc.begin(), krsc.end(), host_params.begin() + s.weight + row * per_row);
        if (u.conv_bias) {
          const HostTensor& b = tensor(init, u.conv + ".bias");
          std::copy(b.data.begin(), b.data.end(), host_params.begin() + s.bias + row);
        }
        if (!u.bn.empty()) {
          auto put = [&](std::vector<float>& arena, int64_t slot, const char* leaf) {
            const HostTensor& t = tensor(init, u.bn + leaf);
            std::copy(t.data.begin(), t.data.end(), arena.begin() + slot + row);
          };
          put(host_params, s.gamma, ".weight");
          put(host_params, s.beta, ".bias");
          put(host_running, s.running_mean, ".running_mean");
          put(host_running, s.running_var, ".running_var");
        }
        row += u.out_channels;
      }
    }
    const size_t param_bytes = host_params.size() * sizeof(float);
    params_ = rt::Buffer(ctx_.executor, param_bytes);
    grads_ = rt::Buffer(ctx_.executor, param_bytes);
    momenta_ = rt::Buffer(ctx_.executor, param_bytes);
    running_ = rt::Buffer(ctx_.executor, host_running.size() * sizeof(float));
    saved_ = rt::Buffer(ctx_.executor,
                        size_t(std::max<int64_t>(layout_.saved_floats, 1)) * sizeof(float));
    rt::copy_to_device(ctx_, params_.data(), host_params.data(), param_bytes);
    rt::copy_to_device(ctx_, running_.data(), host_running.data(),
                       host_running.size() * sizeof(float));
    fill_zero(ctx_, grads_.data(), param_bytes);
    fill_zero(ctx_, momenta_.data(), param_bytes);
    fill_zero(ctx_, saved_.data(), saved_.bytes());

    weights_.resize(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      if (!is_conv_layer(l)) continue;
      LayerWeights& lw = weights_[i];
      lw.forward = alloc_conv_weights(ctx_, l.K, l.R, l.S, l.C, DType::F32, ConvWeightUse::Forward);
      lw.backward_data =
          alloc_conv_weights(ctx_, l.K, l.R, l.S, l.C, DType::F32, ConvWeightUse::BackwardData);
      refresh_conv_weights(ctx_, param(layout_.layers[i].weight), lw.forward);
      refresh_conv_weights(ctx_, param(layout_.layers[i].weight), lw.backward_data);
    }

    // One workspace for every op (they run one after another on one stream).
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
    workspace_ = rt::Buffer(ctx_.executor, std::max<size_t>(ws, 256));
    arena_ = rt::Buffer(ctx_.executor, size_t(plan_.arena_bytes));
    labels_ = rt::Buffer(ctx_.executor, size_t(n) * label_h * label_w);
    loss_ = rt::Buffer(ctx_.executor, 256);
    fill_zero(ctx_, loss_.data(), loss_.bytes());
    rt::synchronize(ctx_);
  } catch (...) {
    if (owns_stream_) rt::stream_destroy(ctx_.executor, ctx_.stream);
    throw;
  }
}

Trainer::~Trainer() {
  rt::graph_destroy(cuda_graph_);
  if (owns_stream_) rt::stream_destroy(ctx_.executor, ctx_.stream);
}

int64_t Trainer::device_bytes() const {
  int64_t total = int64_t(params_.bytes() + grads_.bytes() + momenta_.bytes() + running_.bytes() +
                          saved_.bytes() + arena_.bytes() + workspace_.bytes() + labels_.bytes() +
                          loss_.bytes());
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
  v.dtype = DType::F32;
  v.data = static_cast<char*>(arena_.data()) + plan_.offsets[size_t(r.buffer)] +
           int64_t(r.channel_offset) * int64_t(sizeof(float));
  v.shape = r.shape;
  v.pixel_stride = b.shape.c;
  return v;
}

void Trainer::set_batch(const float* input_nhwc, const uint8_t* labels) {
  const TensorView in = view(graph_.input);
  rt::copy_to_device(ctx_, in.data, input_nhwc, size_t(in.shape.elements()) * sizeof(float));
  rt::copy_to_device(ctx_, labels_.data(), labels, labels_.bytes());
}

void Trainer::fill_activations(uint8_t byte) {
  rt::memset(ctx_, arena_.data(), byte, size_t(plan_.arena_bytes));
}

void Trainer::run(const TrainStep& s) {
  const LayerSlots* slots = s.layer >= 0 ? &layout_.layers[size_t(s.layer)] : nullptr;
  ConvOptions options;
  options.workspace = workspace_.data();
  options.workspace_bytes = workspace_.bytes();
  DepthwiseParams dw;
  dw.stride = s.conv.stride_h;
  dw.dilation = s.conv.dilation_h;
  dw.relu = false;
  BatchNormTrainArgs bn;  // eps 1e-5, momentum 0.1 (PyTorch's defaults)
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
      batchnorm_train_fwd(
          ctx_, view(s.x), param(slots->gamma), param(slots->beta), view(s.residual), s.relu,
          view(s.y), saved_.as<float>() + slots->save_mean, saved_.as<float>() + slots->save_invstd,
          running_.as<float>() + slots->running_mean, running_.as<float>() + slots->running_var, bn,
          workspace_.data(), workspace_.bytes());
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
      softmax_ce_upsample(ctx_, config_.align_corners, view(s.x), labels_.as<uint8_t>(),
                          graph_.label_h, graph_.label_w, loss_.as<float>(), view(s.dx), 1.0f,
                          workspace_.data(), workspace_.bytes());
      break;
    case TrainOp::ConvBackward: {
      conv_bwd_weight(ctx_, s.conv, view(s.x), view(s.dy), s.shuffle, grad(slots->weight),
                      s.bias ? grad(slots->bias) : nullptr, workspace_.data(), workspace_.bytes());
      if (s.dx.valid()) {
        conv_bwd_data(ctx_, s.conv, view(s.dy), s.shuffle, weights_[size_t(s.layer)].backward_data,
                      view(s.dx), s.accumulate_dx, options);
      }
      break;
    }
    case TrainOp::BatchNormBackward:
      batchnorm_train_bwd(ctx_, view(s.x), view(s.y), s.relu, view(s.dy),
                          saved_.as<float>() + slots->save_mean,
                          saved_.as<float>() + slots->save_invstd, param(slots->gamma), view(s.dx),
                          view(s.dresidual), s.accumulate_dresidual, grad(slots->gamma),
                          grad(slots->beta), workspace_.data(), workspace_.bytes());
      break;
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

void Trainer::compute_gradients() {
  fill_zero(ctx_, grads_.data(), grads_.bytes());
  for (const TrainStep& s : graph_.steps) run(s);
}

void Trainer::run_sgd(const SgdArgs& sgd) {
  sgd_step(ctx_, layout_.parameter_floats, params_.as<float>(), grads_.as<float>(),
           momenta_.as<float>(), sgd.lr, sgd.momentum, sgd.weight_decay, steps_done_ == 0);
  const std::vector<Layer>& layers = graph_.inference.layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!is_conv_layer(layers[i])) continue;
    refresh_conv_weights(ctx_, param(layout_.layers[i].weight), weights_[i].forward);
    refresh_conv_weights(ctx_, param(layout_.layers[i].weight), weights_[i].backward_data);
  }
}

void Trainer::apply_sgd(const SgdArgs& sgd) {
  run_sgd(sgd);
  ++steps_done_;
}

void Trainer::run_all(const SgdArgs& sgd) {
  compute_gradients();
  run_sgd(sgd);
}

float Trainer::step(const SgdArgs& sgd, bool use_cuda_graph) {
  const bool graphs = use_cuda_graph && ctx_.executor == Executor::Cuda;
  if (!graphs || steps_done_ == 0) {
    run_all(sgd);
  } else {
    if (cuda_graph_ && (graph_lr_ != sgd.lr || graph_momentum_ != sgd.momentum ||
                        graph_weight_decay_ != sgd.weight_decay)) {
      rt::graph_destroy(cuda_graph_);
      cuda_graph_ = nullptr;
    }
    if (!cuda_graph_) {
      rt::graph_begin_capture(ctx_);
      try {
        run_all(sgd);
      } catch (...) {
        try {
          rt::graph_destroy(rt::graph_end_capture(ctx_));
        } catch (...) {
        }
        throw;
      }
      cuda_graph_ = rt::graph_end_capture(ctx_);
      graph_lr_ = sgd.lr;
      graph_momentum_ = sgd.momentum;
      graph_weight_decay_ = sgd.weight_decay;
    }
    rt::graph_launch(ctx_, cuda_graph_);
  }
  ++steps_done_;
  return loss();
}

float Trainer::loss() const {
  float v = 0.f;
  rt::copy_to_host(ctx_, &v, loss_.data(), sizeof(float));
  rt::synchronize(ctx_);
  return v;
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
  timer.record_start(ctx_);
  fill_zero(ctx_, grads_.data(), grads_.bytes());
  timer.record_stop(ctx_);
  times.push_back({"zero_grads", timer.elapsed_ms()});
  for (const TrainStep& s : graph_.steps) {
    timer.record_start(ctx_);
    run(s);
    timer.record_stop(ctx_);
    times.push_back({s.name + " [" + train_op_name(s.op) + "]", timer.elapsed_ms()});
  }
  timer.record_start(ctx_);
  run_sgd(sgd);
  timer.record_stop(ctx_);
  times.push_back({"sgd+repack", timer.elapsed_ms()});
  ++steps_done_;
  return times;
}

}  // namespace farsee::net
