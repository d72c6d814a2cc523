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
// and the step's scalars (loss, found-inf flag, loss scale: StepScalars).
//
// One step: fill_zero(gradients), forward (BN in training mode, running statistics updated),
// loss, backward, sgd_step over the whole arena (torch.optim.SGD: weight decay on every parameter,
// the momentum buffer created on the first step), refresh of the packed conv weights. On cuda the
// first step runs eagerly (one-time kernel setup; SGD's first step is different anyway); from the
// second step on the whole step is captured as one CUDA graph and replayed. The captured SGD step
// reads the learning rate from device memory, so an lr schedule replays the same graph; it is
// re-captured only when the momentum or the weight decay changes.
//
// Mixed precision (MixedPrecision::activations = F16, farsee-train --precision fp16), as PyTorch's
// torch.autocast + torch.cuda.amp.GradScaler recipe:
//   fp16   activations and activation gradients (the arena; every op accumulates in fp32), the
//          packed conv weights (tensor-core operands, re-packed from the fp32 masters each step),
//          the network input, d(logits)
//   fp32   master weights, weight gradients, momenta, BN gamma/beta, running and saved statistics,
//          the loss (softmax-CE reads the fp16 logits and computes in fp32)
// Dynamic loss scaling (GradScaler semantics): the loss step writes d(logits) = scale * dL/dlogits
// (rounded once to fp16), so every gradient is scaled; after the backward grad_unscale_check
// multiplies the gradient arena by 1/scale and raises a device flag if any gradient is NaN/Inf
// (both kernels read the scale and 1/scale from device memory, written by the host before each
// step, so a scale change replays the same CUDA graph);
// sgd_step reads the flag and skips the update (weights and momenta unchanged; the BN running
// statistics were already updated by the forward, as in PyTorch, where the forward runs before
// the scaler sees the gradients). Then, on the host: a skipped step halves the scale
// (backoff_factor) and resets the growth counter; growth_interval consecutive finite steps
// multiply it by growth_factor. The momentum buffer is created by the first step that is not
// skipped (PyTorch: optimizer.step is not called on a skipped step). The host reads the loss and
// the flag back together: one copy and one wait per step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/augment.h"
#include "kernels/batchnorm.h"
#include "kernels/conv_bn_act.h"
#include "kernels/core/executor.h"
#include "kernels/core/runtime.h"
#include "net/config.h"
#include "net/distributed.h"
#include "net/memory_plan.h"
#include "net/parameters.h"
#include "net/train_graph.h"

namespace farsee::net {

// Training precision and the loss scaler's constants (torch.cuda.amp.GradScaler's defaults).
struct MixedPrecision {
  DType activations = DType::F32;  // F16: mixed precision with dynamic loss scaling
  bool tf32 = false;               // fp32 only: convs (fwd, dgrad, wgrad) in TF32
  float init_scale = 65536.0f;     // 2^16
  float growth_factor = 2.0f;
  float backoff_factor = 0.5f;
  int growth_interval = 2000;
};

// The loss scaler's state (what a checkpoint stores). fp32 training: scale 1, never changes.
struct LossScaleState {
  float scale = 1.0f;
  int64_t growth_tracker = 0;  // consecutive finite steps since the scale last changed
  int64_t skipped_steps = 0;   // steps skipped so far (non-finite gradients)
  bool last_step_skipped = false;
};

struct SgdArgs {
  float lr = 0.01f;
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
};

// Initial parameters for training from scratch or from an ImageNet backbone:
//   backbone.*  torchvision's ResNet init: conv weights kaiming_normal_(mode='fan_out',
//               nonlinearity='relu'), i.e. N(0, 2 / (K*R*S)); BN weight 1, bias 0. When
//               `backbone` is given (a converted ImageNet ResNet-18), its backbone.* tensors are
//               taken as they are instead (every backbone tensor must be there, with its shape).
//   head.*      PyTorch's defaults: Conv2d weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//               (kaiming_uniform_ with a = sqrt(5)); BN weight 1, bias 0.
//   BN running_mean 0 and running_var 1 wherever not given.
// Deterministic for a seed (splitmix64 with Box-Muller normals).
HostTensors training_init(const FarSeeConfig& config, uint64_t seed,
                          const HostTensors* backbone = nullptr);

class Trainer {
 public:
  // init: weights and BN running statistics (PyTorch names and layouts, parameter_specs(config)).
  // Labels are label_h x label_w (0: the input size). ctx.stream null on cuda: own stream.
  // precision: fp32 (default) or mixed precision (see the top of this file).
  Trainer(const FarSeeConfig& config, const HostTensors& init, const Context& ctx, int n, int h,
          int w, int label_h = 0, int label_w = 0, const MixedPrecision& precision = {});
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
  // Storage dtype of activations and activation gradients (F16: mixed precision).
  DType activation_dtype() const { return precision_.activations; }
  // The loss scaler after the last step (fp32: scale 1).
  const LossScaleState& loss_scale() const { return scale_; }
  // Restores the scaler (a checkpoint's; after load_state, as skipped_steps <= steps_done).
  // Throws for a scale that is not positive and finite, or a scaled state in fp32 training.
  void load_loss_scale(const LossScaleState& state);

  // Class weights of the loss (F.cross_entropy's weight=: the weighted mean, for rare classes):
  // num_classes values, finite and >= 0; empty: every class 1 (the default, bitwise the
  // unweighted loss). Throws naming the first bad value.
  void set_class_weights(const std::vector<float>& weights);
  const std::vector<float>& class_weights() const { return class_weights_host_; }

  // Data parallelism (DESIGN.md section 10.2): this trainer is rank comm->rank() of comm->size(),
  // each rank with its own block of the global batch (comm outlives the trainer; null or a world
  // of one: one process, bitwise the steps without it). Per step: the loss is normalised by the
  // global number of counted label pixels (or class-weight sum, all-reduced from the labels
  // before the backward), BN uses the global batch statistics when `sync_bn` (else this rank's,
  // as plain DDP), and the gradient arena is all-reduced in one call before SGD (still scaled in
  // mixed precision, so the overflow check sees the global gradients and every rank skips the
  // same steps); step() returns the global loss. SyncBN: net/sync_batchnorm.h on reference and cpu,
  // the BN kernels' hook on cuda and emu (fp32, tf32 and fp16 everywhere). On cuda it
  // needs the device all-reduce below, and steps run eagerly (no CUDA graph).
  void set_data_parallel(Collective* comm, bool sync_bn);
  // The cuda executor's gradient all-reduce (tools/train/nccl_reducer.h): in place over `count`
  // fp32 values of device memory on `stream` (ctx.stream). Set before set_data_parallel.
  using DeviceAllReduce = std::function<void(float* data, int64_t count, void* stream)>;
  void set_device_all_reduce(DeviceAllReduce f) { device_all_reduce_ = std::move(f); }
  Collective* collective() const { return comm_; }

  // Host input [n][h][w][3] (normalised) and labels [n][label_h][label_w] (trainIds / 255).
  // Returns once the uploads are done: the caller may reuse both buffers at once.
  void set_batch(const float* input_nhwc, const uint8_t* labels);
  // Augmentation on the executor (kernels/augment.h; farsee-train --augment-on executor), instead
  // of set_batch: fill the host staging raw_staging() returns (page-locked on cuda; grown as
  // needed: at least image_bytes / label_bytes and n samples) with a raw batch (tools/data
  // pack_raw_batch), then augment_raw_batch() queues its upload (asynchronous copies) and
  // augment_fwd into the network input (fp32 or fp16: the activation dtype) and the labels, and
  // returns without waiting (with data parallelism it waits for the augmented labels, which the
  // loss's global normaliser counts on the host); the next step runs after them. Refill the
  // staging only after that step returned (it waits for its loss).
  struct RawStaging {
    uint8_t* images;
    uint8_t* labels;
    AugmentSample* samples;
  };
  RawStaging raw_staging(int64_t image_bytes, int64_t label_bytes);
  void augment_raw_batch(int64_t image_bytes, int64_t label_bytes,
                         const AugmentNormalise& normalise);
  // The same in two slots (0, 1), so the upload of the next batch overlaps the step in flight
  // (farsee-train's pipeline): raw_staging(.., slot) only allocates host memory, so another host
  // thread may fill one slot meanwhile; upload_raw_batch queues the slot's copies on the trainer's
  // copy stream (an event marks their end); augment_uploaded makes the step's stream wait for
  // that event and queues augment_fwd from the slot; wait_raw_uploads waits (on the host) for
  // every queued copy, after which any staging may be refilled.
  RawStaging raw_staging(int64_t image_bytes, int64_t label_bytes, int slot);
  void upload_raw_batch(int slot, int64_t image_bytes, int64_t label_bytes);
  void augment_uploaded(int slot, const AugmentNormalise& normalise);
  void wait_raw_uploads();
  // Fills every activation byte with `byte` (tests: 0xFF = NaN poison).
  void fill_activations(uint8_t byte);

  // Zeroed grads, forward, loss, backward: leaves the gradients of this batch; no update. Mixed
  // precision: the gradients left are unscaled (divided by the loss scale) and the found-inf flag
  // is set if any is not finite.
  void compute_gradients();
  // sgd_step over the parameter arena and the weight repack (after compute_gradients); mixed
  // precision: skipped if the gradients were not finite, then the loss-scale update (waits for
  // the executor to read the flag, with the loss, in one read-back).
  void apply_sgd(const SgdArgs& sgd);
  // compute_gradients + apply_sgd (on cuda and emu one graph replay once a step of this process
  // ran eagerly and the momenta exist); returns
  // the loss of this batch (one read-back of the loss and the flag: waits for the executor once).
  // The graph reads the learning rate and the loss scale from memory, so an lr schedule and the
  // scaler replay one graph; a new momentum or weight decay re-captures it.
  float step(const SgdArgs& sgd, bool use_cuda_graph = true);
  // Graphs captured by step() so far (0 on reference and cpu).
  int64_t cuda_graphs_captured() const { return graphs_captured_; }
  // The last loss (waits for the executor).
  float loss() const;
  // Read-backs of the step's scalars so far (each one copy to the host and one wait): one per
  // step(), per mixed-precision apply_sgd and per loss() call.
  int64_t host_readbacks() const { return readbacks_; }

  // Weights and BN running statistics, PyTorch names and layouts (the --save content).
  HostTensors state() const;
  // The parameter gradients of the last compute_gradients, PyTorch names and layouts.
  HostTensors gradients() const;
  // SGD's momentum buffers (torch.optim.SGD momentum_buffer), by parameter name (the names of
  // state() without the BN running statistics), PyTorch layouts. All zero before the first step.
  HostTensors momenta() const;
  // Restores a checkpoint: weights and BN running statistics (`state`, as state() returns them),
  // momentum buffers (as momenta() returns them) and the number of SGD steps done (the first
  // step, steps_done == 0, creates the momentum buffers). The layout conversions are exact
  // permutations, so state() and momenta() afterwards return the inputs bitwise, and training
  // continues exactly as the run that wrote them. The loss scaler restarts at its initial scale:
  // restore a mixed-precision run's scaler with load_loss_scale afterwards.
  void load_state(const HostTensors& state, const HostTensors& momenta, int64_t steps_done);

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
  // lr_in_memory: the learning rate read by the SGD kernel (a captured CUDA graph), else sgd.lr.
  void run_sgd(const SgdArgs& sgd, const float* lr_in_memory = nullptr);
  void run_all(const SgdArgs& sgd, const float* lr_in_memory = nullptr);
  // The step's scalars in executor memory (scalars_): loss and found_inf are written by the step
  // and read back together (the bytes before `scale`); scale and inv_scale by the host.
  struct StepScalars {
    float loss = 0.f;
    int32_t found_inf = 0;  // mixed precision: set by grad_unscale_check, read by sgd_step
    float scale = 1.f, inv_scale = 1.f;
  };
  template <typename T>
  T* scalar(size_t offset) const {
    return reinterpret_cast<T*>(scalars_.as<char>() + offset);
  }
  // Mixed precision: checks the loss scale and writes it and its inverse into scalars_ (a
  // stream-ordered copy, before the step's kernels and outside any capture).
  void upload_loss_scale();
  // Zeroed gradient arena (and, mixed precision, found-inf flag); the unscale and check of the
  // gradients after the backward (mixed precision only).
  void zero_gradients();
  void unscale_gradients();
  void run_compute_gradients();
  // The loss and the found-inf flag: one copy to the host, one wait.
  StepScalars read_back() const;
  // ++steps_done_ and, mixed precision, the loss-scale update from the found-inf flag (read back
  // with the loss; fp32: read back only if `want_loss`). Returns the loss, NaN if not read.
  float finish_step(bool want_loss);
  // torch._amp_update_scale_ (GradScaler.update) after a step whose gradients were (not) finite.
  void update_loss_scale(bool found_inf);
  bool mixed() const { return precision_.activations == DType::F16; }
  // SGD steps applied (not skipped): 0 means the next one creates the momentum buffers.
  int64_t sgd_steps_applied() const { return steps_done_ - scale_.skipped_steps; }
  HostTensors to_named(const std::vector<float>& arena, bool gradients) const;
  // Named tensors -> host images of the parameter arena and (if `running`) the running arena.
  void to_arenas(const HostTensors& named, std::vector<float>& params,
                 std::vector<float>* running) const;
  void repack_all();
  // Constructor steps: the loss-scaler constants checked; the parameter, gradient, momentum,
  // running and saved arenas from `init`; the packed conv weights; the shared op workspace size.
  void check_precision();
  void allocate_parameters(const HostTensors& init);
  void allocate_conv_weights();
  size_t workspace_bytes() const;
  size_t tile_counter_count() const;

  FarSeeConfig config_;
  MixedPrecision precision_;
  LossScaleState scale_;
  Context ctx_;
  TrainGraph graph_;
  MemoryPlan plan_;
  ParameterLayout layout_;
  std::vector<LayerWeights> weights_;
  rt::Buffer params_, grads_, momenta_, running_, saved_;
  rt::Buffer arena_, workspace_, labels_;
  rt::Buffer tile_counters_;  // split-K counters of the convs, zeroed once in init
  rt::Buffer lr_;             // one fp32: the learning rate of a CUDA-graph replay
  rt::Buffer scalars_;        // StepScalars
  rt::Buffer class_weights_;  // num_classes fp32, or empty (unweighted loss)
  // The raw-batch slots (augment_raw_batch, upload_raw_batch): host staging, its executor copy,
  // the sizes uploaded last and the event after the copies; the copy stream (null until used).
  struct RawSlot {
    rt::PinnedHostBuffer images, labels, samples;
    rt::Buffer device_images, device_labels, device_samples;
    int64_t image_bytes = 0, label_bytes = 0;
    rt::Event uploaded;
  };
  RawSlot& raw_slot(int slot);
  RawSlot raw_slots_[2];
  rt::Stream copy_stream_;
  std::vector<float> class_weights_host_;
  int64_t steps_done_ = 0;
  void* cuda_graph_ = nullptr;
  float host_lr_ = 0.f;       // the source of the copy into lr_
  float host_scale_[2] = {};  // the source of the copy into scalars_ (scale, inv_scale)
  int64_t graphs_captured_ = 0;
  bool ran_eager_step_ = false;  // a whole step ran eagerly in this process (Trainer::step)
  mutable int64_t readbacks_ = 0;
  float graph_momentum_ = 0.f, graph_weight_decay_ = 0.f;
  // Data parallelism (set_data_parallel); comm_ null: one process.
  bool distributed() const { return comm_ != nullptr && comm_->size() > 1; }
  void run_batchnorm(const TrainStep& s, const LayerSlots& slots);
  void all_reduce_gradients();
  void count_label_weights(const uint8_t* host_labels);
  // Before the steps: the global label-weight sum, so the loss step scales d(logits) by
  // local / global (loss_factor_); after them: the gradient arena all-reduced.
  void share_loss_normaliser();
  float global_loss(float local_loss);
  Collective* comm_ = nullptr;
  DeviceAllReduce device_all_reduce_;
  bool sync_bn_ = false;
  std::unique_ptr<BatchNormSync> bn_sync_;        // cuda and emu with sync_bn_: the kernels' hook
  double local_weight_sum_ = 0, loss_share_ = 1;  // this rank's share of the global sum
  float loss_factor_ = 1.f;                       // multiplies the loss step's grad_scale
  // The stream of its own when none was given (ctx_.stream); the last member, so destroyed first,
  // after the destructor has released the CUDA graph.
  rt::Stream own_stream_;
};

}  // namespace farsee::net
