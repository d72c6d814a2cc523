// farsee-train's options: one table of flags (tools/train/options.cpp) from which the --help text,
// the command-line parsing, --config FILE.json and the options a checkpoint stores all come.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace farsee::tools {

// Every field is one flag's value (see the --help text for their meaning).
struct Options {
  std::string data, split = "train", preset = "paper", init, save, executor = "auto";
  std::string save_dtype = "fp32";
  std::string precision = "fp32";
  double loss_scale = 65536;
  int loss_scale_growth_interval = 2000;
  int num_classes = 0;  // 0: the preset's
  int steps = 100, epochs = 0, batch = 8;
  double lr = 0.01, momentum = 0.9, weight_decay = 1e-4;
  std::string schedule = "poly";
  int lr_step_size = 0, warmup_steps = 0;
  double lr_gamma = 0.1;
  int input_h = 512, input_w = 1024;
  int label_h = 0, label_w = 0;  // 0: the input size
  std::string augmentation = "paper";
  std::string class_weights;              // "" (none), "inverse-log" or a list of numbers
  std::vector<float> class_weight_list;   // the list, parsed
  double scale_min = -1, scale_max = -1;  // < 0: the recipe's
  int crop_h = 0, crop_w = 0;
  int workers = std::clamp(int(std::thread::hardware_concurrency()) - 1, 1, 16);
  int benchmark_loader = 0;
  std::string augment_on = "host";  // host | executor (the augmentation op)
  bool augment = true, shuffle = true;
  uint64_t seed = 0;
  int val_every = 0;
  std::string val_split = "val";
  std::string val_data;  // "": --data
  int ckpt_every = 0, keep_last = 3;
  std::string ckpt_dir;
  std::string log;
  int print_every = 1;
  std::string resume;  // the checkpoint file of --resume (resolved), "" for a fresh run
  bool memory_plan = false;
  // Data parallelism (mpirun -np N farsee-train; DESIGN.md section 10.2).
  std::string bn = "sync";         // sync: global batch statistics; local: per rank (plain DDP)
  double collective_timeout = 60;  // seconds before a stuck collective ends the job
};

// farsee-train's --help text.
std::string usage_text();

// The options of farsee-train's arguments (without the program name), in layers, weakest first:
// the defaults, the options of the --resume checkpoint, --config FILE.json, the command line.
// --help prints usage_text() and returns nothing. Throws naming the flag for a bad value.
std::optional<Options> parse_options(const std::vector<std::string>& args);

// The options a checkpoint stores, as --config holds them ({"lr": 0.01, "no-augment": false,
// ...}; paths as given). --workers, --augment-on, --benchmark-loader, --memory-plan, --resume and
// --config are not stored: a resumed run uses its own.
nlohmann::json options_to_json(const Options& o);

// Applies {"name": value, ...} (names with or without "--"; values strings, numbers or booleans)
// on top of `o`; `where` prefixes errors. "config", "resume" and "help" are errors.
void apply_options_json(Options& o, const nlohmann::json& j, const std::string& where);

}  // namespace farsee::tools
