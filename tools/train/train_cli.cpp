// farsee-train: SGD training of FarSee-Net on a Cityscapes-layout folder (tools/data/dataset.h) with
// net::Trainer. Schedules, validation mIoU, checkpoints (net/checkpoint.h) that resume bitwise
// identically, SIGINT/SIGTERM handling, a NaN/Inf-loss stop, progress and JSON-lines logs.
//
// Determinism: batch k depends only on (seed, k, the sorted file list, the options): the order
// is a seeded permutation per epoch and every augmentation draw is a stateless hash of (seed,
// sample position) (tools/data/dataset.h). So the "data order and RNG state" of a checkpoint is the
// seed, the file count and the next batch index (= SGD steps done), and a resumed run feeds the
// exact batches the uninterrupted run would have.
#include "tools/train/train_cli.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "kernels/core/check.h"
#include "net/config.h"
#include "net/farsee_net.h"
#include "net/parameters.h"
#include "net/trainer.h"
#include "net/checkpoint.h"
#include "tools/cli/cli.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/parallel_for.h"
#include "weights/safetensors.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kUsage = R"(usage: farsee-train --data DIR [options]

Trains FarSee-Net with SGD (torch.optim.SGD semantics) on a Cityscapes-layout folder:
DIR/leftImg8bit/<split>/<city>/*_leftImg8bit.png with DIR/gtFine/<split>/<city>/
*_gtFine_labelIds.png (labelIds mapped to the 19 trainIds, every other id to 255).

Data and model:
  --data DIR              dataset root (required)
  --split NAME            which split to train on (default train)
  --preset NAME           paper (default) | rtseg | tiny-paper | tiny-rtseg
  --num-classes N         classes of the logits (default: the preset's)
  --init FILE             safetensors start: every tensor of the preset (weights and BN running
                          statistics, DESIGN.md names), or only backbone.* (a converted ImageNet
                          ResNet-18; the head then gets PyTorch's default init). Default: from
                          scratch, torchvision's Kaiming init for the backbone, PyTorch's
                          defaults for the head (--seed)
  --input-size HxW        network input, multiples of 32 (default 512x1024); images are resized
                          to it bilinearly (as farsee-infer), labels by nearest neighbour
  --label-size HxW        size the loss is computed at (default: the input size); labels are
                          resized to it by nearest neighbour, logits bilinearly
  --augmentation A        paper (default): the paper's augmentation: random scale, crop,
                          horizontal flip, rotation up to 10 degrees, colour jitter and noise |
                          flip: random horizontal flips only
  --scale-range A,B       random scale range (default 0.5,2 with paper, 1,1 with flip)
  --crop HxW              crop window in label pixels of the scaled image, padded with label 255
                          (default: the label size)
  --no-augment            no augmentation at all
  --class-weights W       weights of the classes in the loss (F.cross_entropy's weight=: a
                          weighted mean), for rare classes: W0,W1,... (one per class, >= 0) |
                          inverse-log: 1 / ln(1.02 + f_c), f_c the share of class c among the
                          labelled pixels of the training split (ENet's weighting), computed at
                          the start and printed. Default: none (every class 1)
  --workers N             decoding/augmentation threads with a bounded prefetch queue (default:
                          the CPUs less one, at most 16; 0: on the training thread); the batches
                          do not depend on N. One thread makes about 14 images/s at 1024x2048
  --benchmark-loader N    time N batches of the loader, print images/s and exit
  --no-shuffle            files in sorted path order; batch k holds files k*B .. k*B+B-1
                          (wrapping around)
  --seed N                seed of the shuffling, augmentation and initial weights (default 0)

Optimisation:
  --steps N               SGD steps (default 100)
  --epochs N              instead of --steps: ceil(N * images / batch) steps
  --batch N               images per step (default 8)
  --lr X                  base learning rate (default 0.01)
  --momentum X            SGD momentum (default 0.9)
  --weight-decay X        weight decay on every parameter (default 1e-4)
  --lr-schedule S         constant | poly (default): lr * (1 - t / T)^0.9 |
                          cosine: lr * (1 + cos(pi * t / T)) / 2 |
                          step: lr * gamma^floor(step / --lr-step-size) |
                          paper: lr * 0.9^floor(epoch / 50) (the paper's recipe)
                          (t, T: step and steps counted after the warm-up)
  --lr-step-size N        steps between decays of the step schedule
  --lr-gamma X            decay factor of the step schedule (default 0.1)
  --warmup-steps N        linear warm-up: lr * (step + 1) / N for the first N steps (default 0)
  --precision P           fp32 (default) | fp16: mixed precision (torch.autocast + GradScaler):
                          fp16 activations, activation gradients and tensor-core conv operands
                          (fp32 accumulation), fp32 master weights, gradients, momenta and BN;
                          dynamic loss scaling: a step with a NaN/Inf gradient is skipped and
                          the scale halved, 2000 finite steps in a row double it. Validation
                          and --save use the fp32 weights
  --loss-scale X          fp16: initial loss scale (default 65536 = 2^16)
  --loss-scale-growth-interval N
                          fp16: finite steps in a row that double the scale (default 2000)
  --executor E            auto (default: cuda if usable, else cpu) | cuda | cpu | reference | emu

Validation, checkpoints, logs:
  --val-every N           mIoU on --val-split every N steps and at the end (default 0: never)
  --val-split NAME        split to validate on (default val)
  --ckpt-every N          checkpoint every N steps (default 0: none periodic); the last one is
                          also written at the end when --ckpt-dir or --ckpt-every is given
  --ckpt-dir DIR          checkpoint folder (default checkpoints): ckpt-<step>.safetensors
                          (weights, momenta, BN statistics, step, epoch, data order, RNG state,
                          options; written atomically) and best.safetensors (best val mIoU),
                          written when --ckpt-dir or --ckpt-every is given (a signal always
                          writes one)
  --keep-last K           periodic checkpoints kept (default 3)
  --resume DIR|FILE       continue a run from a checkpoint (DIR: its latest): bitwise the run
                          that wrote it. Its options are the defaults; flags given here override
                          them (e.g. --steps to train longer)
  --config FILE.json      any flag as {"name": value} ("lr": 0.1, "no-augment": true, ...);
                          command-line flags override it
  --log FILE              metrics as JSON lines (step, val, checkpoint events)
  --print-every N         progress every N steps (default 1): redrawn in place on a terminal,
                          plain lines otherwise
  --save FILE             final weights and BN running statistics (written atomically)
  --save-dtype D          fp32 (default) | fp16: the dtype --save stores (fp16: half the size;
                          a value fp16 cannot hold is an error naming the tensor)
  --memory-plan           print the training memory plan for --preset, --batch and
                          --input-size (nothing allocated, no --data needed) and exit
  --help                  this text

SIGINT / SIGTERM write a checkpoint into --ckpt-dir and exit with 130 / 143. A NaN or Inf loss
stops the run with an error naming the step; checkpoints are only written after finite losses.
)";

struct Options {
  std::string data, split = "train", preset = "paper", init, save, executor = "auto";
  std::string save_dtype = "fp32";
  std::string precision = "fp32";
  double loss_scale = 65536;
  int loss_scale_growth_interval = 2000;
  int num_classes = 0;
  int steps = 100, epochs = 0, batch = 8;
  double lr = 0.01, momentum = 0.9, weight_decay = 1e-4;
  std::string schedule = "poly";
  int lr_step_size = 0, warmup_steps = 0;
  double lr_gamma = 0.1;
  int input_h = 512, input_w = 1024;
  int label_h = 0, label_w = 0;
  std::string augmentation = "paper";
  std::string class_weights;              // "" (none), "inverse-log" or a list of numbers
  std::vector<float> class_weight_list;   // the list, parsed
  double scale_min = -1, scale_max = -1;  // < 0: the recipe's
  int crop_h = 0, crop_w = 0;
  int workers = std::clamp(int(std::thread::hardware_concurrency()) - 1, 1, 16);
  int benchmark_loader = 0;  // not stored in checkpoints
  bool augment = true, shuffle = true;
  uint64_t seed = 0;
  int val_every = 0;
  std::string val_split = "val";
  int ckpt_every = 0, keep_last = 3;
  std::string ckpt_dir;
  std::string log;
  int print_every = 1;
  // Not stored in checkpoints.
  std::string resume, config;
  bool memory_plan = false;
};

double parse_double(const std::string& text, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  FARSEE_REQUIRE(!text.empty() && *end == '\0' && std::isfinite(v) && v >= 0,
                 what << ": '" << text << "' is not a non-negative number");
  return v;
}

bool parse_bool(const std::string& text, const std::string& flag) {
  FARSEE_REQUIRE(text == "true" || text == "false",
                 flag << ": '" << text << "' is not true or false");
  return text == "true";
}

bool is_switch(const std::string& flag) {
  return flag == "--no-augment" || flag == "--no-shuffle" || flag == "--memory-plan" ||
         flag == "--help";
}

// Sets one option. `value`: the flag's value ("true"/"false" for switches).
void apply(Options& o, const std::string& flag, const std::string& value) {
  const char* f = flag.c_str();
  if (flag == "--data") {
    o.data = value;
  } else if (flag == "--split") {
    o.split = value;
  } else if (flag == "--preset") {
    o.preset = value;
  } else if (flag == "--num-classes") {
    o.num_classes = parse_int(value, f, 0);
  } else if (flag == "--init") {
    o.init = value;
  } else if (flag == "--steps") {
    o.steps = parse_int(value, f, 1);
    o.epochs = 0;
  } else if (flag == "--epochs") {
    o.epochs = parse_int(value, f, 1);
    o.steps = 0;
  } else if (flag == "--batch") {
    o.batch = parse_int(value, f, 1);
  } else if (flag == "--lr") {
    o.lr = parse_double(value, f);
  } else if (flag == "--momentum") {
    o.momentum = parse_double(value, f);
  } else if (flag == "--weight-decay") {
    o.weight_decay = parse_double(value, f);
  } else if (flag == "--lr-schedule") {
    FARSEE_REQUIRE(
        value == "constant" || value == "poly" || value == "cosine" || value == "step" ||
            value == "paper",
        "--lr-schedule: '" << value << "' is not one of constant, poly, cosine, step, paper");
    o.schedule = value;
  } else if (flag == "--lr-step-size") {
    o.lr_step_size = parse_int(value, f, 1);
  } else if (flag == "--lr-gamma") {
    o.lr_gamma = parse_double(value, f);
  } else if (flag == "--warmup-steps") {
    o.warmup_steps = parse_int(value, f, 0);
  } else if (flag == "--precision") {
    parse_precision(value);
    o.precision = value;
  } else if (flag == "--loss-scale") {
    o.loss_scale = parse_double(value, f);
    FARSEE_REQUIRE(o.loss_scale > 0 && o.loss_scale <= double(std::numeric_limits<float>::max()),
                   "--loss-scale: " << value << " is not a positive fp32 number");
  } else if (flag == "--loss-scale-growth-interval") {
    o.loss_scale_growth_interval = parse_int(value, f, 1);
  } else if (flag == "--input-size") {
    std::tie(o.input_h, o.input_w) = parse_size(value, f);
    FARSEE_REQUIRE(o.input_h % 32 == 0 && o.input_w % 32 == 0,
                   "--input-size " << o.input_h << "x" << o.input_w
                                   << ": height and width must be multiples of 32");
  } else if (flag == "--label-size") {
    std::tie(o.label_h, o.label_w) = parse_size(value, f);
  } else if (flag == "--augmentation") {
    FARSEE_REQUIRE(value == "flip" || value == "paper",
                   "--augmentation: '" << value << "' is not one of flip, paper");
    o.augmentation = value;
  } else if (flag == "--scale-range") {
    const std::vector<std::string> r = split_list(value, f);
    FARSEE_REQUIRE(r.size() == 2, "--scale-range: '" << value << "' is not A,B");
    o.scale_min = parse_double(r[0], f);
    o.scale_max = parse_double(r[1], f);
    FARSEE_REQUIRE(o.scale_min > 0 && o.scale_min <= o.scale_max,
                   "--scale-range: '" << value << "' needs 0 < A <= B");
  } else if (flag == "--crop") {
    std::tie(o.crop_h, o.crop_w) = parse_size(value, f);
  } else if (flag == "--workers") {
    o.workers = parse_int(value, f, 0);
  } else if (flag == "--benchmark-loader") {
    o.benchmark_loader = parse_int(value, f, 1);
  } else if (flag == "--no-augment") {
    o.augment = !parse_bool(value, flag);
  } else if (flag == "--no-shuffle") {
    o.shuffle = !parse_bool(value, flag);
  } else if (flag == "--seed") {
    o.seed = uint64_t(parse_int(value, f, 0));
  } else if (flag == "--executor") {
    o.executor = value;
  } else if (flag == "--val-every") {
    o.val_every = parse_int(value, f, 0);
  } else if (flag == "--val-split") {
    o.val_split = value;
  } else if (flag == "--ckpt-every") {
    o.ckpt_every = parse_int(value, f, 0);
  } else if (flag == "--ckpt-dir") {
    o.ckpt_dir = value;
  } else if (flag == "--keep-last") {
    o.keep_last = parse_int(value, f, 1);
  } else if (flag == "--log") {
    o.log = value;
  } else if (flag == "--print-every") {
    o.print_every = parse_int(value, f, 1);
  } else if (flag == "--class-weights") {
    o.class_weight_list.clear();
    if (value != "inverse-log") {
      for (const std::string& item : split_list(value, f))
        o.class_weight_list.push_back(float(parse_double(item, f)));
    }
    o.class_weights = value;
  } else if (flag == "--save") {
    o.save = value;
  } else if (flag == "--save-dtype") {
    FARSEE_REQUIRE(value == "fp32" || value == "fp16",
                   "--save-dtype '" << value << "': expected fp32 or fp16");
    o.save_dtype = value;
  } else if (flag == "--memory-plan") {
    o.memory_plan = parse_bool(value, flag);
  } else {
    FARSEE_REQUIRE(false, "unknown option '" << flag << "' (see --help)");
  }
}

// The options a checkpoint stores (as --config holds them; paths as given). --workers is the
// machine's business (the batches do not depend on it), so a resumed run uses its own.
json options_to_json(const Options& o) {
  json j;
  j["data"] = o.data;
  j["split"] = o.split;
  j["preset"] = o.preset;
  j["num-classes"] = o.num_classes;
  j["init"] = o.init;
  if (o.epochs > 0) {
    j["epochs"] = o.epochs;
  } else {
    j["steps"] = o.steps;
  }
  j["batch"] = o.batch;
  j["lr"] = o.lr;
  j["momentum"] = o.momentum;
  j["weight-decay"] = o.weight_decay;
  j["lr-schedule"] = o.schedule;
  if (o.lr_step_size > 0) j["lr-step-size"] = o.lr_step_size;
  j["lr-gamma"] = o.lr_gamma;
  j["warmup-steps"] = o.warmup_steps;
  j["precision"] = o.precision;
  j["loss-scale"] = o.loss_scale;
  j["loss-scale-growth-interval"] = o.loss_scale_growth_interval;
  j["input-size"] = std::to_string(o.input_h) + "x" + std::to_string(o.input_w);
  if (o.label_h > 0) j["label-size"] = std::to_string(o.label_h) + "x" + std::to_string(o.label_w);
  j["augmentation"] = o.augmentation;
  if (o.scale_min > 0) j["scale-range"] = json(o.scale_min).dump() + "," + json(o.scale_max).dump();
  if (o.crop_h > 0) j["crop"] = std::to_string(o.crop_h) + "x" + std::to_string(o.crop_w);
  if (!o.class_weights.empty()) j["class-weights"] = o.class_weights;
  j["no-augment"] = !o.augment;
  j["no-shuffle"] = !o.shuffle;
  j["seed"] = o.seed;
  j["executor"] = o.executor;
  j["val-every"] = o.val_every;
  j["val-split"] = o.val_split;
  j["ckpt-every"] = o.ckpt_every;
  j["ckpt-dir"] = o.ckpt_dir;
  j["keep-last"] = o.keep_last;
  j["log"] = o.log;
  j["print-every"] = o.print_every;
  j["save"] = o.save;
  j["save-dtype"] = o.save_dtype;
  return j;
}

// Applies {"name": value, ...}; `where` names the source in errors. "config" and "resume" keys
// are returned through the pointers (when given) instead of being applied.
void apply_json(Options& o, const json& j, const std::string& where, std::string* config = nullptr,
                std::string* resume = nullptr) {
  FARSEE_REQUIRE(j.is_object(), where << ": not a JSON object of flags");
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = it.key();
    const std::string flag = key.compare(0, 2, "--") == 0 ? key : "--" + key;
    std::string value;
    const json& v = it.value();
    if (v.is_string()) {
      value = v.get<std::string>();
    } else if (v.is_boolean()) {
      value = v.get<bool>() ? "true" : "false";
    } else if (v.is_number()) {
      value = v.dump();
    } else {
      FARSEE_REQUIRE(false, where << ": flag '" << key << "' has a value that is not a string, "
                                  << "number or boolean");
    }
    try {
      if (flag == "--config") {
        FARSEE_REQUIRE(config, "--config cannot be nested");
        *config = value;
      } else if (flag == "--resume") {
        FARSEE_REQUIRE(resume, "--resume is not an option of a checkpoint");
        *resume = value;
      } else if (flag == "--help") {
        FARSEE_REQUIRE(false, "--help is not a configuration flag");
      } else {
        apply(o, flag, value);
      }
    } catch (const Error& e) {
      FARSEE_REQUIRE(false, where << ": " << e.what());
    }
  }
}

json read_json_file(const std::string& path, const char* what) {
  std::ifstream f(path);
  FARSEE_REQUIRE(f.good(), what << ": cannot read '" << path << "'");
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    FARSEE_REQUIRE(false, what << ": '" << path << "' is not valid JSON: " << e.what());
  }
}

// Option layers, weakest first: the resumed checkpoint's options, --config FILE, the command line.
std::optional<Options> parse(const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> flags;  // the command line, in order
  std::string config, resume;
  {
    std::vector<std::string> storage{"farsee-train"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage) argv.push_back(s.data());
    ArgParser p(int(argv.size()), argv.data());
    while (p.next()) {
      FARSEE_REQUIRE(!p.positional(), "unexpected argument '" << p.current() << "' (see --help)");
      const std::string flag = p.current();
      if (flag == "--help") {
        std::cout << kUsage;
        return std::nullopt;
      }
      std::string value = "true";
      if (is_switch(flag)) {
        p.no_value();
      } else {
        value = p.value();
      }
      if (flag == "--config") {
        config = value;
      } else if (flag == "--resume") {
        resume = value;
      } else {
        flags.emplace_back(flag, value);
      }
    }
  }
  Options o;
  json config_json;
  if (!config.empty()) {
    config_json = read_json_file(config, "--config");
    std::string resume_in_config;
    Options scratch;
    apply_json(scratch, config_json, "--config " + config, nullptr, &resume_in_config);
    if (resume.empty()) resume = resume_in_config;
  }
  if (!resume.empty()) {
    o.resume = resolve_checkpoint(resume);
    const weights::SafetensorsFile file(o.resume);
    const std::string meta = file.metadata_value("checkpoint");
    FARSEE_REQUIRE(!meta.empty(),
                   "--resume: '" << o.resume << "' is not a farsee-train checkpoint");
    const json info = json::parse(meta).value("info", json::object());
    apply_json(o, info.value("options", json::object()), "--resume " + o.resume);
  }
  if (!config.empty()) {
    std::string ignored;
    apply_json(o, config_json, "--config " + config, nullptr, &ignored);
    o.config = config;
  }
  for (const auto& [flag, value] : flags) apply(o, flag, value);
  FARSEE_REQUIRE(!o.data.empty() || o.memory_plan, "missing --data DIR (see --help)");
  FARSEE_REQUIRE(o.schedule != "step" || o.lr_step_size > 0,
                 "--lr-schedule step needs --lr-step-size N");
  return o;
}

void save_state(const std::string& path, const std::string& dtype, const net::FarSeeConfig& config,
                const net::HostTensors& state) {
  constexpr float kHalfMax = 65504.0f;  // the largest finite fp16
  weights::SafetensorsWriter w;
  w.set_metadata("preset", config.preset);
  w.set_metadata("num_classes", std::to_string(config.num_classes));
  w.set_metadata("config", net::config_to_json_text(config));
  w.set_metadata("generator", "farsee-train");
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    const net::HostTensor& t = state.at(spec.name);
    if (dtype == "fp16") {
      for (size_t i = 0; i < t.data.size(); ++i) {
        FARSEE_REQUIRE(std::fabs(t.data[i]) <= kHalfMax, "--save-dtype fp16: tensor '"
                                                             << spec.name << "' holds " << t.data[i]
                                                             << " at index " << i
                                                             << ", beyond fp16's range (+-65504)");
      }
    }
    w.add(spec.name, t.shape, t.data,
          dtype == "fp16" ? weights::FileDType::F16 : weights::FileDType::F32);
  }
  w.write(path);
}

int print_memory_plan(const Options& o) {
  const net::FarSeeConfig config = net::preset_config(o.preset);
  const net::TrainMemoryReport r =
      net::training_memory(config, o.batch, o.input_h, o.input_w, o.label_h ? o.label_h : o.input_h,
                           o.label_w ? o.label_w : o.input_w, parse_precision(o.precision));
  const double mib = 1024.0 * 1024.0;
  std::printf("training memory plan, preset %s, batch %d, %dx%d, %s activations:\n",
              config.preset.c_str(), o.batch, o.input_h, o.input_w, o.precision.c_str());
  std::printf(
      "  activations + activation gradients  %10.1f MiB (max-live lower bound %.1f MiB, "
      "without reuse %.1f MiB)\n",
      r.activation_arena_bytes / mib, r.activation_peak_live_bytes / mib, r.no_reuse_bytes / mib);
  std::printf("  weights, gradients, momenta         %10.1f MiB (3 x %.1f MiB)\n",
              3 * r.parameter_bytes / mib, r.parameter_bytes / mib);
  std::printf("  BN running + saved statistics       %10.2f MiB\n", r.bn_state_bytes / mib);
  std::printf(
      "  total                               %10.1f MiB (plus packed conv weights and the "
      "op workspace)\n",
      r.total_bytes() / mib);
  return 0;
}

// ---- learning rate ---------------------------------------------------------------------------

LrSchedule schedule_of(const Options& o) {
  LrSchedule s;
  s.kind = o.schedule;
  s.lr = o.lr;
  s.warmup_steps = o.warmup_steps;
  s.step_size = o.lr_step_size;
  s.gamma = o.lr_gamma;
  return s;
}

// ---- signals ---------------------------------------------------------------------------------

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int sig) {
  g_signal = sig;
}

// Installs the SIGINT/SIGTERM handlers for the run's lifetime, restoring the previous ones.
class SignalGuard {
 public:
  SignalGuard() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_signal = 0;
  }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

// Test hooks (environment; documented in the README): FARSEE_TRAIN_INJECT_NAN_AT_STEP=k poisons
// the input of step k (1-based) with a NaN, so its loss is NaN; FARSEE_TRAIN_RAISE_AT_STEP=k[:TERM]
// raises SIGINT (or SIGTERM) in this process right after step k.
int64_t env_step(const char* name, int* sig = nullptr) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  std::string text(v);
  if (sig) {
    *sig = SIGINT;
    const size_t colon = text.find(':');
    if (colon != std::string::npos) {
      const std::string s = text.substr(colon + 1);
      *sig = s == "TERM" ? SIGTERM : SIGINT;
      text = text.substr(0, colon);
    }
  }
  return std::atoll(text.c_str());
}

// ---- validation ------------------------------------------------------------------------------

// mIoU and pixel accuracy (tools/cityscapes/metrics.h: Cityscapes' protocol) of the current weights on the
// validation split at the input size (labels resized by nearest neighbour), BN in inference mode.
struct Validation {
  double miou = 0, pixel_accuracy = 0;
  std::vector<double> iou;  // NaN: class absent from ground truth and predictions
  int images = 0;
};

Validation validate(const CityscapesDataset& val, const DatasetOptions& vo,
                    const net::FarSeeConfig& config, const net::HostTensors& state,
                    Executor executor, int batch) {
  Context ctx;
  ctx.executor = executor;
  net::FarSeeNet net(config, state, ctx, DType::F32);
  const int n = int(std::min<size_t>(size_t(batch), val.size()));
  net.prepare(n, vo.input_h, vo.input_w, vo.label_height(), vo.label_width());
  ConfusionMatrix cm(config.num_classes);
  const size_t pixels = size_t(vo.label_height()) * vo.label_width();
  Validation v;
  for (size_t first = 0; first < val.size(); first += size_t(n)) {
    const Batch b = val.batch(int64_t(first / size_t(n)));
    net.set_input(b.input.data());
    net.forward();
    std::vector<uint8_t> pred = net.labels();
    const size_t count = std::min(size_t(n), val.size() - first);  // the last batch wraps around
    cm.add(b.labels.data(), pred.data(), count * pixels);
    v.images += int(count);
  }
  for (const std::optional<double>& iou : cm.ious()) v.iou.push_back(iou ? *iou : std::nan(""));
  v.miou = cm.mean_iou().value_or(0.0);
  v.pixel_accuracy = cm.pixel_accuracy().value_or(0.0);
  return v;
}

// ---- progress --------------------------------------------------------------------------------

class Progress {
 public:
  explicit Progress(int every) : every_(every), tty_(::isatty(::fileno(stdout)) != 0) {}
  ~Progress() { close(); }
  void step(int64_t done, bool last, const std::string& text) {
    if (!last && done % every_ != 0) return;
    if (tty_) {
      std::printf("\r%s\033[K", text.c_str());
      open_ = true;
    } else {
      std::printf("%s\n", text.c_str());
    }
    std::fflush(stdout);
  }
  // A line of its own (after the progress line, which is redrawn below it).
  void line(const std::string& text) {
    close();
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  }
  void close() {
    if (open_) std::printf("\n");
    open_ = false;
    std::fflush(stdout);
  }

 private:
  int every_;
  bool tty_, open_ = false;
};

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = long(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

// ---- the run ---------------------------------------------------------------------------------

// The class weights --class-weights asks for (empty: none). inverse-log reads every label map of
// `data` at its own size (the loader's trainId conversion, on `jobs` threads; the images are not
// decoded) and counts the classes in a fixed order: the same weights for any thread count.
std::vector<float> resolve_class_weights(const Options& o, const CityscapesDataset& data,
                                         int num_classes, int jobs) {
  if (o.class_weights != "inverse-log") {
    FARSEE_REQUIRE(o.class_weight_list.empty() || int(o.class_weight_list.size()) == num_classes,
                   "--class-weights: " << o.class_weight_list.size() << " weights for "
                                       << num_classes << " classes");
    return o.class_weight_list;
  }
  const std::vector<SamplePaths>& files = data.files();
  std::vector<std::vector<int64_t>> per_file(files.size(),
                                             std::vector<int64_t>(size_t(num_classes), 0));
  parallel_for(int(files.size()), std::max(jobs, 1), [&](int i, int) {
    const Image label = read_train_ids(files[size_t(i)].label, num_classes);
    for (uint8_t id : label.data) {
      if (id < num_classes) ++per_file[size_t(i)][id];
    }
  });
  std::vector<int64_t> counts(size_t(num_classes), 0);
  int64_t labelled = 0;
  for (const auto& f : per_file) {
    for (int c = 0; c < num_classes; ++c) {
      counts[size_t(c)] += f[size_t(c)];
      labelled += f[size_t(c)];
    }
  }
  FARSEE_REQUIRE(labelled > 0,
                 "--class-weights inverse-log: the training split has no labelled "
                 "pixel");
  std::vector<float> weights;
  for (int c = 0; c < num_classes; ++c) {
    const double share = double(counts[size_t(c)]) / double(labelled);
    weights.push_back(float(1.0 / std::log(1.02 + share)));
  }
  return weights;
}

net::HostTensors initial_parameters(const Options& o, const net::FarSeeConfig& config) {
  if (o.init.empty()) return net::training_init(config, o.seed);
  const weights::SafetensorsFile file(o.init);
  bool has_head = false;
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    if (spec.name.compare(0, 9, "backbone.") != 0 && file.contains(spec.name)) has_head = true;
  }
  if (has_head) return net::load_parameters(o.init, config);  // a complete weight file
  // Backbone only (a converted ImageNet ResNet-18): backbone.* tensors, other names ignored.
  std::vector<weights::ExpectedTensor> expected;
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    if (spec.name.compare(0, 9, "backbone.") == 0) expected.push_back({spec.name, spec.shape});
  }
  std::vector<std::string> unknown;
  const auto backbone = weights::read_expected(file, expected, &unknown);
  if (!unknown.empty()) {
    std::cerr << "farsee-train: --init " << o.init << ": ignoring " << unknown.size()
              << " tensors outside the backbone (" << unknown.front() << ", ...)\n";
  }
  const net::HostTensors b(backbone.begin(), backbone.end());
  std::printf("farsee-train: backbone from %s, head initialised with PyTorch's defaults\n",
              o.init.c_str());
  return net::training_init(config, o.seed, &b);
}

int run(const Options& o) {
  if (o.memory_plan) return print_memory_plan(o);
  net::MixedPrecision precision;
  precision.activations = parse_precision(o.precision);
  precision.init_scale = float(o.loss_scale);
  precision.growth_interval = o.loss_scale_growth_interval;
  const bool fp16 = precision.activations == DType::F16;
  std::string note;
  const Executor executor = choose_executor(o.executor, &note);
  if (!note.empty()) std::cerr << "farsee-train: " << note << "\n";
  net::FarSeeConfig config = net::preset_config(o.preset);
  if (o.num_classes > 0) config.num_classes = o.num_classes;
  DatasetOptions d;
  d.input_h = o.input_h;
  d.input_w = o.input_w;
  d.label_h = o.label_h;
  d.label_w = o.label_w;
  d.workers = o.workers;
  d.augmentation = o.augmentation == "paper" ? AugmentParams::paper() : AugmentParams{};
  if (o.scale_min > 0) {
    d.augmentation.scale_min = float(o.scale_min);
    d.augmentation.scale_max = float(o.scale_max);
  }
  d.augmentation.crop_h = o.crop_h;
  d.augmentation.crop_w = o.crop_w;
  d.batch = o.batch;
  d.shuffle = o.shuffle;
  d.augment = o.augment;
  d.seed = o.seed;
  d.num_classes = config.num_classes;
  const CityscapesDataset data(o.data, o.split, d);  // bad folders fail before the weights load
  if (o.benchmark_loader > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < o.benchmark_loader; ++k) data.batch(k);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "loader: %d batches of %d, input %dx%d, labels %dx%d, %s, %d workers: %.2f images/s\n",
        o.benchmark_loader, o.batch, o.input_h, o.input_w, d.label_height(), d.label_width(),
        o.augment ? "augmented" : "not augmented", o.workers,
        double(o.benchmark_loader) * o.batch / s);
    return 0;
  }
  std::optional<CityscapesDataset> val;
  DatasetOptions val_options = d;
  val_options.shuffle = false;
  val_options.augment = false;
  val_options.workers = 0;
  if (o.val_every > 0) val.emplace(o.data, o.val_split, val_options);
  const int64_t files = int64_t(data.size());
  const int64_t total =
      o.epochs > 0 ? (int64_t(o.epochs) * files + o.batch - 1) / o.batch : int64_t(o.steps);
  auto epoch_of = [&](int64_t step) { return step * o.batch / files; };

  // Start: a checkpoint or fresh weights.
  std::optional<Checkpoint> resumed;
  if (!o.resume.empty()) {
    resumed = read_checkpoint(o.resume);
    FARSEE_REQUIRE(resumed->config == config,
                   "--resume " << o.resume << ": the checkpoint is for preset "
                               << resumed->config.preset << " with " << resumed->config.num_classes
                               << " classes, not " << config.preset << " with "
                               << config.num_classes);
    const int64_t stored = resumed->info.value("data", json::object()).value("files", files);
    if (stored != files) {
      std::cerr << "farsee-train: warning: the checkpoint was written with " << stored
                << " training images, " << o.data << "/" << o.split << " holds " << files
                << ": the data order differs from the original run\n";
    }
  }
  Context ctx;
  ctx.executor = executor;
  std::optional<net::Trainer> trainer_storage;
  if (resumed) {
    trainer_storage.emplace(config, resumed->state, ctx, o.batch, o.input_h, o.input_w,
                            d.label_height(), d.label_width(), precision);
    trainer_storage->load_state(resumed->state, resumed->momenta, resumed->step);
    // The loss scaler of a mixed-precision run (absent: an fp32 run's checkpoint, a fresh one).
    const json amp = resumed->info.value("loss_scaler", json::object());
    if (fp16 && !amp.empty()) {
      net::LossScaleState ls;
      ls.scale = amp.at("scale").get<float>();
      ls.growth_tracker = amp.at("growth_tracker").get<int64_t>();
      ls.skipped_steps = amp.at("skipped_steps").get<int64_t>();
      trainer_storage->load_loss_scale(ls);
    }
  } else {
    trainer_storage.emplace(config, initial_parameters(o, config), ctx, o.batch, o.input_h,
                            o.input_w, d.label_height(), d.label_width(), precision);
  }
  net::Trainer& trainer = *trainer_storage;
  trainer.set_class_weights(
      resolve_class_weights(o, data, config.num_classes, std::max(o.workers, 1)));
  const int64_t start = resumed ? resumed->step : 0;
  double best_miou = -1;
  int64_t best_step = -1;
  std::string last_checkpoint = resumed ? o.resume : "";
  if (resumed) {
    best_miou = resumed->info.value("best_miou", -1.0);
    best_step = resumed->info.value("best_step", int64_t(-1));
  }
  std::printf(
      "farsee-train: %zu images in %s/%s, preset %s, batch %d, %dx%d, executor %s, %s, "
      "%.1f MiB on the executor (activation plan %.1f MiB), %lld steps%s\n",
      data.size(), o.data.c_str(), o.split.c_str(), config.preset.c_str(), o.batch, o.input_h,
      o.input_w, executor_name(executor),
      fp16 ? format("fp16 mixed precision (loss scale %g)", double(trainer.loss_scale().scale))
                 .c_str()
           : "fp32",
      double(trainer.device_bytes()) / (1 << 20),
      double(trainer.memory_plan().arena_bytes) / (1 << 20), static_cast<long long>(total),
      resumed ? format(", resuming at step %lld from %s", static_cast<long long>(start),
                       o.resume.c_str())
                    .c_str()
              : "");
  if (!trainer.class_weights().empty()) {
    std::string list;
    for (float w : trainer.class_weights()) list += (list.empty() ? "" : ",") + format("%.4g", w);
    std::printf("farsee-train: class weights%s: %s\n",
                o.class_weights == "inverse-log" ? " (inverse-log)" : "", list.c_str());
  }
  std::fflush(stdout);

  std::ofstream log;
  if (!o.log.empty()) {
    log.open(o.log, resumed ? std::ios::app : std::ios::trunc);
    FARSEE_REQUIRE(log.good(), "--log: cannot write '" << o.log << "'");
  }
  auto log_line = [&](const json& j) {
    if (!log.is_open()) return;
    log << j.dump() << "\n";
    log.flush();
  };
  if (!trainer.class_weights().empty()) {
    log_line({{"event", "class_weights"}, {"step", start}, {"weights", trainer.class_weights()}});
  }

  const std::string ckpt_dir = o.ckpt_dir.empty() ? "checkpoints" : o.ckpt_dir;
  // Periodic, final and best checkpoints only when asked for; a signal always writes one.
  const bool checkpoints_on = !o.ckpt_dir.empty() || o.ckpt_every > 0;
  auto make_checkpoint = [&](int64_t done) {
    Checkpoint c;
    c.config = config;
    c.step = done;
    c.state = trainer.state();
    c.momenta = trainer.momenta();
    json opts = options_to_json(o);
    c.info["options"] = opts;
    c.info["epoch"] = double(done * o.batch) / double(files);
    c.info["data"] = {{"files", files},
                      {"batch", o.batch},
                      {"seed", o.seed},
                      {"shuffle", o.shuffle},
                      {"augment", o.augment},
                      {"next_batch", done},
                      {"rng",
                       "stateless: each sample's draws hash (seed, position); the order is a "
                       "seeded permutation per epoch"}};
    c.info["best_miou"] = best_miou;
    c.info["best_step"] = best_step;
    if (fp16) {  // exact: a float's decimal form from nlohmann::json reads back bitwise
      const net::LossScaleState& ls = trainer.loss_scale();
      c.info["loss_scaler"] = {{"scale", ls.scale},
                               {"growth_tracker", ls.growth_tracker},
                               {"skipped_steps", ls.skipped_steps}};
    }
    return c;
  };
  Progress progress(o.print_every);
  auto write_periodic = [&](int64_t done) {
    const std::string path = (fs::path(ckpt_dir) / checkpoint_file_name(done)).string();
    write_checkpoint(path, make_checkpoint(done));
    last_checkpoint = path;
    prune_checkpoints(ckpt_dir, o.keep_last);
    log_line({{"event", "checkpoint"}, {"step", done}, {"path", path}});
    return path;
  };

  const SignalGuard signals;
  int raise_sig = SIGINT;
  const int64_t nan_at = env_step("FARSEE_TRAIN_INJECT_NAN_AT_STEP");
  const int64_t raise_at = env_step("FARSEE_TRAIN_RAISE_AT_STEP", &raise_sig);

  // Validation after `done` steps (0: the untrained weights, the baseline; never "best").
  auto run_validation = [&](int64_t done) {
    const double epoch_f = double(done * o.batch) / double(files);
    const Validation v = validate(*val, val_options, config, trainer.state(), executor, o.batch);
    const bool best = done > 0 && v.miou > best_miou;
    if (best) {
      best_miou = v.miou;
      best_step = done;
    }
    progress.line(
        format("validation at step %lld: mIoU %.4f, pixel accuracy %.4f (%d %s "
               "images)%s",
               static_cast<long long>(done), v.miou, v.pixel_accuracy, v.images,
               o.val_split.c_str(), best ? ", best so far" : ""));
    json iou = json::array();
    for (double x : v.iou) iou.push_back(std::isfinite(x) ? json(x) : json(nullptr));
    log_line({{"event", "val"},
              {"step", done},
              {"epoch", epoch_f},
              {"miou", v.miou},
              {"pixel_accuracy", v.pixel_accuracy},
              {"iou", iou},
              {"best", best}});
    if (best && checkpoints_on) {
      const std::string path = (fs::path(ckpt_dir) / "best.safetensors").string();
      write_checkpoint(path, make_checkpoint(done));
      log_line({{"event", "best"}, {"step", done}, {"miou", v.miou}, {"path", path}});
    }
  };
  if (val && start == 0) run_validation(0);

  double step_seconds = 0;
  int64_t timed_steps = 0;
  int64_t last_written = resumed ? start : -1;
  for (int64_t step = start; step < total; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    Batch b = data.batch(step);
    if (step + 1 == nan_at) b.input[0] = std::numeric_limits<float>::quiet_NaN();
    trainer.set_batch(b.input.data(), b.labels.data());
    const int64_t epoch = epoch_of(step);
    net::SgdArgs sgd;
    sgd.lr = float(learning_rate(schedule_of(o), step, total, epoch));
    sgd.momentum = float(o.momentum);
    sgd.weight_decay = float(o.weight_decay);
    const float loss = trainer.step(sgd);
    const int64_t done = step + 1;
    if (!std::isfinite(loss)) {
      progress.close();
      log_line({{"event", "error"}, {"step", done}, {"loss", std::isnan(loss) ? "nan" : "inf"}});
      FARSEE_REQUIRE(false, "step " << done << ": the loss is "
                                    << (std::isnan(loss) ? "NaN" : "Inf") << "; training stopped ("
                                    << (last_checkpoint.empty()
                                            ? std::string("no checkpoint was written")
                                            : "the last good checkpoint is " + last_checkpoint)
                                    << ")");
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The first step of a process pays one-time costs: left out of the rate when others follow.
    if (step > start || total - start == 1) {
      step_seconds += seconds;
      ++timed_steps;
    }
    const double per_step = timed_steps ? step_seconds / double(timed_steps) : seconds;
    const double images_per_s = per_step > 0 ? o.batch / per_step : 0.0;
    const double epoch_f = double(done * o.batch) / double(files);
    const net::LossScaleState& ls = trainer.loss_scale();
    progress.step(done, done == total,
                  format("step %lld/%lld epoch %.2f loss %.7f lr %.6g%s img/s %.2f ETA %s",
                         static_cast<long long>(done), static_cast<long long>(total), epoch_f,
                         double(loss), double(sgd.lr),
                         fp16 ? format(" scale %g skipped %lld", double(ls.scale),
                                       static_cast<long long>(ls.skipped_steps))
                                    .c_str()
                              : "",
                         images_per_s, format_duration(per_step * double(total - done)).c_str()));
    json step_line = {{"event", "step"},   {"step", done}, {"epoch", epoch_f},
                      {"loss", loss},      {"lr", sgd.lr}, {"img_per_s", images_per_s},
                      {"seconds", seconds}};
    if (fp16) {  // the scale after this step's update; "skipped": this step's update was skipped
      step_line["loss_scale"] = ls.scale;
      step_line["skipped"] = ls.last_step_skipped;
      step_line["skipped_steps"] = ls.skipped_steps;
    }
    log_line(step_line);
    if (done == raise_at) std::raise(raise_sig);

    if (val && (done % o.val_every == 0 || done == total)) run_validation(done);
    if (o.ckpt_every > 0 && done % o.ckpt_every == 0) {
      write_periodic(done);
      last_written = done;
    }
    if (g_signal != 0) {
      const int sig = g_signal;
      std::string path = last_checkpoint;
      if (last_written != done) path = write_periodic(done);
      progress.line(format("farsee-train: %s at step %lld: checkpoint %s; resume with --resume %s",
                           sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(done),
                           path.c_str(), ckpt_dir.c_str()));
      return sig == SIGTERM ? 143 : 130;
    }
  }
  progress.close();
  if (checkpoints_on && last_written != total && total > start) {
    std::printf("checkpoint %s\n", write_periodic(total).c_str());
  }
  if (!o.save.empty()) {
    save_state(o.save, o.save_dtype, config, trainer.state());
    std::printf("saved %s\n", o.save.c_str());
  }
  return 0;
}

}  // namespace

double learning_rate(const LrSchedule& s, int64_t step, int64_t total, int64_t epoch) {
  if (step < s.warmup_steps) return s.lr * double(step + 1) / double(s.warmup_steps);
  const double t = double(step - s.warmup_steps);
  const double T = double(std::max<int64_t>(total - s.warmup_steps, 1));
  if (s.kind == "poly") return s.lr * std::pow(std::max(0.0, 1.0 - t / T), 0.9);
  if (s.kind == "cosine") return s.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(t / T, 1.0)));
  if (s.kind == "step") {
    FARSEE_REQUIRE(s.step_size > 0, "--lr-schedule step needs --lr-step-size N");
    return s.lr * std::pow(s.gamma, double(step / s.step_size));
  }
  if (s.kind == "paper") return s.lr * std::pow(0.9, double(epoch / 50));
  FARSEE_REQUIRE(s.kind == "constant", "unknown learning-rate schedule '" << s.kind << "'");
  return s.lr;
}

int train_main(const std::vector<std::string>& args) {
  return run_program("farsee-train", [&] {
    const std::optional<Options> o = parse(args);
    return o ? run(*o) : 0;
  });
}

}  // namespace farsee::tools
