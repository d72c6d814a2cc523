#include "net/train_graph.h"

#include <algorithm>

#include "kernels/core/check.h"
#include "kernels/core/runtime.h"

namespace farsee::net {

const char* train_op_name(TrainOp op) {
  switch (op) {
    case TrainOp::Conv:
      return "conv";
    case TrainOp::BatchNorm:
      return "batchnorm";
    case TrainOp::Depthwise:
      return "depthwise";
    case TrainOp::MaxPool:
      return "maxpool";
    case TrainOp::PixelShuffle:
      return "pixel_shuffle";
    case TrainOp::Loss:
      return "loss";
    case TrainOp::ConvBackward:
      return "conv_bwd";
    case TrainOp::BatchNormBackward:
      return "batchnorm_bwd";
    case TrainOp::DepthwiseBackward:
      return "depthwise_bwd";
    case TrainOp::MaxPoolBackward:
      return "maxpool_bwd";
    case TrainOp::PixelShuffleBackward:
      return "pixel_shuffle_bwd";
  }
  return "?";
}

bool TrainGraph::layer_has_bn(int layer) const {
  const Layer& l = inference.layers[size_t(layer)];
  bool any = false, all = true;
  for (const ParamUnit& u : l.units) {
    any = any || !u.bn.empty();
    all = all && !u.bn.empty();
  }
  FARSEE_REQUIRE(any == all, "train graph: layer " << l.name << " mixes units with and without BN");
  return all;
}

namespace {

class TrainGraphBuilder {
 public:
  TrainGraphBuilder(const FarSeeConfig& c, int n, int h, int w, int lh, int lw) {
    FARSEE_REQUIRE(lh >= 1 && lw >= 1,
                   "label size " << lh << "x" << lw << " (HxW) must be positive");
    t_.inference = build_graph(c, n, h, w);
    t_.label_h = lh;
    t_.label_w = lw;
    t_.buffers = t_.inference.buffers;
    t_.is_gradient.assign(t_.buffers.size(), false);
    t_.input = t_.inference.input;
    t_.logits = t_.inference.logits;
  }

  TrainGraph build() {
    for (const Step& s : t_.inference.steps) expand(s);
    const int forward_steps = int(t_.steps.size());

    // Loss: writes d(logits).
    {
      TrainStep l;
      l.op = TrainOp::Loss;
      l.name = "loss";
      l.x = t_.logits;
      l.dx = gradient(t_.logits);
      l.accumulate_dx = mark_written(l.dx, "loss");
      FARSEE_REQUIRE(!l.accumulate_dx, "train graph: logits read twice");
      t_.dlogits = l.dx;
      t_.loss_step = int(t_.steps.size());
      t_.steps.push_back(l);
    }
    for (int i = forward_steps - 1; i >= 0; --i) backward(i);
    return std::move(t_);
  }

 private:
  int new_buffer(const std::string& name, Shape4 shape, bool grad) {
    t_.buffers.push_back(BufferDesc{name, shape});
    t_.is_gradient.push_back(grad);
    return int(t_.buffers.size()) - 1;
  }
  TensorRef new_tensor(const std::string& name, Shape4 shape) {
    return TensorRef{new_buffer(name, shape, false), 0, shape};
  }

  void expand(const Step& s) {
    TrainStep f;
    f.name = s.name;
    f.layer = s.layer;
    f.x = s.x;
    switch (s.kind) {
      case StepKind::MaxPool:
        f.op = TrainOp::MaxPool;
        f.y = s.y;
        f.pool = s.pool;
        t_.steps.push_back(f);
        return;
      case StepKind::Depthwise: {
        FARSEE_REQUIRE(t_.layer_has_bn(s.layer),
                       "train graph: depthwise " << s.name << " without BN");
        f.op = TrainOp::Depthwise;
        f.conv = s.conv;
        f.y = new_tensor(s.name + ".raw", s.x.shape);
        t_.steps.push_back(f);
        batchnorm(s.name + ".bn", s.layer, f.y, TensorRef{}, s.relu, s.y);
        return;
      }
      case StepKind::Conv:
        break;
    }
    const Layer& l = t_.inference.layers[size_t(s.layer)];
    f.op = TrainOp::Conv;
    f.conv = s.conv;
    if (!t_.layer_has_bn(s.layer)) {
      // Logits conv (rtseg: also up1): bias in the epilogue, shuffled store, no BN.
      FARSEE_REQUIRE(!s.residual.valid() && !s.relu,
                     "train graph: conv " << s.name << " without BN has a residual or ReLU");
      f.y = s.y;
      f.shuffle = s.shuffle;
      f.bias = l.units.size() == 1 && l.units[0].conv_bias;
      t_.steps.push_back(f);
      return;
    }
    for (const ParamUnit& u : l.units) {
      FARSEE_REQUIRE(!u.conv_bias, "train graph: conv " << s.name << " has both bias and BN");
    }
    const Shape4 raw_shape{s.x.shape.n, s.conv.out_h(s.x.shape.h), s.conv.out_w(s.x.shape.w), l.K};
    f.y = new_tensor(s.name + ".raw", raw_shape);
    t_.steps.push_back(f);
    if (s.shuffle == 1) {
      batchnorm(s.name + ".bn", s.layer, f.y, s.residual, s.relu, s.y);
      return;
    }
    FARSEE_REQUIRE(!s.residual.valid(),
                   "train graph: shuffled conv " << s.name << " with a residual");
    const TensorRef normalised = new_tensor(s.name + ".bn_out", raw_shape);
    batchnorm(s.name + ".bn", s.layer, f.y, TensorRef{}, s.relu, normalised);
    TrainStep p;
    p.op = TrainOp::PixelShuffle;
    p.name = s.name + ".shuffle";
    p.x = normalised;
    p.y = s.y;
    p.shuffle = s.shuffle;
    t_.steps.push_back(p);
  }

  void batchnorm(const std::string& name, int layer, const TensorRef& x, const TensorRef& residual,
                 bool relu, const TensorRef& y) {
    TrainStep b;
    b.op = TrainOp::BatchNorm;
    b.name = name;
    b.layer = layer;
    b.x = x;
    b.y = y;
    b.residual = residual;
    b.relu = relu;
    t_.steps.push_back(b);
  }

  // The gradient view of activation `r` (creating "d:<buffer>" on first use).
  TensorRef gradient(const TensorRef& r) {
    if (grad_of_.size() < t_.buffers.size()) grad_of_.resize(t_.buffers.size(), -1);
    int g = grad_of_[size_t(r.buffer)];
    if (g < 0) {
      const BufferDesc b = t_.buffers[size_t(r.buffer)];
      g = new_buffer("d:" + b.name, b.shape, true);
      grad_of_.resize(t_.buffers.size(), -1);
      grad_of_[size_t(r.buffer)] = g;
      written_.resize(t_.buffers.size());
      written_[size_t(g)].assign(size_t(b.shape.c), false);
    }
    return TensorRef{g, r.channel_offset, r.shape};
  }
  // Records a gradient contribution to channels of `d`: false (write) when none of them has one
  // yet, true (accumulate) when all of them have; a partial overlap is a graph error.
  bool mark_written(const TensorRef& d, const std::string& who) {
    std::vector<bool>& w = written_[size_t(d.buffer)];
    int count = 0;
    for (int c = 0; c < d.shape.c; ++c) count += w[size_t(d.channel_offset + c)] ? 1 : 0;
    FARSEE_REQUIRE(count == 0 || count == d.shape.c,
                   "train graph: " << who << " writes a gradient slice that is partly written");
    for (int c = 0; c < d.shape.c; ++c) w[size_t(d.channel_offset + c)] = true;
    return count == d.shape.c;
  }
  TensorRef complete_gradient(const TensorRef& r, const std::string& who) {
    const TensorRef d = gradient(r);
    const std::vector<bool>& w = written_[size_t(d.buffer)];
    for (int c = 0; c < d.shape.c; ++c) {
      FARSEE_REQUIRE(w[size_t(d.channel_offset + c)],
                     "train graph: " << who << " reads a gradient nobody wrote ("
                                     << t_.buffers[size_t(d.buffer)].name << ")");
    }
    return d;
  }

  void backward(int i) {
    TrainStep b = t_.steps[size_t(i)];
    b.forward_step = i;
    b.dy = complete_gradient(b.y, b.name);
    b.dx = TensorRef{};
    b.dresidual = TensorRef{};
    switch (b.op) {
      case TrainOp::Conv:
        b.op = TrainOp::ConvBackward;
        if (b.x.buffer != t_.input.buffer) {
          b.dx = gradient(b.x);
          b.accumulate_dx = mark_written(b.dx, b.name);
        }
        break;
      case TrainOp::Depthwise:
        b.op = TrainOp::DepthwiseBackward;
        b.dx = gradient(b.x);
        b.accumulate_dx = mark_written(b.dx, b.name);
        break;
      case TrainOp::BatchNorm:
        b.op = TrainOp::BatchNormBackward;
        b.dx = gradient(b.x);
        FARSEE_REQUIRE(!mark_written(b.dx, b.name),
                       "train graph: BN input of " << b.name << " read twice");
        if (b.residual.valid()) {
          b.dresidual = gradient(b.residual);
          b.accumulate_dresidual = mark_written(b.dresidual, b.name);
        }
        break;
      case TrainOp::MaxPool:
        b.op = TrainOp::MaxPoolBackward;
        b.dx = gradient(b.x);
        FARSEE_REQUIRE(!mark_written(b.dx, b.name), "train graph: max-pool input read twice");
        break;
      case TrainOp::PixelShuffle:
        b.op = TrainOp::PixelShuffleBackward;
        b.dx = gradient(b.x);
        FARSEE_REQUIRE(!mark_written(b.dx, b.name), "train graph: shuffle input read twice");
        break;
      default:
        FARSEE_REQUIRE(false, "train graph: no backward for " << train_op_name(b.op));
    }
    b.name += ".bwd";
    t_.steps.push_back(b);
  }

  TrainGraph t_;
  std::vector<int> grad_of_;
  std::vector<std::vector<bool>> written_;
};

}  // namespace

TrainGraph build_train_graph(const FarSeeConfig& config, int n, int h, int w, int label_h,
                             int label_w) {
  return TrainGraphBuilder(config, n, h, w, label_h, label_w).build();
}

std::vector<BufferLifetime> TrainGraph::buffer_lifetimes(DType dtype) const {
  std::vector<BufferLifetime> out(buffers.size());
  const int n_steps = int(steps.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    out[i].name = buffers[i].name;
    out[i].bytes = buffers[i].shape.elements() * int64_t(dtype_size(dtype));
    out[i].first_step = n_steps;
    out[i].last_step = -1;
  }
  auto write = [&](const TensorRef& r, int step) {
    if (!r.valid()) return;
    out[size_t(r.buffer)].first_step = std::min(out[size_t(r.buffer)].first_step, step);
    out[size_t(r.buffer)].last_step = std::max(out[size_t(r.buffer)].last_step, step);
  };
  auto read = [&](const TensorRef& r, int step) {
    if (!r.valid()) return;
    out[size_t(r.buffer)].last_step = std::max(out[size_t(r.buffer)].last_step, step);
  };
  write(input, -1);
  for (int s = 0; s < n_steps; ++s) {
    const TrainStep& t = steps[size_t(s)];
    switch (t.op) {
      case TrainOp::Conv:
      case TrainOp::BatchNorm:
      case TrainOp::Depthwise:
      case TrainOp::MaxPool:
      case TrainOp::PixelShuffle:
        read(t.x, s);
        read(t.residual, s);
        write(t.y, s);
        break;
      case TrainOp::Loss:
        read(t.x, s);
        write(t.dx, s);
        break;
      case TrainOp::ConvBackward:
      case TrainOp::DepthwiseBackward:
        read(t.x, s);  // wgrad
        read(t.dy, s);
        write(t.dx, s);
        break;
      case TrainOp::BatchNormBackward:
        read(t.x, s);
        if (t.relu) read(t.y, s);  // the ReLU mask
        read(t.dy, s);
        write(t.dx, s);
        write(t.dresidual, s);
        break;
      case TrainOp::MaxPoolBackward:
        read(t.x, s);
        read(t.dy, s);
        write(t.dx, s);
        break;
      case TrainOp::PixelShuffleBackward:
        read(t.dy, s);
        write(t.dx, s);
        break;
    }
  }
  for (const auto& b : out) {
    FARSEE_REQUIRE(b.first_step <= b.last_step,
                   "train graph: buffer '" << b.name << "' is never written or never read");
  }
  return out;
}

namespace {
constexpr int64_t kSlotFloats = 64;  // 256-byte alignment of every slot
int64_t aligned(int64_t floats) {
  return (floats + kSlotFloats - 1) / kSlotFloats * kSlotFloats;
}
}  // namespace

ParameterLayout parameter_layout(const std::vector<Layer>& layers) {
  ParameterLayout p;
  p.layers.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    LayerSlots& s = p.layers[i];
    s.weight_count = int64_t(l.K) * l.R * l.S * l.C;
    s.weight = p.parameter_floats;
    p.parameter_floats += aligned(s.weight_count);
    const bool bias = l.units.size() == 1 && l.units[0].conv_bias;
    if (bias) {
      s.bias = p.parameter_floats;
      p.parameter_floats += aligned(l.K);
    }
    if (!l.units.front().bn.empty()) {
      s.gamma = p.parameter_floats;
      p.parameter_floats += aligned(l.K);
      s.beta = p.parameter_floats;
      p.parameter_floats += aligned(l.K);
      s.running_mean = p.running_floats;
      p.running_floats += aligned(l.K);
      s.running_var = p.running_floats;
      p.running_floats += aligned(l.K);
      s.save_mean = p.saved_floats;
      p.saved_floats += aligned(l.K);
      s.save_invstd = p.saved_floats;
      p.saved_floats += aligned(l.K);
    }
  }
  return p;
}

TrainMemoryReport training_memory(const FarSeeConfig& config, int n, int h, int w, int label_h,
                                  int label_w, DType activations) {
  const TrainGraph g = build_train_graph(config, n, h, w, label_h, label_w);
  const MemoryPlan plan = plan_memory(g.buffer_lifetimes(activations), int64_t(rt::kAlignment));
  TrainMemoryReport r;
  r.activation_arena_bytes = plan.arena_bytes;
  r.activation_peak_live_bytes = plan.peak_live_bytes();
  for (const auto& b : plan.buffers) r.no_reuse_bytes += b.bytes;
  const ParameterLayout layout = parameter_layout(g.inference.layers);
  r.parameter_bytes = layout.parameter_floats * int64_t(sizeof(float));
  r.bn_state_bytes = (layout.running_floats + layout.saved_floats) * int64_t(sizeof(float));
  return r;
}

}  // namespace farsee::net
