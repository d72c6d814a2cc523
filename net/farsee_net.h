// FarSee-Net inference on any executor (reference, emu, cuda), fp32 or fp16 activations.
//
// Construction folds BN into the conv weights and packs them for the executor (fp16 activations:
// fp16 conv weights; depthwise weights and all biases stay fp32). prepare(n, h, w) infers shapes,
// plans the activation arena by liveness and allocates it; forward() runs every step through the
// op entry points (conv_bn_act, depthwise_atrous, max_pool, resize_argmax) and leaves uint8 labels
// at the output size on the executor. On cuda the first forward after prepare() runs eagerly, the
// second is captured into a CUDA graph and every later one replays it.
#pragma once

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
  ~FarSeeNet();
  FarSeeNet(const FarSeeNet&) = delete;
  FarSeeNet& operator=(const FarSeeNet&) = delete;

  const FarSeeConfig& config() const { return config_; }
  const Context& context() const { return ctx_; }
  DType dtype() const { return dtype_; }
  // Bytes of packed weights and biases on the executor.
  int64_t parameter_bytes() const { return parameter_bytes_; }

  // Shapes, memory plan and buffers for batch n, input h x w (multiples of 32), labels at
  // out_h x out_w (0: the input size). Cheap to call again with the same arguments.
  void prepare(int n, int h, int w, int out_h = 0, int out_w = 0);
  bool prepared() const { return graph_ != nullptr; }
  const Graph& graph() const;
  const MemoryPlan& memory_plan() const;

  // Fills every activation byte, the input's too, with `byte`; call before set_input.
  // Tests: 0xFF = NaN poison, so a read of anything no step wrote shows up in the output.
  void fill_activations(uint8_t byte);

  // Input: host [n][h][w][3] fp32, already normalised (see normalise_rgb).
  void set_input(const float* nhwc);
  // Input -> labels. `use_cuda_graph` only matters on cuda.
  void forward(bool use_cuda_graph = true);

  // One eager forward timed step by step (CUDA events on cuda, a steady clock elsewhere): where
  // the time goes. The last entry is the output resize+argmax.
  struct StepTime {
    std::string name;
    double ms;
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

  int out_h() const { return out_h_; }
  int out_w() const { return out_w_; }

 private:
  struct LayerParams {
    ConvWeights conv;                  // conv layers
    const float* dw_weight = nullptr;  // depthwise layers: [C][3][3] in the parameter arena
    const float* bias = nullptr;       // [K] in the parameter arena
  };
  TensorView view(const TensorRef& r) const;
  void run_step(const Step& s);
  void run_output();
  void run_steps();

  FarSeeConfig config_;
  Context ctx_;
  bool owns_stream_ = false;
  DType dtype_;
  std::vector<Layer> layers_;
  std::vector<LayerParams> params_;
  rt::Buffer param_arena_;  // fp32 biases and depthwise weights
  int64_t parameter_bytes_ = 0;

  std::unique_ptr<Graph> graph_;
  MemoryPlan plan_;
  rt::Buffer arena_;
  rt::Buffer workspace_;  // fp32 split-K partial sums (conv_workspace_bytes)
  rt::Buffer labels_;
  int out_h_ = 0, out_w_ = 0;
  int forwards_since_prepare_ = 0;
  void* cuda_graph_ = nullptr;  // rt::graph_* handle, cuda only
};

// In place on interleaved RGB in [0, 1], [pixels][3]: (v - mean) / std per channel (ImageNet).
void normalise_rgb(float* rgb, int64_t pixels);

}  // namespace farsee::net
