// farsee-train's flags. kFlags is the one place a flag is written: its name (the command line's
// --name, the key of --config and of a checkpoint's options), its value's name, its --help text,
// how it sets the Options field and what a checkpoint stores of it.
#include "tools/train/options.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <tuple>

#include "kernels/core/check.h"
#include "net/checkpoint.h"
#include "tools/cli/cli.h"
#include "tools/cli/flags.h"
#include "tools/data/image_io.h"
#include "weights/safetensors.h"

namespace farsee::tools {
namespace {

using nlohmann::json;

using Setter = void (*)(Options&, const std::string& value, const char* flag);
using Getter = json (*)(const Options&);

enum Section { kModel, kOptimisation, kOutput };
const char* const kSectionTitles[] = {"Data and model", "Optimisation",
                                      "Validation, checkpoints, logs"};

struct Flag {
  Section section;
  const char* name;   // without "--"
  const char* value;  // the value's name in --help; nullptr: a switch (true / false in JSON)
  const char* help;   // --help text, '\n' between its lines
  Setter set;         // nullptr: --config, --resume and --help, which parse_options handles
  Getter get;         // the value a checkpoint stores (null json: none now); nullptr: never
};

double parse_double(const std::string& text, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  FARSEE_REQUIRE(!text.empty() && *end == '\0' && std::isfinite(v) && v >= 0,
                 what << ": '" << text << "' is not a non-negative number");
  return v;
}

bool parse_bool(const std::string& text, const char* flag) {
  FARSEE_REQUIRE(text == "true" || text == "false",
                 flag << ": '" << text << "' is not true or false");
  return text == "true";
}

void require_one_of(const std::string& value, const char* flag,
                    std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (value == c) return;
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  FARSEE_REQUIRE(false, flag << ": '" << value << "' is not one of " << list);
}

std::string size_text(int h, int w) {
  return std::to_string(h) + "x" + std::to_string(w);
}

// The common kinds of field: text, an integer >= Min, a non-negative number.
template <std::string Options::*F>
void set_text(Options& o, const std::string& v, const char*) {
  o.*F = v;
}
template <int Options::*F, int Min>
void set_int(Options& o, const std::string& v, const char* flag) {
  o.*F = parse_int(v, flag, Min);
}
template <double Options::*F>
void set_number(Options& o, const std::string& v, const char* flag) {
  o.*F = parse_double(v, flag);
}
template <auto F>
json get(const Options& o) {
  return json(o.*F);
}
// Stored only when positive (absent: the default).
template <int Options::*F>
json get_positive(const Options& o) {
  return o.*F > 0 ? json(o.*F) : json();
}

void set_steps(Options& o, const std::string& v, const char* flag) {
  o.steps = parse_int(v, flag, 1);
  o.epochs = 0;
}
void set_epochs(Options& o, const std::string& v, const char* flag) {
  o.epochs = parse_int(v, flag, 1);
  o.steps = 0;
}
json get_steps(const Options& o) {
  return o.epochs > 0 ? json() : json(o.steps);
}
void set_schedule(Options& o, const std::string& v, const char* flag) {
  require_one_of(v, flag, {"constant", "poly", "cosine", "step", "paper"});
  o.schedule = v;
}
void set_precision(Options& o, const std::string& v, const char*) {
  parse_precision(v);
  o.precision = v;
}
// Data parallelism's flags.
void set_bn(Options& o, const std::string& v, const char* flag) {
  require_one_of(v, flag, {"sync", "local"});
  o.bn = v;
}
// Stored only when not the default (checkpoints of one process keep their keys).
json get_bn(const Options& o) {
  return o.bn == "sync" ? json() : json(o.bn);
}
void set_collective_timeout(Options& o, const std::string& v, const char* flag) {
  o.collective_timeout = parse_double(v, flag);
  FARSEE_REQUIRE(o.collective_timeout > 0, flag << ": " << v << " must be positive");
}
void set_loss_scale(Options& o, const std::string& v, const char* flag) {
  o.loss_scale = parse_double(v, flag);
  FARSEE_REQUIRE(o.loss_scale > 0 && o.loss_scale <= double(std::numeric_limits<float>::max()),
                 flag << ": " << v << " is not a positive fp32 number");
}
void set_input_size(Options& o, const std::string& v, const char* flag) {
  std::tie(o.input_h, o.input_w) = parse_size(v, flag);
  FARSEE_REQUIRE(
      o.input_h % 32 == 0 && o.input_w % 32 == 0,
      flag << " " << o.input_h << "x" << o.input_w << ": height and width must be multiples of 32");
}
json get_input_size(const Options& o) {
  return size_text(o.input_h, o.input_w);
}
void set_label_size(Options& o, const std::string& v, const char* flag) {
  std::tie(o.label_h, o.label_w) = parse_size(v, flag);
}
json get_label_size(const Options& o) {
  return o.label_h > 0 ? json(size_text(o.label_h, o.label_w)) : json();
}
void set_augmentation(Options& o, const std::string& v, const char* flag) {
  require_one_of(v, flag, {"flip", "paper"});
  o.augmentation = v;
}
void set_augment_on(Options& o, const std::string& v, const char* flag) {
  require_one_of(v, flag, {"host", "executor"});
  o.augment_on = v;
}
void set_scale_range(Options& o, const std::string& v, const char* flag) {
  const std::vector<std::string> r = split_list(v, flag);
  FARSEE_REQUIRE(r.size() == 2, flag << ": '" << v << "' is not A,B");
  o.scale_min = parse_double(r[0], flag);
  o.scale_max = parse_double(r[1], flag);
  FARSEE_REQUIRE(o.scale_min > 0 && o.scale_min <= o.scale_max,
                 flag << ": '" << v << "' needs 0 < A <= B");
}
json get_scale_range(const Options& o) {
  return o.scale_min > 0 ? json(json(o.scale_min).dump() + "," + json(o.scale_max).dump()) : json();
}
void set_crop(Options& o, const std::string& v, const char* flag) {
  std::tie(o.crop_h, o.crop_w) = parse_size(v, flag);
}
json get_crop(const Options& o) {
  return o.crop_h > 0 ? json(size_text(o.crop_h, o.crop_w)) : json();
}
void set_class_weights(Options& o, const std::string& v, const char* flag) {
  o.class_weight_list.clear();
  if (v != "inverse-log") {
    for (const std::string& item : split_list(v, flag)) {
      o.class_weight_list.push_back(float(parse_double(item, flag)));
    }
  }
  o.class_weights = v;
}
json get_class_weights(const Options& o) {
  return o.class_weights.empty() ? json() : json(o.class_weights);
}
void set_no_augment(Options& o, const std::string& v, const char* flag) {
  o.augment = !parse_bool(v, flag);
}
json get_no_augment(const Options& o) {
  return !o.augment;
}
void set_no_shuffle(Options& o, const std::string& v, const char* flag) {
  o.shuffle = !parse_bool(v, flag);
}
json get_no_shuffle(const Options& o) {
  return !o.shuffle;
}
void set_seed(Options& o, const std::string& v, const char* flag) {
  o.seed = uint64_t(parse_int(v, flag, 0));
}
void set_save_dtype(Options& o, const std::string& v, const char* flag) {
  FARSEE_REQUIRE(v == "fp32" || v == "fp16", flag << " '" << v << "': expected fp32 or fp16");
  o.save_dtype = v;
}
json get_val_data(const Options& o) {  // stored only when given
  return o.val_data.empty() ? json() : json(o.val_data);
}
void set_memory_plan(Options& o, const std::string& v, const char* flag) {
  o.memory_plan = parse_bool(v, flag);
}

// The flags in --help order.
const Flag kFlags[] = {
    {kModel, "data", "DIR|FILE", "dataset root, or a pack of --split (farsee-pack) (required)",
     set_text<&Options::data>, get<&Options::data>},
    {kModel, "split", "NAME", "which split to train on (default train)", set_text<&Options::split>,
     get<&Options::split>},
    {kModel, "preset", "NAME", "paper (default) | rtseg | tiny-paper | tiny-rtseg",
     set_text<&Options::preset>, get<&Options::preset>},
    {kModel, "num-classes", "N", "classes of the logits (default: the preset's)",
     set_int<&Options::num_classes, 0>, get<&Options::num_classes>},
    {kModel, "init", "FILE",
     "safetensors start: every tensor of the preset (weights and BN running\n"
     "statistics, named as in tools/pytorch/reference/NAMES.md), or only\n"
     "backbone.* (a converted ImageNet ResNet-18; the head then gets PyTorch's\n"
     "default init). Default: from scratch, torchvision's Kaiming init for\n"
     "the backbone, PyTorch's defaults for the head (--seed)",
     set_text<&Options::init>, get<&Options::init>},
    {kModel, "input-size", "HxW",
     "network input, multiples of 32 (default 512x1024); images are resized\n"
     "to it bilinearly (as farsee-infer), labels by nearest neighbour",
     set_input_size, get_input_size},
    {kModel, "label-size", "HxW",
     "size the loss is computed at (default: the input size); labels are\n"
     "resized to it by nearest neighbour, logits bilinearly",
     set_label_size, get_label_size},
    {kModel, "augmentation", "A",
     "paper (default): the paper's augmentation: random scale, crop,\n"
     "horizontal flip, rotation up to 10 degrees, colour jitter and noise |\n"
     "flip: random horizontal flips only",
     set_augmentation, get<&Options::augmentation>},
    {kModel, "scale-range", "A,B", "random scale range (default 0.5,2 with paper, 1,1 with flip)",
     set_scale_range, get_scale_range},
    {kModel, "crop", "HxW",
     "crop window in label pixels of the scaled image, padded with label 255\n"
     "(default: the label size)",
     set_crop, get_crop},
    {kModel, "no-augment", nullptr, "no augmentation at all", set_no_augment, get_no_augment},
    {kModel, "class-weights", "W",
     "weights of the classes in the loss (F.cross_entropy's weight=: a\n"
     "weighted mean), for rare classes: W0,W1,... (one per class, >= 0) |\n"
     "inverse-log: 1 / ln(1.02 + f_c), f_c the share of class c among the\n"
     "labelled pixels of the training split (ENet's weighting), computed at\n"
     "the start and printed. Default: none (every class 1)",
     set_class_weights, get_class_weights},
    {kModel, "workers", "N",
     "decoding/augmentation threads with a bounded prefetch queue (default:\n"
     "the CPUs less one, at most 16; 0: on the training thread); the batches\n"
     "do not depend on N. One thread makes about 14 images/s at 1024x2048",
     set_int<&Options::workers, 0>, nullptr},
    {kModel, "augment-on", "W",
     "host (default): worker threads decode and augment | executor: they only\n"
     "decode; the augmentation runs as an op on the executor before the forward\n"
     "(kernels/augment.h). The batches are bitwise the same either way",
     set_augment_on, nullptr},
    {kModel, "benchmark-loader", "N",
     "time N batches of the loader and exit: 'host:' the samples decoded to\n"
     "uint8 only (the host's part when the augmentation runs on the\n"
     "executor), 'loader:' decoded and augmented on the host; images/s in\n"
     "all and per core",
     set_int<&Options::benchmark_loader, 1>, nullptr},
    {kModel, "no-shuffle", nullptr,
     "files in sorted path order; batch k holds files k*B .. k*B+B-1\n"
     "(wrapping around)",
     set_no_shuffle, get_no_shuffle},
    {kModel, "seed", "N", "seed of the shuffling, augmentation and initial weights (default 0)",
     set_seed, get<&Options::seed>},
    {kOptimisation, "steps", "N", "SGD steps (default 100)", set_steps, get_steps},
    {kOptimisation, "epochs", "N", "instead of --steps: ceil(N * images / batch) steps", set_epochs,
     get_positive<&Options::epochs>},
    {kOptimisation, "batch", "N", "images per step and rank (default 8; N ranks: global N x B)",
     set_int<&Options::batch, 1>, get<&Options::batch>},
    {kOptimisation, "lr", "X", "base learning rate (default 0.01)", set_number<&Options::lr>,
     get<&Options::lr>},
    {kOptimisation, "momentum", "X", "SGD momentum (default 0.9)", set_number<&Options::momentum>,
     get<&Options::momentum>},
    {kOptimisation, "weight-decay", "X", "weight decay on every parameter (default 1e-4)",
     set_number<&Options::weight_decay>, get<&Options::weight_decay>},
    {kOptimisation, "lr-schedule", "S",
     "constant | poly (default): lr * (1 - t / T)^0.9 |\n"
     "cosine: lr * (1 + cos(pi * t / T)) / 2 |\n"
     "step: lr * gamma^floor(step / --lr-step-size) |\n"
     "paper: lr * 0.9^floor(epoch / 50) (the paper's recipe)\n"
     "(t, T: step and steps counted after the warm-up)",
     set_schedule, get<&Options::schedule>},
    {kOptimisation, "lr-step-size", "N", "steps between decays of the step schedule",
     set_int<&Options::lr_step_size, 1>, get_positive<&Options::lr_step_size>},
    {kOptimisation, "lr-gamma", "X", "decay factor of the step schedule (default 0.1)",
     set_number<&Options::lr_gamma>, get<&Options::lr_gamma>},
    {kOptimisation, "warmup-steps", "N",
     "linear warm-up: lr * (step + 1) / N for the first N steps (default 0)",
     set_int<&Options::warmup_steps, 0>, get<&Options::warmup_steps>},
    {kOptimisation, "precision", "P",
     "fp32 (default) | tf32: fp32 storage and arithmetic, the convolutions\n"
     "(forward, dgrad, wgrad) with TF32 operands on tensor cores (PyTorch's\n"
     "default for fp32 convs; cuda/reference executors, cpu refuses it) |\n"
     "fp16: mixed precision (torch.autocast + GradScaler):\n"
     "fp16 activations, activation gradients and tensor-core conv operands\n"
     "(fp32 accumulation), fp32 master weights, gradients, momenta and BN;\n"
     "dynamic loss scaling: a step with a NaN/Inf gradient is skipped and\n"
     "the scale halved, 2000 finite steps in a row double it. Validation\n"
     "and --save use the fp32 weights",
     set_precision, get<&Options::precision>},
    {kOptimisation, "loss-scale", "X", "fp16: initial loss scale (default 65536 = 2^16)",
     set_loss_scale, get<&Options::loss_scale>},
    {kOptimisation, "loss-scale-growth-interval", "N",
     "fp16: finite steps in a row that double the scale (default 2000)",
     set_int<&Options::loss_scale_growth_interval, 1>, get<&Options::loss_scale_growth_interval>},
    {kOptimisation, "executor", "E",
     "auto (default: cuda if usable, else cpu) | cuda | cpu | reference",
     set_text<&Options::executor>, get<&Options::executor>},
    {kOptimisation, "bn", "MODE",
     "mpirun -np N (N > 1): sync (default): BN statistics of the global\n"
     "batch (all-reduced per-channel sums) | local: each rank's own batch\n"
     "(plain DDP); one process: no effect",
     set_bn, get_bn},
    {kOptimisation, "collective-timeout", "S",
     "mpirun: a collective (all-reduce) that has not finished after S\n"
     "seconds ends the job, naming the rank (a dead or hung rank; default 60)",
     set_collective_timeout, nullptr},
    {kOutput, "val-every", "N",
     "mIoU on --val-split every N steps and at the end (default 0: never)",
     set_int<&Options::val_every, 0>, get<&Options::val_every>},
    {kOutput, "val-split", "NAME", "split to validate on (default val)",
     set_text<&Options::val_split>, get<&Options::val_split>},
    {kOutput, "val-data", "DIR|FILE",
     "where --val-split is (default: --data): a folder, or a pack of that\n"
     "split (farsee-pack; a pack holds one split)",
     set_text<&Options::val_data>, get_val_data},
    {kOutput, "ckpt-every", "N",
     "checkpoint every N steps (default 0: none periodic); the last one is\n"
     "also written at the end when --ckpt-dir or --ckpt-every is given",
     set_int<&Options::ckpt_every, 0>, get<&Options::ckpt_every>},
    {kOutput, "ckpt-dir", "DIR",
     "checkpoint folder (default checkpoints): ckpt-<step>.safetensors\n"
     "(weights, momenta, BN statistics, step, epoch, data order, RNG state,\n"
     "options; written atomically) and best.safetensors (best val mIoU),\n"
     "written when --ckpt-dir or --ckpt-every is given (a signal always\n"
     "writes one)",
     set_text<&Options::ckpt_dir>, get<&Options::ckpt_dir>},
    {kOutput, "keep-last", "K", "periodic checkpoints kept (default 3)",
     set_int<&Options::keep_last, 1>, get<&Options::keep_last>},
    {kOutput, "resume", "DIR|FILE",
     "continue a run from a checkpoint (DIR: its latest): bitwise the run\n"
     "that wrote it. Its options are the defaults; flags given here override\n"
     "them (e.g. --steps to train longer)",
     nullptr, nullptr},
    {kOutput, "config", "FILE.json",
     "any flag as {\"name\": value} (\"lr\": 0.1, \"no-augment\": true, ...);\n"
     "command-line flags override it",
     nullptr, nullptr},
    {kOutput, "log", "FILE", "metrics as JSON lines (step, val, checkpoint events)",
     set_text<&Options::log>, get<&Options::log>},
    {kOutput, "print-every", "N",
     "progress every N steps (default 1): redrawn in place on a terminal,\n"
     "plain lines otherwise",
     set_int<&Options::print_every, 1>, get<&Options::print_every>},
    {kOutput, "save", "FILE", "final weights and BN running statistics (written atomically)",
     set_text<&Options::save>, get<&Options::save>},
    {kOutput, "save-dtype", "D",
     "fp32 (default) | fp16: the dtype --save stores (fp16: half the size;\n"
     "a value fp16 cannot hold is an error naming the tensor)",
     set_save_dtype, get<&Options::save_dtype>},
    {kOutput, "memory-plan", nullptr,
     "print the training memory plan for --preset, --batch and\n"
     "--input-size (nothing allocated, no --data needed) and exit",
     set_memory_plan, nullptr},
    {kOutput, "help", nullptr, "this text", nullptr, nullptr},
};

const char* const kUsageHead =
    "usage: farsee-train --data DIR|FILE [options]\n"
    "\n"
    "Trains FarSee-Net with SGD (torch.optim.SGD semantics) on a Cityscapes-layout folder:\n"
    "DIR/leftImg8bit/<split>/<city>/*_leftImg8bit.png with DIR/gtFine/<split>/<city>/\n"
    "*_gtFine_labelIds.png (labelIds mapped to the 19 trainIds, every other id to 255),\n"
    "or a pack of one split made by farsee-pack (the same batches, bit for bit).\n";
const char* const kUsageTail =
    "\n"
    "SIGINT / SIGTERM write a checkpoint into --ckpt-dir and exit with 130 / 143; under mpirun\n"
    "every rank stops after the same step and rank 0 writes it (Ctrl-C at mpirun's terminal\n"
    "reaches the ranks: mpirun exits 130). A NaN or Inf loss stops the run with an error naming\n"
    "the step; checkpoints are only written after finite losses.\n";

const Flag* find_flag(const std::string& name) {
  for (const Flag& f : kFlags) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

// Sets one option from the flag `flag` ("--name") and its value ("true"/"false" for switches).
void apply(Options& o, const std::string& flag, const std::string& value) {
  const Flag* f = flag.compare(0, 2, "--") == 0 ? find_flag(flag.substr(2)) : nullptr;
  FARSEE_REQUIRE(f && f->set, "unknown option '" << flag << "' (see --help)");
  f->set(o, value, flag.c_str());
}

}  // namespace

std::string usage_text() {
  constexpr size_t kColumn = 26;  // where the help text starts
  std::ostringstream out;
  out << kUsageHead;
  const Flag* previous = nullptr;
  for (const Flag& f : kFlags) {
    if (!previous || previous->section != f.section) {
      out << "\n" << kSectionTitles[f.section] << ":\n";
    }
    previous = &f;
    std::string left = std::string("  --") + f.name + (f.value ? std::string(" ") + f.value : "");
    // A flag too long for the column puts its help on the next line.
    left += left.size() + 2 <= kColumn ? std::string(kColumn - left.size(), ' ')
                                       : "\n" + std::string(kColumn, ' ');
    std::string help = f.help;
    for (size_t nl = help.find('\n'); nl != std::string::npos; nl = help.find('\n', nl + 1)) {
      help.insert(nl + 1, kColumn, ' ');
    }
    out << left << help << "\n";
  }
  out << kUsageTail;
  return out.str();
}

json options_to_json(const Options& o) {
  json j = json::object();
  for (const Flag& f : kFlags) {
    if (!f.get) continue;
    json v = f.get(o);
    if (!v.is_null()) j[f.name] = std::move(v);
  }
  return j;
}

namespace {

// apply_options_json with the "resume" key allowed (--config FILE may name the checkpoint).
void apply_json(Options& o, const json& j, const std::string& where, std::string* resume) {
  FARSEE_REQUIRE(j.is_object(), where << ": not a JSON object of flags");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
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
      FARSEE_REQUIRE(flag != "--config", "--config cannot be nested");
      FARSEE_REQUIRE(flag != "--help", "--help is not a configuration flag");
      if (flag == "--resume") {
        FARSEE_REQUIRE(resume, "--resume is not an option of a checkpoint");
        *resume = value;
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

// The command line: its flags in order, and the values of --config and --resume. False: --help.
struct CommandLine {
  std::vector<std::pair<std::string, std::string>> flags;
  std::string config, resume;
};

// Every flag of kFlags on the command line (tools/cli/flags.h), in order; the values are checked
// when the layers are applied (parse_options).
bool read_command_line(const std::vector<std::string>& args, CommandLine& cl) {
  Flags flags("farsee-train", usage_text());
  for (const Flag& f : kFlags) {
    const std::string flag = std::string("--") + f.name;
    if (flag == "--help") continue;  // Flags' own
    if (!f.value) {
      flags.switch_(flag, [&cl, flag] { cl.flags.emplace_back(flag, "true"); });
    } else if (flag == "--config" || flag == "--resume") {
      flags.text(flag, flag == "--config" ? cl.config : cl.resume);
    } else {
      flags.value(flag, [&cl, flag](const std::string& v) { cl.flags.emplace_back(flag, v); });
    }
  }
  return flags.parse(args);
}

// The options stored in the checkpoint `path` (a file or a folder: its latest).
json checkpoint_options(const std::string& file) {
  const weights::SafetensorsFile st(file);
  const std::string meta = st.metadata_value("checkpoint");
  FARSEE_REQUIRE(!meta.empty(), "--resume: '" << file << "' is not a farsee-train checkpoint");
  const json info = json::parse(meta).value("info", json::object());
  return info.value("options", json::object());
}

}  // namespace

void apply_options_json(Options& o, const json& j, const std::string& where) {
  apply_json(o, j, where, nullptr);
}

std::optional<Options> parse_options(const std::vector<std::string>& args) {
  CommandLine cl;
  if (!read_command_line(args, cl)) return std::nullopt;  // --help: the usage is printed
  Options o;
  json config;
  if (!cl.config.empty()) {
    config = read_json_file(cl.config, "--config");
    std::string resume_in_config;
    Options scratch;  // checks the file before the checkpoint is read
    apply_json(scratch, config, "--config " + cl.config, &resume_in_config);
    if (cl.resume.empty()) cl.resume = resume_in_config;
  }
  if (!cl.resume.empty()) {
    o.resume = resolve_checkpoint(cl.resume);
    apply_json(o, checkpoint_options(o.resume), "--resume " + o.resume, nullptr);
  }
  if (!cl.config.empty()) {
    std::string ignored;
    apply_json(o, config, "--config " + cl.config, &ignored);
  }
  for (const auto& [flag, value] : cl.flags) apply(o, flag, value);
  FARSEE_REQUIRE(!o.data.empty() || o.memory_plan, "missing --data DIR (see --help)");
  FARSEE_REQUIRE(o.schedule != "step" || o.lr_step_size > 0,
                 "--lr-schedule step needs --lr-step-size N");
  return o;
}

}  // namespace farsee::tools
