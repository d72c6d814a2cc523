// FarSee-Net training on any executor (reference, emu, cuda): DESIGN.md section 10.
//
// State on the executor, each in ONE arena (so one SGD launch updates everything and a future
// all-reduce is one call):
//   parameters  fp32 master weights: per layer (in layer order) the conv/depthwise weight (KRSC,
//               the units of a merged layer stacked along K; depthwise [C][3][3]), the conv bias
//               if any, BN gamma and beta (the units' concatenated); every slot 256-byte aligned
//               (the padding is zero and stays zero under SGD)
//   gradients   the same layout; zeroed once per step, then every parameter grad accumulates
//   momenta     the same layout (torch.optim.SGD's momentum_buffer)
//   running     BN running_mean and running_var per BN layer
//   saved       BN save_mean / save_invstd of the current step (for the backward)
// plus the packed conv weights (one Forward and one BackwardData copy per conv layer, repacked
// from the master weights after every SGD step by refresh_conv_weights), the activation arena of
// the TrainGraph's memory plan, one shared op workspace (the maximum any step needs), the labels
// and the loss scalar.
//
// One step: fill_zero(gradients), forward (BN in training mode, running statistics updated),
// loss, backward, sgd_step over the whole arena (torch.optim.SGD: weight decay on every parameter,
// the momentum buffer created on the first step), refresh of the packed conv weights. On cuda the
// first step runs eagerly (one-time kernel setup; SGD's first step is different anyway); from the
// second step on the whole step is captured as one CUDA graph and replayed, re-captured only when
// the learning rate changes (sgd_step takes lr by value: a poly schedule re-captures each step).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/conv_bn_act.h"
#include "kernels/core/executor.h"
#include "kernels/core/runtime.h"
#include "net/config.h"
#include "net/memory_plan.h"
#include "net/parameters.h"
#include "net/train_graph.h"

namespace farsee::net {

struct SgdArgs {
  float lr = 0.01f;
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
};

class Trainer {
 public:
  // init: weights and BN running statistics (PyTorch names and layouts, parameter_specs(config)).
  // Labels are label_h x label_w (0: the input size). ctx.stream null on cuda: own stream.
  Trainer(const FarSeeConfig& config, const HostTensors& init, const Context& ctx, int n, int h,
          int w, int label_h = 0, int label_w = 0);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const TrainGraph& graph() const { return graph_; }
  const MemoryPlan& memory_plan() const { return plan_; }
  const ParameterLayout& layout() const { return layout_; }
  // The executor context the steps run on (the trainer's own stream on cuda unless given one).
  const Context& context() const { return ctx_; }
  // Every byte this trainer holds on the executor.
  int64_t device_bytes() const;
  int64_t steps_done() const { return steps_done_; }

  // Host input [n][h][w][3] (normalised) and labels [n][label_h][label_w] (trainIds / 255).
  void set_batch(const float* input_nhwc, const uint8_t* labels);
  // Fills every activation byte with `byte` (tests: 0xFF = NaN poison).
  void fill_activations(uint8_t byte);

  // Zeroed grads, forward, loss, backward: leaves the gradients of this batch; no update.
  void compute_gradients();
  // sgd_step over the parameter arena and the weight repack (after compute_gradients).
  void apply_sgd(const SgdArgs& sgd);
  // compute_gradients + apply_sgd (on cuda one graph replay from the second step on); returns
  // the loss of this batch (waits for the executor).
  float step(const SgdArgs& sgd, bool use_cuda_graph = true);
  // The last loss (waits for the executor).
  float loss() const;

  // Weights and BN running statistics, PyTorch names and layouts (the --save content).
  HostTensors state() const;
  // The parameter gradients of the last compute_gradients, PyTorch names and layouts.
  HostTensors gradients() const;

  struct StepTime {
    std::string name;
    double ms;
  };
  // One eager compute_gradients + apply_sgd timed step by step.
  std::vector<StepTime> profile_step(const SgdArgs& sgd);

 private:
  struct LayerWeights {
    ConvWeights forward, backward_data;  // conv layers
  };
  TensorView view(const TensorRef& r) const;
  float* param(int64_t offset) const;
  float* grad(int64_t offset) const;
  void run(const TrainStep& s);
  void run_sgd(const SgdArgs& sgd);
  void run_all(const SgdArgs& sgd);
  HostTensors to_named(const std::vector<float>& arena, bool gradients) const;

  FarSeeConfig config_;
  Context ctx_;
  bool owns_stream_ = false;
  TrainGraph graph_;
  MemoryPlan plan_;
  ParameterLayout layout_;
  std::vector<LayerWeights> weights_;
  rt::Buffer params_, grads_, momenta_, running_, saved_;
  rt::Buffer arena_, workspace_, labels_, loss_;
  int64_t steps_done_ = 0;
  void* cuda_graph_ = nullptr;
  float graph_lr_ = 0.f, graph_momentum_ = 0.f, graph_weight_decay_ = 0.f;
};

}  // namespace farsee::net
