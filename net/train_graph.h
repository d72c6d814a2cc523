// The FarSee-Net training graph for one shape (batch n, input h x w, labels label_h x label_w):
// DESIGN.md section 10. Executor- and dtype-agnostic, like the inference Graph it is built from.
//
// Forward: the inference step list with BN explicit (batch statistics), each inference step
// expanded into train steps:
//   conv + BN (+residual) (+ReLU)   Conv (identity epilogue: the raw conv output into its own
//                                    buffer) -> BatchNorm (+residual, +ReLU) into the inference
//                                    step's destination (which may be a concat slice)
//   sub-pixel conv + BN + ReLU      Conv (un-shuffled raw) -> BatchNorm -> PixelShuffle into the
//   (paper's up1)                    destination: BN normalises the t^2-times-wider channels
//                                    before the shuffle, as PyTorch's SubPixelConv does
//   conv without BN                 Conv with its bias, pixel-shuffled store if the layer has one
//   (logits; rtseg's up1)            (the backward reads dy through the shuffle mapping)
//   depthwise + BN + ReLU           Depthwise (no scale/bias/ReLU) -> BatchNorm (+ReLU)
//   max pool                        MaxPool
// then Loss (softmax cross-entropy at label resolution through the bilinear upsample of the
// logits, writing d(logits)), then the backward of every forward step in reverse order.
//
// Activation gradients: every activation buffer B that needs one gets a gradient buffer "d:B" of
// the same shape, sliced like B. A tensor read by several forward steps (the basic-block input:
// conv1 and the identity residual or the downsample conv; the low-level map: the next stage and
// the low path) receives one gradient contribution per reader, in backward order: the first one
// writes, the later ones accumulate (the ops' accumulate flags). The network input gets none.
//
// One memory plan covers forward and backward: buffers (activations and gradients) are live from
// the first step that writes them to the last step that reads them (a forward activation stays
// live exactly until the last backward step that reads it: wgrad reads the conv input, BN backward
// its raw input and, with ReLU, its output as the mask; max-pool backward its input).
#pragma once

#include <string>
#include <vector>

#include "kernels/core/conv_shape.h"
#include "kernels/pool.h"
#include "net/graph.h"
#include "net/memory_plan.h"

namespace farsee::net {

enum class TrainOp {
  Conv,          // conv_bn_act_fwd, identity epilogue (+ bias), optional shuffled store
  BatchNorm,     // batchnorm_train_fwd
  Depthwise,     // depthwise_atrous_fwd without scale, bias, ReLU
  MaxPool,       // max_pool_fwd
  PixelShuffle,  // pixel_shuffle_fwd
  Loss,          // softmax_ce_upsample
  ConvBackward,  // conv_bwd_weight (+ conv_bwd_data unless dx is invalid)
  BatchNormBackward,
  DepthwiseBackward,
  MaxPoolBackward,
  PixelShuffleBackward,  // pixel_unshuffle_fwd
};
const char* train_op_name(TrainOp op);

struct TrainStep {
  TrainOp op = TrainOp::Conv;
  std::string name;
  int layer = -1;  // Conv/Depthwise/BatchNorm (+ backward): the Layer whose parameters it uses
  // Forward tensors (a backward step carries those of its forward step).
  TensorRef x, y, residual;
  ConvShape conv;      // Conv geometry; Depthwise: stride and dilation
  int shuffle = 1;     // Conv / PixelShuffle factor
  bool relu = false;   // BatchNorm
  bool bias = false;   // Conv: the layer's conv bias goes into the epilogue
  MaxPoolParams pool;  // MaxPool
  // Backward tensors: dy = gradient of y; dx (invalid: not needed), dresidual.
  TensorRef dy, dx, dresidual;
  bool accumulate_dx = false, accumulate_dresidual = false;
  int forward_step = -1;  // backward steps: index of their forward step
};

struct TrainGraph {
  Graph inference;  // layers, config, n, h, w; its buffers are the first buffers here
  int label_h = 0, label_w = 0;
  std::vector<BufferDesc> buffers;  // inference activations, raw/BN buffers, then gradients
  std::vector<bool> is_gradient;    // per buffer
  std::vector<TrainStep> steps;     // forward, Loss, backward
  int loss_step = -1;
  TensorRef input, logits, dlogits;

  // Lifetimes over the train steps (input written before step 0).
  std::vector<BufferLifetime> buffer_lifetimes(DType dtype) const;
  // Which layers have BN (all their units do) / a conv bias.
  bool layer_has_bn(int layer) const;
};

// Where a layer's tensors live (offsets in floats; -1: none).
struct LayerSlots {
  int64_t weight = -1, bias = -1, gamma = -1, beta = -1;  // parameter/gradient/momentum arenas
  int64_t running_mean = -1, running_var = -1;            // running arena
  int64_t save_mean = -1, save_invstd = -1;               // saved-statistics arena
  int64_t weight_count = 0;
};
struct ParameterLayout {
  std::vector<LayerSlots> layers;
  int64_t parameter_floats = 0, running_floats = 0, saved_floats = 0;
};
ParameterLayout parameter_layout(const std::vector<Layer>& layers);

// Memory a training step needs for one shape, from the plan alone (nothing is allocated).
struct TrainMemoryReport {
  int64_t activation_arena_bytes = 0;      // the plan's arena (activations + activation gradients)
  int64_t activation_peak_live_bytes = 0;  // lower bound of the above
  int64_t no_reuse_bytes = 0;              // sum of all buffers (no liveness reuse)
  int64_t parameter_bytes = 0;             // each of parameters, gradients, momenta
  int64_t bn_state_bytes = 0;              // running + saved statistics
  int64_t total_bytes() const {
    return activation_arena_bytes + 3 * parameter_bytes + bn_state_bytes;
  }
};
// `activations`: the storage dtype of activations and their gradients (fp16: mixed precision).
TrainMemoryReport training_memory(const FarSeeConfig& config, int n, int h, int w, int label_h,
                                  int label_w, DType activations = DType::F32);

// Throws farsee::Error for bad sizes (as build_graph) or labels smaller than 1x1.
TrainGraph build_train_graph(const FarSeeConfig& config, int n, int h, int w, int label_h,
                             int label_w);

}  // namespace farsee::net
