// FarSee-Net parameters on the host, by PyTorch state_dict name: validation against the layer list
// of a config, deterministic random initialisation (benchmarks), and the inference form of each
// layer (BN folded into the conv weights, KRSC layout).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "net/config.h"
#include "net/graph.h"
#include "weights/safetensors.h"

namespace farsee::net {

// name -> PyTorch-shaped fp32 values (OIHW conv weights), as weights::read_expected returns them.
using HostTensor = weights::FloatTensor;
using HostTensors = std::map<std::string, HostTensor>;

// Reads a safetensors weight file for `config` through weights/'s checked reader: every tensor of
// parameter_specs(config) present with its PyTorch shape (errors name the file, the tensor and both
// shapes), values converted to fp32; a NaN or Inf in any tensor is an error naming the tensor and
// the element. A file whose metadata names another preset is refused with
// that message. Names the file holds beyond the expected ones go to `unknown` when given; when
// `unknown` is null they are an error listing them.
HostTensors load_parameters(const std::string& path, const FarSeeConfig& config,
                            std::vector<std::string>* unknown = nullptr);

// Throws farsee::Error when a tensor of parameter_specs(config) is missing (naming it), has
// another shape (naming it and both shapes) or holds a NaN or Inf (naming it and the element).
// Tensors `params` holds beyond those are returned (the caller reports them; BN's
// num_batches_tracked is not counted as unknown).
std::vector<std::string> check_parameters(const FarSeeConfig& config, const HostTensors& params);

// Deterministic parameters for `config` (He-normal conv weights, BN statistics near identity),
// identical on every machine for the same seed. For benchmarks and tests without a weight file.
HostTensors random_parameters(const FarSeeConfig& config, uint64_t seed);

// One layer ready for inference: y = conv(x, weight) + bias, with BN (if any) folded into the
// weight rows and the bias by weights/batchnorm_fold.h (eps 1e-5, as PyTorch). The units of a
// merged layer are stacked along K in their order. Conv layers: weight in KRSC [K][R][S][C];
// depthwise layers: [C][3][3].
struct FoldedLayer {
  std::vector<float> weight;
  std::vector<float> bias;  // [K]
};
FoldedLayer fold_layer(const Layer& layer, const HostTensors& params);

}  // namespace farsee::net
