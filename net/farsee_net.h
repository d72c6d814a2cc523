// FarSee-Net inference on any executor (reference, emu, cuda), fp32 or fp16 activations.
//
// Construction folds BN into the conv weights and packs them for the executor (fp16 activations:
// fp16 conv weights; depthwise weights and all biases stay fp32; the sub-pixel convs in sub-pixel
// order, pack_subpixel_conv_weights; on emu and cuda the stem as space-to-depth, net/stem.h, whose
// input set_input rearranges on upload). prepare(n, h, w) infers shapes,
// plans the activation arena by liveness and allocates it; forward() runs every step through the
// op entry points (conv_bn_act, depthwise_atrous, max_pool, resize_argmax) and leaves uint8 labels
// at the output size on the executor. On cuda the first forward of a shape runs eagerly, the
// second is captured into a CUDA graph and every later one replays it.
//
// Shapes are cached: prepare() keeps the graph, memory plan and activation arena of the last
// kCachedShapes input shapes (n, h, w), and the labels buffer and CUDA graph of the last
// kCachedOutputs (input shape, output size) pairs, least recently used first out. Images of
// alternating sizes (farsee-infer's per-image output size) then reuse their arena and replay their
// CUDA graph instead of rebuilding both. When an allocation fails, every other cached shape is
// released and the allocation retried once; a failure after that names the buffer and its size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/conv_bn_act.h"
#include "kernels/core/executor.h"
#include "kernels/core/runtime.h"
#include "net/config.h"
#include "net/graph.h"
#include "net/memory_plan.h"
#include "net/parameters.h"

namespace farsee::net {

// ImageNet normalisation applied to RGB in [0, 1] (torchvision).
constexpr float kImageMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageStd[3] = {0.229f, 0.224f, 0.225f};

class FarSeeNet {
 public:
  // `ctx.stream` may be null: on cuda the net then creates (and owns) its own stream.
  FarSeeNet(const FarSeeConfig& config, const HostTensors& params, const Context& ctx,
            DType activation_dtype);
  // precision tf32: fp32 storage, convs in TF32 (ConvOptions::tf32); fp32 / fp16 as the dtype.
  FarSeeNet(const FarSeeConfig& config, const HostTensors& params, const Context& ctx,
            Precision precision);
  ~FarSeeNet();
  FarSeeNet(const FarSeeNet&) = delete;
  FarSeeNet& operator=(const FarSeeNet&) = delete;

  const FarSeeConfig& config() const { return config_; }
  const Context& context() const { return ctx_; }
  DType dtype() const { return dtype_; }
  Precision precision() const { return tf32_ ? Precision::TF32 : precision_of(dtype_); }
  // Bytes of packed weights and biases on the executor.
  int64_t parameter_bytes() const { return parameter_bytes_; }

  // Shapes, memory plan and buffers for batch n, input h x w (multiples of 32), labels at
  // out_h x out_w (0: the input size). Cheap to call again with the same arguments or with any
  // cached shape (see above).
  void prepare(int n, int h, int w, int out_h = 0, int out_w = 0);
  bool prepared() const { return shape_ != nullptr && output_ != nullptr; }

  static constexpr int kCachedShapes = 4;
  static constexpr int kCachedOutputs = 8;
  // What prepare() has built since construction (tests, benchmarks).
  struct CacheStats {
    int64_t arenas_built = 0;   // graph + plan + arena + workspace, per input shape
    int64_t outputs_built = 0;  // labels buffers, per (input shape, output size)
    int64_t cuda_graphs_captured = 0;
    int cached_shapes = 0, cached_outputs = 0;
  };
  CacheStats cache_stats() const;
  const Graph& graph() const;
  const MemoryPlan& memory_plan() const;

  // Fills every activation byte, the input's too, with `byte`; call before set_input.
  // Tests: 0xFF = NaN poison, so a read of anything no step wrote shows up in the output.
  void fill_activations(uint8_t byte);

  // Input: host [n][h][w][3] fp32, already normalised (see normalise_rgb). Returns once the
  // upload is done: the caller may reuse `nhwc` at once.
  void set_input(const float* nhwc);
  // Input -> labels. `use_cuda_graph` matters on cuda and emu (the executors with graphs).
  void forward(bool use_cuda_graph = true);

  // The pieces of set_input for a caller that uploads on a stream of its own (farsee::Segmenter's
  // submit, DESIGN.md section 14): the input as the executor holds it (the space-to-depth stem's
  // rearrangement, fp16 conversion) is packed_input_bytes(); pack_input writes it on the host;
  // set_input_device queues a copy of it from device memory on the net's stream and returns at
  // once (order the copy that filled `packed` with an event).
  size_t packed_input_bytes() const;
  void pack_input(const float* nhwc, void* packed) const;
  void set_input_device(const void* packed);
  // The labels of the latest forward on the executor, labels_bytes() of them (labels() without
  // the copy to the host); valid until the next prepare or forward.
  const uint8_t* device_labels() const;
  size_t labels_bytes() const;

  // One eager forward timed launch group by launch group, running what forward() runs (CUDA events
  // on cuda, a steady clock elsewhere): where the time goes. One entry per graph step, except the
  // depthwise branches of an F-ASPP block, one merged launch: one entry named "a+b+c" covering
  // graph_steps = 3 steps. The last entry is the output resize+argmax.
  struct StepTime {
    std::string name;
    double ms;
    int graph_steps = 1;
  };
  std::vector<StepTime> profile_forward();

  // Host copies (wait for the executor).
  std::vector<uint8_t> labels() const;  // [n][out_h][out_w], trainIds
  // Labels of the last forward at another output size (runs only the resize+argmax again).
  std::vector<uint8_t> labels_at(int out_h, int out_w) const;
  Shape4 logits_shape() const;        // [n, h / stride, w / stride, classes]
  std::vector<float> logits() const;  // NHWC, at the logits stride, as float
  // The logits resized like the labels (bilinear, the preset's align_corners) to out_h x out_w,
  // on the host in fp32, NCHW [n][classes][out_h][out_w] (PyTorch order).
  std::vector<float> resized_logits_nchw(int out_h, int out_w) const;

  int out_h() const;
  int out_w() const;

 private:
  struct LayerParams {
    ConvWeights conv;                  // conv layers
    const float* dw_weight = nullptr;  // depthwise layers: [C][3][3] in the parameter arena
    const float* bias = nullptr;       // [K] in the parameter arena
  };
  TensorView view(const TensorRef& r) const;
  // The space-to-depth stem (net/stem.h; emu and cuda): its layer, weights and input.
  bool is_s2d_stem(int layer) const;
  ConvWeights pack_conv_layer(int layer, const std::vector<float>& krsc) const;
  TensorView stem_input_view() const;
  // fused_pool: the max-pool step a stem conv absorbs (ConvEpilogue::max_pool), or null.
  void run_step(const Step& s, const Step* fused_pool = nullptr);
  void run_output();
  void run_steps();
  size_t run_depthwise_branches(const std::vector<Step>& steps, size_t first);
  // One launch from steps[first]; returns the steps it covered (>= 1).
  size_t run_launch(const std::vector<Step>& steps, size_t first);

  FarSeeConfig config_;
  Context ctx_;
  DType dtype_;
  bool tf32_ = false;  // convs in TF32 (fp32 storage)
  std::vector<Layer> layers_;
  std::vector<LayerParams> params_;
  bool stem_s2d_ = false;   // the stem runs as space-to-depth (net/stem.h)
  rt::Buffer param_arena_;  // fp32 biases and depthwise weights
  int64_t parameter_bytes_ = 0;

  // One input shape: its graph, plan and buffers.
  struct ShapeState {
    std::unique_ptr<Graph> graph;
    MemoryPlan plan;
    rt::Buffer arena;
    rt::Buffer workspace;      // fp32 split-K partial sums (conv_workspace_bytes)
    rt::Buffer tile_counters;  // int split-K tile counters, zeroed once (conv_tile_counter_count)
    rt::Buffer stem_input;     // space-to-depth stem: the input as set_input rearranged it
    uint64_t last_used = 0;
  };
  // One output size of one input shape: the labels and the CUDA graph writing them.
  struct OutputState {
    const ShapeState* shape = nullptr;
    int out_h = 0, out_w = 0;
    rt::Buffer labels;
    int forwards = 0;
    void* cuda_graph = nullptr;  // rt::graph_* handle, cuda only
    uint64_t last_used = 0;
    ~OutputState();
  };
  ShapeState* add_shape(int n, int h, int w);
  void allocate_split_k(ShapeState& state, const Graph& graph, const std::string& shape_text);
  OutputState* add_output(ShapeState* shape, int out_h, int out_w);
  void evict_shape(const ShapeState* keep);  // the least recently used other than `keep`
  void release_shape(const ShapeState* s);
  // Allocates `bytes` for `what`; on failure releases every cached shape but `keep` and retries
  // once, then throws naming `what` and the size.
  rt::Buffer allocate(size_t bytes, const std::string& what, const ShapeState* keep);
  const Graph& current_graph(const char* caller) const;

  std::vector<std::unique_ptr<ShapeState>> shapes_;
  std::vector<std::unique_ptr<OutputState>> outputs_;
  ShapeState* shape_ = nullptr;    // the prepared shape
  OutputState* output_ = nullptr;  // the prepared output size
  uint64_t clock_ = 0;
  CacheStats stats_;
  // The stream of its own when none was given (ctx_.stream); the last member, so destroyed first,
  // after the destructor has released the CUDA graphs.
  rt::Stream own_stream_;
};

// In place on interleaved RGB in [0, 1], [pixels][3]: (v - mean) / std per channel (ImageNet).
void normalise_rgb(float* rgb, int64_t pixels);

}  // namespace farsee::net
