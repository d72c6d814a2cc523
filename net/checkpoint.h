// farsee-train checkpoints: one safetensors file (weights/safetensors.h, written atomically: a
// temporary file, fsync, rename) holding everything a run needs to continue bitwise identically:
//
//   <name>            weights and BN running statistics, PyTorch names and layouts, fp32 (the
//                     --save content, so a checkpoint also loads as a weight file)
//   momentum.<name>   SGD's momentum buffer of every parameter, fp32
//   __metadata__      "preset", "config" (the network's JSON), "num_classes", "input_size" (trained
//                     at) and "class_names" (net/api/weights_metadata.h: what farsee-infer,
//                     farsee-eval and the APIs take as their defaults), "generator":
//                     "farsee-train", and "checkpoint": JSON text {"format": 1, "step": SGD steps
//                     done, "info": {...}} where info is what the trainer stores: its options (as
//                     --config holds them), the data order and RNG state, the epoch, the best
//                     validation mIoU and, for --precision fp16, "loss_scaler": {"scale",
//                     "growth_tracker", "skipped_steps"}
//
// In a checkpoint folder the files are ckpt-<step, 8 digits>.safetensors (the periodic ones,
// the last K kept) and best.safetensors (the best validation mIoU so far).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "net/api/weights_metadata.h"
#include "net/config.h"
#include "net/parameters.h"
#include "weights/safetensors.h"

namespace farsee::tools {

struct Checkpoint {
  net::FarSeeConfig config;
  int64_t step = 0;          // SGD steps done
  nlohmann::json info;       // the trainer's own state (options, data order, best mIoU, ...)
  net::HostTensors state;    // weights + BN running statistics
  net::HostTensors momenta;  // by parameter name
  // The input size trained at and the class names (config and preset come from `config`).
  net::WeightsMetadata trained;
};

// farsee-train --save's weight file: the network's metadata (config, and from `trained` the input
// size trained at and the class names, where set) and `state` (weights and BN running statistics,
// the names of net::parameter_specs) as `dtype`, F32 or F16 (a value fp16 cannot hold is an error
// naming the tensor). A checkpoint starts with the same content. Atomic write.
void write_weights(const std::string& path, const net::FarSeeConfig& config,
                   const net::HostTensors& state,
                   weights::FileDType dtype = weights::FileDType::F32,
                   const net::WeightsMetadata& trained = {});
// Atomic write (a failed write leaves `path` as it was); creates the parent folder.
void write_checkpoint(const std::string& path, const Checkpoint& c);
// Reads and checks every tensor (names and shapes of the stored config). Errors name the file.
Checkpoint read_checkpoint(const std::string& path);

// "ckpt-00000123.safetensors".
std::string checkpoint_file_name(int64_t step);
// The periodic checkpoints of `dir` by step, ascending (none: empty; no folder: empty).
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir);
// FILE: itself. DIR: its periodic checkpoint with the highest step (error naming DIR when none).
std::string resolve_checkpoint(const std::string& dir_or_file);
// Removes the oldest periodic checkpoints of `dir` so that `keep_last` remain (best.safetensors is
// never touched). Returns the removed paths.
std::vector<std::string> prune_checkpoints(const std::string& dir, int keep_last);

}  // namespace farsee::tools
