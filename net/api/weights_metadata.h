// What a weights file says about itself (DESIGN.md section 14): the safetensors __metadata__ keys
// FarSee reads and writes, beside the tensors:
//   "preset"       the preset the network was built from ("paper", ...)
//   "config"       the whole network configuration, JSON (net/config.h)
//   "num_classes"  decimal
//   "input_size"   "HxW": the network input size the weights were trained at
//   "class_names"  JSON array of strings, one per class, in class-index order
// Every key is optional (files from elsewhere have none); a key present but malformed is an error
// naming the file and the key.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "net/config.h"
#include "weights/safetensors.h"

namespace farsee::net {

struct WeightsMetadata {
  std::string preset;                     // empty: not recorded
  std::optional<FarSeeConfig> config;     // from "config"
  int num_classes = 0;                    // from "num_classes" (or "config"); 0: not recorded
  int input_height = 0, input_width = 0;  // 0: not recorded
  std::vector<std::string> class_names;   // empty: not recorded
};

WeightsMetadata read_weights_metadata(const weights::SafetensorsFile& file);
WeightsMetadata read_weights_metadata(const std::string& path);

// Records `m` in `w`'s metadata (the keys above; preset, config and num_classes from m.config).
void set_weights_metadata(weights::SafetensorsWriter& w, const WeightsMetadata& m);

// The network configuration a run uses, with the weights file's metadata as the default:
// `config_file` if given, else `preset` if given, else the file's configuration, else its preset
// (and classes), else "paper"; `num_classes` > 0 replaces the classes of the one chosen. A
// network given that differs from the file's is an error naming both.
FarSeeConfig resolve_config(const std::string& config_file, const std::string& preset,
                            const WeightsMetadata& m, const std::string& weights_path,
                            int num_classes = 0);

// The network input size a run uses (height, width): the one given (0 x 0: none), else the one
// the weights were trained at, else 512 x 1024 (the programs' documented default).
std::pair<int, int> resolve_input_size(int height, int width, const WeightsMetadata& m);

}  // namespace farsee::net
