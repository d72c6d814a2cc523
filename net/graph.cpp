#include "net/graph.h"

#include <algorithm>

#include "kernels/core/check.h"
#include "kernels/pool.h"

namespace farsee::net {
namespace {

ParamUnit conv_unit(const std::string& conv, const std::string& bn, int out, int in, int kernel,
                    bool conv_bias = false) {
  ParamUnit u;
  u.conv = conv;
  u.bn = bn;
  u.out_channels = out;
  u.in_channels = in;
  u.kernel = kernel;
  u.conv_bias = conv_bias;
  return u;
}

// A PyTorch conv+BN unit named "<prefix>.conv" / "<prefix>.bn" (the back-end's naming).
ParamUnit head_unit(const std::string& prefix, int out, int in, int kernel) {
  return conv_unit(prefix + ".conv", prefix + ".bn", out, in, kernel);
}

Layer conv_layer(const std::string& name, std::vector<ParamUnit> units) {
  Layer l;
  l.name = name;
  l.R = l.S = units.front().kernel;
  l.C = units.front().in_channels;
  for (const auto& u : units) l.K += u.out_channels;
  l.units = std::move(units);
  return l;
}

Layer depthwise_layer(const std::string& prefix, int channels) {
  Layer l;
  l.name = prefix;
  l.depthwise = true;
  l.K = channels;
  l.R = l.S = 3;
  l.C = 1;
  l.units = {head_unit(prefix, channels, 1, 3)};
  return l;
}

// Builds layers, buffers and steps in execution order. With shape inference off (n == 0) only
// the layer list is meaningful.
class GraphBuilder {
 public:
  GraphBuilder(const FarSeeConfig& c, int n, int h, int w) {
    g_.config = c;
    g_.n = n;
    g_.h = h;
    g_.w = w;
  }

  Graph build() {
    const FarSeeConfig& c = g_.config;
    g_.input = new_tensor("input", Shape4{g_.n, g_.h, g_.w, 3});

    // ---- front-end: ResNet-18 ----
    TensorRef x =
        conv("backbone.conv1", {conv_unit("backbone.conv1", "backbone.bn1", c.stem_channels, 3, 7)},
             g_.input, square_conv(7, 2), true);
    {
      Step s;
      TensorRef pooled = new_tensor("backbone.maxpool", max_pool_output_shape(s.pool, x.shape));
      s.kind = StepKind::MaxPool;
      s.name = "backbone.maxpool";
      s.x = x;
      s.y = pooled;
      add_step(s);
      x = pooled;
    }
    TensorRef low_level, high_level;
    int channels = c.stem_channels;
    for (int stage = 0; stage < 4; ++stage) {
      for (int b = 0; b < c.stage_blocks[stage]; ++b) {
        const int stride = (stage > 0 && b == 0) ? 2 : 1;
        x = basic_block("backbone.layer" + std::to_string(stage + 1) + "." + std::to_string(b), x,
                        channels, c.stage_channels[stage], stride);
        channels = c.stage_channels[stage];
      }
      if (stage + 1 == c.low_level_stage) low_level = x;
    }
    high_level = x;

    // ---- back-end ----
    TensorRef aspp1 = f_aspp("head.aspp1", c.aspp1, high_level);

    // Decoder concat [up1 output, low]: one buffer, two producers.
    const Shape4 low_shape = low_level.shape;
    const int decoder = new_buffer(
        "head.decoder_concat", Shape4{low_shape.n, low_shape.h, low_shape.w, c.decoder_channels()});
    {
      const int t2 = c.up1_factor * c.up1_factor;
      ParamUnit up = c.up1_bn_relu
                         ? head_unit("head.up1", c.up1_channels * t2, aspp1.shape.c, 1)
                         : conv_unit("head.up1.conv", "", c.up1_channels * t2, aspp1.shape.c, 1);
      conv("head.up1", {up}, aspp1, square_conv(1), c.up1_bn_relu, c.up1_factor, {},
           slice(whole(decoder), 0, c.up1_channels));
    }
    conv("head.low", {head_unit("head.low", c.low_channels, low_level.shape.c, 1)}, low_level,
         square_conv(1), true, 1, {}, slice(whole(decoder), c.up1_channels, c.low_channels));
    x = f_aspp("head.aspp2", c.aspp2, whole(decoder));

    for (size_t i = 0; i < c.head_convs.size(); ++i) {
      const auto& hc = c.head_convs[i];
      const std::string name = "head.convs." + std::to_string(i);
      x = conv(name, {head_unit(name, hc.channels, x.shape.c, hc.kernel)}, x,
               square_conv(hc.kernel), true);
    }

    // Logits: sub-pixel conv, no BN/ReLU, optional bias, into a buffer of padded channels.
    {
      const int t2 = c.up2_factor * c.up2_factor;
      const int padded = (c.num_classes + kVectorChannels - 1) / kVectorChannels * kVectorChannels;
      const Shape4 shape{x.shape.n, x.shape.h * c.up2_factor, x.shape.w * c.up2_factor, padded};
      g_.logits = slice(new_tensor("head.up2", shape), 0, c.num_classes);
      conv("head.up2",
           {conv_unit("head.up2.conv", "", c.num_classes * t2, x.shape.c, 1, c.logits_bias)}, x,
           square_conv(1), false, c.up2_factor, {}, g_.logits);
      if (c.up2_factor > 1) g_.layers[g_.steps.back().layer].subpixel = c.up2_factor;
    }
    return std::move(g_);
  }

 private:
  int new_buffer(const std::string& name, Shape4 shape) {
    g_.buffers.push_back(BufferDesc{name, shape});
    return int(g_.buffers.size()) - 1;
  }
  TensorRef whole(int buffer) const { return TensorRef{buffer, 0, g_.buffers[buffer].shape}; }
  static TensorRef slice(TensorRef r, int offset, int count) {
    FARSEE_REQUIRE(offset >= 0 && offset + count <= r.shape.c, "graph: bad channel slice");
    r.channel_offset += offset;
    r.shape.c = count;
    return r;
  }
  TensorRef new_tensor(const std::string& name, Shape4 shape) {
    return whole(new_buffer(name, shape));
  }
  int add_layer(Layer l) {
    g_.layers.push_back(std::move(l));
    return int(g_.layers.size()) - 1;
  }
  void add_step(Step s) { g_.steps.push_back(std::move(s)); }

  // A conv step over `units` (stacked along K). Writes `into` if given, else a new buffer.
  TensorRef conv(const std::string& name, std::vector<ParamUnit> units, const TensorRef& x,
                 const ConvShape& geom, bool relu, int shuffle = 1, TensorRef residual = {},
                 TensorRef into = {}) {
    Step s;
    s.kind = StepKind::Conv;
    s.name = name;
    s.layer = add_layer(conv_layer(name, std::move(units)));
    const Layer& l = g_.layers[s.layer];
    FARSEE_REQUIRE(l.C == x.shape.c, "graph: layer " << name << " expects " << l.C
                                                     << " input channels, got " << x.shape.c);
    FARSEE_REQUIRE(l.K % (shuffle * shuffle) == 0, "graph: bad shuffle for " << name);
    const Shape4 y_shape{x.shape.n, geom.out_h(x.shape.h) * shuffle,
                         geom.out_w(x.shape.w) * shuffle, l.K / (shuffle * shuffle)};
    if (into.valid()) {
      FARSEE_REQUIRE(into.shape == y_shape, "graph: " << name << " output " << to_string(y_shape)
                                                      << " does not fit its destination "
                                                      << to_string(into.shape));
    } else {
      into = new_tensor(name, y_shape);
    }
    s.x = x;
    s.y = into;
    s.residual = residual;
    s.conv = geom;
    s.relu = relu;
    s.shuffle = shuffle;
    // Whole 16-byte runs of the destination's channels: sub-pixel packing needs no padding.
    if (shuffle > 1 && y_shape.c % kVectorChannels == 0) g_.layers[s.layer].subpixel = shuffle;
    add_step(s);
    return into;
  }

  TensorRef depthwise(const std::string& prefix, const TensorRef& x, int dilation,
                      const TensorRef& into) {
    Step s;
    s.kind = StepKind::Depthwise;
    s.name = prefix;
    s.layer = add_layer(depthwise_layer(prefix, x.shape.c));
    s.x = x;
    s.y = into;
    s.conv = square_conv(3, 1, dilation);
    s.relu = true;
    FARSEE_REQUIRE(into.shape == x.shape, "graph: depthwise " << prefix << " shape mismatch");
    add_step(s);
    return into;
  }

  // torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
  TensorRef basic_block(const std::string& p, const TensorRef& x, int in_ch, int out_ch,
                        int stride) {
    TensorRef t = conv(p + ".conv1", {conv_unit(p + ".conv1", p + ".bn1", out_ch, in_ch, 3)}, x,
                       square_conv(3, stride), true);
    TensorRef shortcut = x;
    if (stride != 1 || in_ch != out_ch) {
      shortcut = conv(p + ".downsample",
                      {conv_unit(p + ".downsample.0", p + ".downsample.1", out_ch, in_ch, 1)}, x,
                      square_conv(1, stride), false);
    }
    return conv(p + ".conv2", {conv_unit(p + ".conv2", p + ".bn2", out_ch, out_ch, 3)}, t,
                square_conv(3), true, 1, shortcut);
  }

  // F-ASPP block over `x` (see graph.h for the buffer layout). Returns the projection output, or
  // the concat slice when the block has no projection.
  TensorRef f_aspp(const std::string& p, const AsppConfig& a, const TensorRef& x) {
    const int k = int(a.rates.size());
    const int wd = a.width;
    const int block =
        new_buffer(p + ".branches", Shape4{x.shape.n, x.shape.h, x.shape.w, (2 * k + 1) * wd});
    std::vector<ParamUnit> pointwise;
    for (int i = 1; i <= k; ++i) {
      pointwise.push_back(head_unit(p + ".branch" + std::to_string(i) + ".pw", wd, x.shape.c, 1));
    }
    pointwise.push_back(head_unit(p + ".branch0", wd, x.shape.c, 1));
    conv(p + ".pointwise", std::move(pointwise), x, square_conv(1), true, 1, {},
         slice(whole(block), 0, (k + 1) * wd));
    for (int i = 1; i <= k; ++i) {
      depthwise(p + ".branch" + std::to_string(i) + ".dw", slice(whole(block), (i - 1) * wd, wd),
                a.rates[i - 1], slice(whole(block), (k + i) * wd, wd));
    }
    TensorRef concat = slice(whole(block), k * wd, (k + 1) * wd);
    if (a.project_channels == 0) return concat;
    return conv(p + ".project", {head_unit(p + ".project", a.project_channels, concat.shape.c, 1)},
                concat, square_conv(1), true);
  }

  Graph g_;
};

}  // namespace

Graph build_graph(const FarSeeConfig& config, int n, int h, int w) {
  config.validate();
  FARSEE_REQUIRE(n >= 1, "batch size " << n << " must be >= 1");
  FARSEE_REQUIRE(h >= 32 && w >= 32 && h % 32 == 0 && w % 32 == 0,
                 "input size " << h << "x" << w
                               << " (HxW) is not supported: FarSee-Net needs H and W to be "
                                  "positive multiples of 32 (the front-end's total stride)");
  Graph g = GraphBuilder(config, n, h, w).build();
  FARSEE_REQUIRE(
      g.logits.shape.h * config.logits_stride() == h &&
          g.logits.shape.w * config.logits_stride() == w,
      "graph: logits shape " << to_string(g.logits.shape) << " does not match the logits stride");
  return g;
}

std::vector<Layer> build_layers(const FarSeeConfig& config) {
  return build_graph(config, 1, 32, 32).layers;
}

std::vector<ParamSpec> parameter_specs(const FarSeeConfig& config) {
  std::vector<ParamSpec> specs;
  for (const Layer& l : build_layers(config)) {
    for (const ParamUnit& u : l.units) {
      specs.push_back({u.conv + ".weight", {u.out_channels, u.in_channels, u.kernel, u.kernel}});
      if (u.conv_bias) specs.push_back({u.conv + ".bias", {u.out_channels}});
      if (!u.bn.empty()) {
        for (const char* t : {".weight", ".bias", ".running_mean", ".running_var"}) {
          specs.push_back({u.bn + t, {u.out_channels}});
        }
      }
    }
  }
  return specs;
}

std::vector<BufferLifetime> Graph::buffer_lifetimes(DType dtype) const {
  std::vector<BufferLifetime> out(buffers.size());
  const int n_steps = int(steps.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    out[i].name = buffers[i].name;
    out[i].bytes = buffers[i].shape.elements() * int64_t(dtype_size(dtype));
    out[i].first_step = n_steps;  // refined below
    out[i].last_step = -1;
  }
  auto write = [&](const TensorRef& r, int step) {
    if (!r.valid()) return;
    out[r.buffer].first_step = std::min(out[r.buffer].first_step, step);
    out[r.buffer].last_step = std::max(out[r.buffer].last_step, step);
  };
  auto read = [&](const TensorRef& r, int step) {
    if (!r.valid()) return;
    out[r.buffer].last_step = std::max(out[r.buffer].last_step, step);
  };
  write(input, -1);
  for (int s = 0; s < n_steps; ++s) {
    write(steps[s].y, s);
    read(steps[s].x, s);
    read(steps[s].residual, s);
  }
  read(logits, n_steps);
  for (const auto& b : out) {
    FARSEE_REQUIRE(b.first_step <= b.last_step,
                   "graph: buffer '" << b.name << "' is never written or never read");
  }
  return out;
}

double Graph::step_macs(const Step& s) const {
  if (s.kind == StepKind::MaxPool) return 0;
  const Layer& l = layers[s.layer];
  const double out_pixels =
      double(s.x.shape.n) * s.conv.out_h(s.x.shape.h) * s.conv.out_w(s.x.shape.w);
  return out_pixels * l.K * l.R * l.S * l.C;
}

double Graph::macs() const {
  double total = 0;
  for (const Step& s : steps) total += step_macs(s);
  return total;
}

}  // namespace farsee::net
