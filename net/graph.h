// The static FarSee-Net graph for one input shape (N, H, W): shape inference, the layer list with
// the PyTorch parameter names behind every layer, the buffers and the ordered steps. Executor- and
// dtype-agnostic: the same Graph runs on reference, emu and cuda, in fp32 or fp16.
//
// Concats are never copies. Each F-ASPP block owns ONE buffer of 2k+1 slices (k = number of rates,
// each slice the branch width), laid out
//     [pw_1 .. pw_k | branch0 | dw_1 .. dw_k]
// - the k+1 1x1 convs that read the block input run as ONE conv whose output rows are stacked
//   [pw_1 .. pw_k, branch0] and write slices 0..k in one store;
// - depthwise i reads slice pw_i and writes slice dw_i;
// - the concat [branch0, dw_1 .. dw_k] (PyTorch order 0, 1, .., k) is the contiguous slice k..2k,
//   read directly by the projection (or by the next layer when there is none).
// The decoder concat [up1 output, low] is one buffer written by two producers: the sub-pixel conv
// (pixel-shuffle store) into channels [0, up1_channels) and the low-path 1x1 into the rest.
#pragma once

#include <string>
#include <vector>

#include "kernels/core/conv_shape.h"
#include "kernels/core/dtype.h"
#include "kernels/core/tensor.h"
#include "kernels/pool.h"
#include "net/config.h"
#include "net/memory_plan.h"

namespace farsee::net {

// One PyTorch conv (+ BN) as it appears in the weight file.
struct ParamUnit {
  std::string conv;      // tensors "<conv>.weight" (OIHW) and, if conv_bias, "<conv>.bias"
  std::string bn;        // tensors "<bn>.{weight,bias,running_mean,running_var}"; "" = no BN
  int out_channels = 0;  // O
  int in_channels = 0;   // I (per group: 1 for depthwise)
  int kernel = 1;        // square kernel
  bool conv_bias = false;
};

// What one step executes: a conv (possibly the row-stack of several units) or a depthwise conv.
struct Layer {
  std::string name;
  bool depthwise = false;
  int K = 0, R = 1, S = 1, C = 0;  // KRSC; depthwise: K = channels, C = 1
  std::vector<ParamUnit> units;    // stacked along K in this order
  // > 1: the conv's store pixel-shuffles by this factor AND its destination owns whole 16-byte
  // runs of channels (K / t^2 a multiple of 8, or the logits' padded buffer), so inference packs
  // its weights in sub-pixel order (pack_subpixel_conv_weights: one 16-byte vector per store).
  int subpixel = 1;
};

// A view into a planned buffer: channels [channel_offset, channel_offset + shape.c).
struct TensorRef {
  int buffer = -1;
  int channel_offset = 0;
  Shape4 shape;
  bool valid() const { return buffer >= 0; }
};

struct BufferDesc {
  std::string name;
  Shape4 shape;  // full buffer (c = all channels)
};

enum class StepKind { Conv, Depthwise, MaxPool };

struct Step {
  StepKind kind = StepKind::Conv;
  std::string name;
  int layer = -1;  // Conv / Depthwise
  TensorRef x, y;
  TensorRef residual;  // Conv: added before ReLU (shape of the conv output)
  ConvShape conv;      // Conv geometry; Depthwise uses stride and dilation
  bool relu = false;
  int shuffle = 1;     // Conv: pixel-shuffle store factor
  MaxPoolParams pool;  // MaxPool: 3x3, stride 2, pad 1 (torchvision ResNet)
};

// Channels of one 16-byte fp16 vector. The logits buffer's channels are the classes rounded up
// to it (the sub-pixel logits conv stores 16-byte vectors, zeros in the padding; every reader
// takes the num_classes slice, nothing reads the padding as classes).
constexpr int kVectorChannels = 8;

struct Graph {
  FarSeeConfig config;
  int n = 0, h = 0, w = 0;
  std::vector<Layer> layers;
  std::vector<BufferDesc> buffers;
  std::vector<Step> steps;
  TensorRef input;   // [N, H, W, 3]
  TensorRef logits;  // [N, H / logits_stride, W / logits_stride, num_classes], a slice of a
                     // buffer of channels padded to kVectorChannels (16-byte pixels)

  // Lifetimes for the memory plan: the input is live from before step 0, the logits until after
  // the last step (the output resize reads them).
  std::vector<BufferLifetime> buffer_lifetimes(DType dtype) const;
  // Multiply-accumulates of all convs (for reports), and of one step (0 for a pool).
  double macs() const;
  double step_macs(const Step& s) const;
};

// Shape inference for batch n and input h x w: both must be positive multiples of 32 (the
// front-end's total stride); throws farsee::Error naming the argument otherwise.
Graph build_graph(const FarSeeConfig& config, int n, int h, int w);

// The layers only (shape independent).
std::vector<Layer> build_layers(const FarSeeConfig& config);

// Every parameter tensor the weight file must hold for `config`, with its PyTorch shape, in
// state_dict order.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<ParamSpec> parameter_specs(const FarSeeConfig& config);

}  // namespace farsee::net
