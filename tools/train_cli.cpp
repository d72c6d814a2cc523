// farsee-train, first version: SGD training of FarSee-Net on a Cityscapes-layout folder
// (tools/dataset.h) with net::Trainer, printing each step's loss; --save writes the final weights
// and BN running statistics (PyTorch names, fp32) atomically.
#include "tools/train_cli.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "kernels/core/check.h"
#include "net/config.h"
#include "net/parameters.h"
#include "net/trainer.h"
#include "tools/cli.h"
#include "tools/dataset.h"
#include "tools/image_io.h"
#include "weights/safetensors.h"

namespace farsee::tools {
namespace {

const char* kUsage = R"(usage: farsee-train --data DIR [options]

Trains FarSee-Net with SGD (torch.optim.SGD semantics) on a Cityscapes-layout folder:
DIR/leftImg8bit/<split>/<city>/*_leftImg8bit.png with DIR/gtFine/<split>/<city>/
*_gtFine_labelIds.png (labelIds mapped to the 19 trainIds, every other id to 255).

  --data DIR              dataset root (required)
  --split train|val       which split to train on (default train)
  --preset NAME           paper (default) | rtseg | tiny-paper | tiny-rtseg
  --init FILE             safetensors weights and BN running statistics to start from (DESIGN.md
                          names); default: deterministic random weights (--seed)
  --steps N               SGD steps (default 100)
  --batch N               images per step (default 8)
  --lr X                  base learning rate (default 0.01)
  --momentum X            SGD momentum (default 0.9)
  --weight-decay X        weight decay on every parameter (default 1e-4)
  --lr-schedule S         constant | poly (default): lr * (1 - step / steps)^0.9
  --input-size HxW        network input, multiples of 32 (default 512x1024); images are resized
                          to it bilinearly (as farsee-infer), labels by nearest neighbour
  --label-size HxW        labels (the loss) at this size, default the input size; the paper
                          feeds 512x1024 and supervises at 1024x2048
  --no-augment            no augmentation (default: the paper's: random scale, crop, horizontal
                          flip, rotation up to 10 degrees, colour jitter and noise)
  --scale-range A,B       random scale range (default 0.5,2)
  --crop HxW              crop window in label pixels of the scaled image, padded with label 255
                          (default: the label size)
  --workers N             decoding/augmentation threads with a bounded prefetch queue (default:
                          the CPUs less one, at most 16; 0: on the training thread); one thread
                          makes about 14 images/s at 1024x2048 (PNG decoding dominates)
  --benchmark-loader N    time N batches of the loader, print images/s and exit
  --no-shuffle            files in sorted path order; batch k holds files k*B .. k*B+B-1
                          (wrapping around)
  --seed N                seed of the shuffling, flips and random weights (default 0)
  --executor E            auto (default) | cuda | reference | emu
  --save FILE             final weights and BN running statistics (fp32, written atomically)
  --memory-plan           print the training memory plan for --preset, --batch and
                          --input-size (nothing allocated, no --data needed) and exit
  --help                  this text
)";

struct Options {
  std::string data, split = "train", preset = "paper", init, save, executor = "auto";
  int steps = 100, batch = 8;
  double lr = 0.01, momentum = 0.9, weight_decay = 1e-4;
  std::string schedule = "poly";
  int input_h = 512, input_w = 1024;
  int label_h = 0, label_w = 0, crop_h = 0, crop_w = 0,
      workers = std::clamp(int(std::thread::hardware_concurrency()) - 1, 1, 16);
  int benchmark_loader = 0;
  float scale_min = 0.5f, scale_max = 2.0f;
  bool augment = true, shuffle = true, memory_plan = false;
  uint64_t seed = 0;
};

double parse_double(const std::string& text, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  FARSEE_REQUIRE(!text.empty() && *end == '\0' && std::isfinite(v) && v >= 0,
                 what << ": '" << text << "' is not a non-negative number");
  return v;
}

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  ArgParser args(argc, argv);
  while (args.next()) {
    FARSEE_REQUIRE(!args.positional(),
                   "unexpected argument '" << args.current() << "' (see --help)");
    if (args.is("--help")) {
      std::cout << kUsage;
      return std::nullopt;
    } else if (args.is("--data")) {
      o.data = args.value();
    } else if (args.is("--split")) {
      o.split = args.value();
      FARSEE_REQUIRE(o.split == "train" || o.split == "val",
                     "--split: '" << o.split << "' is not one of train, val");
    } else if (args.is("--preset")) {
      o.preset = args.value();
    } else if (args.is("--init")) {
      o.init = args.value();
    } else if (args.is("--steps")) {
      o.steps = parse_int(args.value(), "--steps", 1);
    } else if (args.is("--batch")) {
      o.batch = parse_int(args.value(), "--batch", 1);
    } else if (args.is("--lr")) {
      o.lr = parse_double(args.value(), "--lr");
    } else if (args.is("--momentum")) {
      o.momentum = parse_double(args.value(), "--momentum");
    } else if (args.is("--weight-decay")) {
      o.weight_decay = parse_double(args.value(), "--weight-decay");
    } else if (args.is("--lr-schedule")) {
      o.schedule = args.value();
      FARSEE_REQUIRE(o.schedule == "constant" || o.schedule == "poly",
                     "--lr-schedule: '" << o.schedule << "' is not one of constant, poly");
    } else if (args.is("--input-size")) {
      std::tie(o.input_h, o.input_w) = parse_size(args.value(), "--input-size");
      FARSEE_REQUIRE(o.input_h % 32 == 0 && o.input_w % 32 == 0,
                     "--input-size " << o.input_h << "x" << o.input_w
                                     << ": height and width must be multiples of 32");
    } else if (args.is("--label-size")) {
      std::tie(o.label_h, o.label_w) = parse_size(args.value(), "--label-size");
    } else if (args.is("--crop")) {
      std::tie(o.crop_h, o.crop_w) = parse_size(args.value(), "--crop");
    } else if (args.is("--scale-range")) {
      const std::vector<std::string> r = split_list(args.value(), "--scale-range");
      FARSEE_REQUIRE(r.size() == 2, "--scale-range: two numbers A,B");
      o.scale_min = float(parse_double(r[0], "--scale-range"));
      o.scale_max = float(parse_double(r[1], "--scale-range"));
      FARSEE_REQUIRE(o.scale_min > 0 && o.scale_min <= o.scale_max,
                     "--scale-range " << r[0] << "," << r[1] << ": need 0 < A <= B");
    } else if (args.is("--workers")) {
      o.workers = parse_int(args.value(), "--workers", 0);
    } else if (args.is("--benchmark-loader")) {
      o.benchmark_loader = parse_int(args.value(), "--benchmark-loader", 1);
    } else if (args.is("--no-augment")) {
      args.no_value();
      o.augment = false;
    } else if (args.is("--no-shuffle")) {
      args.no_value();
      o.shuffle = false;
    } else if (args.is("--seed")) {
      o.seed = uint64_t(parse_int(args.value(), "--seed", 0));
    } else if (args.is("--executor")) {
      o.executor = args.value();
    } else if (args.is("--save")) {
      o.save = args.value();
    } else if (args.is("--memory-plan")) {
      args.no_value();
      o.memory_plan = true;
    } else {
      FARSEE_REQUIRE(false, "unknown option '" << args.current() << "' (see --help)");
    }
  }
  FARSEE_REQUIRE(!o.data.empty() || o.memory_plan, "missing --data DIR (see --help)");
  return o;
}

void save_state(const std::string& path, const net::FarSeeConfig& config,
                const net::HostTensors& state) {
  weights::SafetensorsWriter w;
  w.set_metadata("preset", config.preset);
  w.set_metadata("num_classes", std::to_string(config.num_classes));
  w.set_metadata("config", net::config_to_json_text(config));
  w.set_metadata("generator", "farsee-train");
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    const net::HostTensor& t = state.at(spec.name);
    w.add(spec.name, t.shape, t.data);
  }
  w.write(path);
}

int print_memory_plan(const Options& o) {
  const net::FarSeeConfig config = net::preset_config(o.preset);
  const net::TrainMemoryReport r =
      net::training_memory(config, o.batch, o.input_h, o.input_w, o.label_h ? o.label_h : o.input_h,
                           o.label_w ? o.label_w : o.input_w);
  const double mib = 1024.0 * 1024.0;
  std::printf("training memory plan, preset %s, batch %d, %dx%d, fp32:\n", config.preset.c_str(),
              o.batch, o.input_h, o.input_w);
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

int run(const Options& o) {
  if (o.memory_plan) return print_memory_plan(o);
  std::string note;
  const Executor executor = choose_executor(o.executor, &note);
  if (!note.empty()) std::cerr << "farsee-train: " << note << "\n";
  const net::FarSeeConfig config = net::preset_config(o.preset);
  DatasetOptions d;
  d.input_h = o.input_h;
  d.input_w = o.input_w;
  d.batch = o.batch;
  d.shuffle = o.shuffle;
  d.augment = o.augment;
  d.seed = o.seed;
  d.num_classes = config.num_classes;
  d.label_h = o.label_h;
  d.label_w = o.label_w;
  d.workers = o.workers;
  d.augmentation = AugmentParams::paper();
  d.augmentation.scale_min = o.scale_min;
  d.augmentation.scale_max = o.scale_max;
  d.augmentation.crop_h = o.crop_h;
  d.augmentation.crop_w = o.crop_w;
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
  const net::HostTensors init = o.init.empty() ? net::random_parameters(config, o.seed)
                                               : net::load_parameters(o.init, config);
  Context ctx;
  ctx.executor = executor;
  net::Trainer trainer(config, init, ctx, o.batch, o.input_h, o.input_w, d.label_h, d.label_w);
  std::printf(
      "farsee-train: %zu images in %s/%s, preset %s, batch %d, %dx%d, executor %s, "
      "%.1f MiB on the executor (activation plan %.1f MiB)\n",
      data.size(), o.data.c_str(), o.split.c_str(), config.preset.c_str(), o.batch, o.input_h,
      o.input_w, executor_name(executor), double(trainer.device_bytes()) / (1 << 20),
      double(trainer.memory_plan().arena_bytes) / (1 << 20));
  for (int step = 0; step < o.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const Batch b = data.batch(step);
    trainer.set_batch(b.input.data(), b.labels.data());
    net::SgdArgs sgd;
    sgd.lr =
        float(o.schedule == "poly" ? o.lr * std::pow(1.0 - double(step) / o.steps, 0.9) : o.lr);
    sgd.momentum = float(o.momentum);
    sgd.weight_decay = float(o.weight_decay);
    const float loss = trainer.step(sgd);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("step %d/%d loss %.7f lr %.6g (%.1f ms)\n", step + 1, o.steps, double(loss),
                double(sgd.lr), ms);
    std::fflush(stdout);
    FARSEE_REQUIRE(std::isfinite(loss), "step " << step + 1 << ": the loss is not finite");
  }
  if (!o.save.empty()) {
    save_state(o.save, config, trainer.state());
    std::printf("saved %s\n", o.save.c_str());
  }
  return 0;
}

}  // namespace

int train_main(const std::vector<std::string>& args) {
  return run_program("farsee-train", [&] {
    std::vector<std::string> storage{"farsee-train"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage) argv.push_back(s.data());
    const std::optional<Options> o = parse(int(argv.size()), argv.data());
    return o ? run(*o) : 0;
  });
}

}  // namespace farsee::tools
