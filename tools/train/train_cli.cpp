// farsee-train: SGD training of FarSee-Net on a Cityscapes-layout folder (tools/data/dataset.h)
// with net::Trainer. Schedules (lr_schedule.h), validation mIoU (tools/eval/evaluate.h),
// checkpoints (net/checkpoint.h) that resume bitwise identically, SIGINT/SIGTERM handling, a
// NaN/Inf-loss stop, progress (progress.h) and JSON-lines logs. The flags: options.h.
//
// Determinism: batch k depends only on (seed, k, the sorted file list, the options): the order
// is a seeded permutation per epoch and every augmentation draw is a stateless hash of (seed,
// sample position) (tools/data/dataset.h). So the "data order and RNG state" of a checkpoint is the
// seed, the file count and the next batch index (= SGD steps done), and a resumed run feeds the
// exact batches the uninterrupted run would have.
#include "tools/train/train_cli.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "kernels/core/check.h"
#include "net/checkpoint.h"
#include "net/config.h"
#include "net/farsee_net.h"
#include "net/json_number.h"
#include "net/parameters.h"
#include "net/train_graph.h"
#include "net/trainer.h"
#include "tools/cityscapes/metrics.h"
#include "tools/cli/cli.h"
#include "tools/data/dataset.h"
#include "tools/data/parallel_for.h"
#include "tools/eval/evaluate.h"
#include "tools/train/class_weights.h"
#include "tools/train/distributed.h"
#include "tools/train/lr_schedule.h"
#include "tools/train/nccl_reducer.h"
#include "tools/train/options.h"
#include "tools/train/progress.h"
#include "weights/safetensors.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The network --preset and --num-classes describe.
net::FarSeeConfig network_config(const Options& o) {
  net::FarSeeConfig config = net::preset_config(o.preset);
  if (o.num_classes > 0) config.num_classes = o.num_classes;
  return config;
}

// What the saved weights record beside the network (net/api/weights_metadata.h): the input size
// trained at and, for the 19 Cityscapes trainIds, their class names.
net::WeightsMetadata trained_settings(const Options& o, const net::FarSeeConfig& config) {
  net::WeightsMetadata m;
  m.input_height = o.input_h;
  m.input_width = o.input_w;
  if (config.num_classes == kCityscapesClasses) {
    for (const char* name : cityscapes_class_names()) m.class_names.emplace_back(name);
  }
  return m;
}

int print_memory_plan(const Options& o) {
  const net::FarSeeConfig config = network_config(o);
  const net::TrainMemoryReport r = net::training_memory(
      config, o.batch, o.input_h, o.input_w, o.label_h ? o.label_h : o.input_h,
      o.label_w ? o.label_w : o.input_w, storage_dtype(parse_precision(o.precision)));
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

net::MixedPrecision mixed_precision(const Options& o) {
  net::MixedPrecision precision;
  const Precision p = parse_precision(o.precision);
  precision.activations = storage_dtype(p);
  precision.tf32 = p == Precision::TF32;
  precision.init_scale = float(o.loss_scale);
  precision.growth_interval = o.loss_scale_growth_interval;
  return precision;
}

DatasetOptions dataset_options(const Options& o, int num_classes) {
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
  d.num_classes = num_classes;
  return d;
}

// The validation split as it is: no shuffling, no augmentation, loaded on the training thread.
DatasetOptions validation_options(DatasetOptions d) {
  d.shuffle = false;
  d.augment = false;
  d.workers = 0;
  return d;
}

double cpu_seconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// The host side of the loader when the augmentation runs on the executor (issue 24): each sample
// only decoded to uint8 (a pack: bytes copied or decompressed and checksummed; a folder: PNGs
// decoded) by `workers` threads. "per core": per CPU second of those threads.
void benchmark_host(const Options& o, const CityscapesDataset& data) {
  const int64_t n = int64_t(o.benchmark_loader) * o.batch;
  const int threads = std::max(o.workers, 1);
  std::vector<double> cpu(size_t(threads), 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(int(n), threads, [&](int i, int thread) {
    const double c0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    data.source().decode(size_t(i) % data.size(), data.options().num_classes);
    cpu[size_t(thread)] += cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu_s = 0;
  for (double c : cpu) cpu_s += c;
  std::printf(
      "host: %lld samples of %s decoded to uint8, %d threads: %.1f images/s in all, %.1f "
      "images/s per core (%.2f CPU s)\n",
      static_cast<long long>(n), data.source().describe().c_str(), threads, double(n) / s,
      double(n) / cpu_s, cpu_s);
}

// The other half of --augment-on executor: the augmentation op (kernels/augment.h) on the
// executor, over the first raw batch repeated (uploaded once). "per core": per CPU second of this
// process, printed for the host executors only (on cuda the op's time is the GPU's).
void benchmark_executor_augment(const Options& o, const CityscapesDataset& data) {
  std::string note;
  const Executor executor = choose_executor(o.executor, &note);
  const RawBatch raw = data.raw_batch(0);
  const int repeats = std::max(o.benchmark_loader, 1);
  const double cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  const double rate = augment_images_per_second(raw, data.options(), executor, repeats);
  const double cpu_s = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  std::printf("augment: augment_fwd on %s, %d x %d samples: %.1f images/s in all",
              executor_name(executor), repeats, o.batch, rate);
  if (executor != Executor::Cuda && cpu_s > 0) {
    std::printf(", %.1f images/s per core", double(repeats) * o.batch / cpu_s);
  }
  std::printf("\n");
}

// The host side first: the prefetcher of the timed batches goes on decoding ahead afterwards.
int benchmark_loader(const Options& o, const CityscapesDataset& data) {
  benchmark_host(o, data);
  const DatasetOptions& d = data.options();
  const double cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < o.benchmark_loader; ++k) data.batch(k);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double images = double(o.benchmark_loader) * o.batch;
  std::printf(
      "loader: %d batches of %d, input %dx%d, labels %dx%d, %s, %d workers: %.2f images/s "
      "(%.2f images/s per core, host decoding and augmentation)\n",
      o.benchmark_loader, o.batch, o.input_h, o.input_w, d.label_height(), d.label_width(),
      o.augment ? "augmented" : "not augmented", o.workers, images / s,
      images / (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0));
  benchmark_executor_augment(o, data);
  return 0;
}

// --augment-on executor: the batches decoded by the loader (raw_batch), packed into the trainer's
// page-locked staging and augmented by the op on the executor (each the same as data.batch(k), bit
// for bit). Pipelined in the trainer's two slots, so that while step k runs on the executor, batch
// k+1's copies run on the copy stream and a host thread takes batch k+2 from the loader and packs
// it (the host side is then off the step's critical path).
class RawFeeder {
 public:
  // `raw_batch(k)`: this process's raw batch k (the loader's, or this rank's block of the global
  // batch k); called from one thread at a time.
  RawFeeder(net::Trainer& trainer, const CityscapesDataset& data,
            std::function<RawBatch(int64_t)> raw_batch)
      : trainer_(trainer), data_(data), raw_batch_(std::move(raw_batch)) {}
  ~RawFeeder() {
    if (packing_.valid()) packing_.wait();  // its error, if any, is dropped with the run
  }
  RawFeeder(const RawFeeder&) = delete;
  RawFeeder& operator=(const RawFeeder&) = delete;

  // Queues the augmentation of batch `step` into the trainer's input, and the work ahead.
  void feed(int64_t step) {
    if (step != next_) {  // the first step, or a jump: refill the pipeline at `step`
      if (packing_.valid()) packing_.wait();
      packing_ = {};
      trainer_.wait_raw_uploads();
      pack(step);
      upload(step);
      pack(step + 1);
    } else {
      packing_.get();  // batch step + 1 is packed (rethrows the loader's error)
    }
    trainer_.augment_uploaded(slot(step), imagenet_normalise());
    trainer_.wait_raw_uploads();  // batch step's copies (queued during the last step) are done
    upload(step + 1);
    packing_ = std::async(std::launch::async, [this, step] { pack(step + 2); });
    next_ = step + 1;
  }

 private:
  static int slot(int64_t k) { return int(k % 2); }
  void pack(int64_t k) {
    const RawBatch raw = raw_batch_(k);
    const int s = slot(k);
    const net::Trainer::RawStaging staging =
        trainer_.raw_staging(raw.image_bytes(), raw.label_bytes(), s);
    pack_raw_batch(raw, data_.options(), staging.images, staging.labels, staging.samples);
    bytes_[s][0] = raw.image_bytes();
    bytes_[s][1] = raw.label_bytes();
  }
  void upload(int64_t k) {
    trainer_.upload_raw_batch(slot(k), bytes_[slot(k)][0], bytes_[slot(k)][1]);
  }

  net::Trainer& trainer_;
  const CityscapesDataset& data_;
  std::function<RawBatch(int64_t)> raw_batch_;
  int64_t next_ = -1;
  int64_t bytes_[2][2] = {};  // per slot: the packed image and label bytes
  std::future<void> packing_;
};

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

// Installs the SIGINT/SIGTERM handlers for the run's lifetime, restoring the previous ones; under
// mpirun on a terminal, one rank holds the terminal meanwhile so that Ctrl-C reaches the ranks and
// not mpirun (TerminalHold: taken after the handlers exist, given back before they go).
class SignalGuard {
 public:
  explicit SignalGuard(const net::Collective& comm) {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    terminal_ = std::make_unique<TerminalHold>(comm);
  }
  ~SignalGuard() {
    terminal_.reset();
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_signal = 0;
  }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
  std::unique_ptr<TerminalHold> terminal_;
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

// mIoU and pixel accuracy (tools/cityscapes/metrics.h: Cityscapes' protocol) of the current
// weights on the validation split, BN in inference mode, by farsee-eval's evaluation loop: input
// at the input size, predictions and labels (resized by nearest neighbour) at the label size.
struct Validation {
  double miou = 0, pixel_accuracy = 0;
  std::vector<double> iou;  // NaN: class absent from ground truth and predictions
  int images = 0;
};

// Data parallelism: rank r evaluates images [r V / N, (r + 1) V / N) of the V validation images;
// the ranks' confusion matrices are summed (exact integers), so every rank gets the whole split's.
ConfusionMatrix evaluate_rank_share(net::FarSeeNet& net, const CityscapesDataset& val,
                                    int num_classes, net::Collective& comm) {
  const int64_t count = int64_t(val.size()), n = comm.size(), r = comm.rank();
  const int64_t first = count * r / n, images = count * (r + 1) / n - first;
  const int batch = val.options().batch;
  ConfusionMatrix mine = evaluate_network(net, images, num_classes, [&](int64_t k) {
    Batch b = val.make_batch();
    for (int i = 0; i < batch && k * batch + i < images; ++i) {
      val.load_position(first + k * batch + i, b, i);
    }
    return b;
  });
  const int C = num_classes;
  std::vector<int64_t> counts(size_t(C) * (C + 1));
  for (int g = 0; g < C; ++g)
    for (int p = 0; p <= C; ++p) counts[size_t(g) * (C + 1) + p] = int64_t(mine.count(g, p));
  comm.all_reduce_sum(counts.data(), int64_t(counts.size()), "validation confusion matrix");
  ConfusionMatrix all(C);
  for (int g = 0; g < C; ++g)
    for (int p = 0; p <= C; ++p) all.add_count(g, p, uint64_t(counts[size_t(g) * (C + 1) + p]));
  return all;
}

Validation validate(const CityscapesDataset& val, const net::FarSeeConfig& config,
                    const net::HostTensors& state, Executor executor, net::Collective& comm) {
  Context ctx;
  ctx.executor = executor;
  net::FarSeeNet net(config, state, ctx, DType::F32);
  const ConfusionMatrix cm = comm.size() == 1
                                 ? evaluate_dataset(net, val, config.num_classes)
                                 : evaluate_rank_share(net, val, config.num_classes, comm);
  Validation v;
  for (const std::optional<double>& iou : cm.ious()) v.iou.push_back(iou ? *iou : std::nan(""));
  v.miou = cm.mean_iou().value_or(0.0);
  v.pixel_accuracy = cm.pixel_accuracy().value_or(0.0);
  v.images = int(val.size());
  return v;
}

// ---- start -----------------------------------------------------------------------------------

// A whole number the checkpoint's info records under `key` (`fallback` when absent), checked: the
// file may come from anywhere (net/json_number.h).
int64_t stored_integer(const json& j, const char* key, int64_t fallback) {
  if (!j.is_object() || !j.contains(key)) return fallback;
  return net::json_integer<int64_t>(j.at(key),
                                    std::string("--resume: checkpoint field '") + key + "'");
}

// A checkpoint of another world size continues the same run when the global batch (ranks x
// --batch) is the same: the data order and the steps are functions of the global batch.
void require_same_global_batch(const Options& o, const Checkpoint& c, int world_size) {
  const json data = c.info.value("data", json::object());
  const int64_t batch = stored_integer(data, "batch", o.batch);
  const int64_t ranks = stored_integer(data, "world_size", 1);
  FARSEE_REQUIRE(batch >= 1 && ranks >= 1 && batch <= (int64_t(1) << 31) / ranks,
                 "--resume " << o.resume << ": the checkpoint's batch " << batch << " x " << ranks
                             << " rank(s) is not a valid run");
  const int64_t global = stored_integer(data, "global_batch", batch * ranks);
  FARSEE_REQUIRE(global >= 1, "--resume " << o.resume << ": the checkpoint's global batch "
                                          << global << " is not a valid run");
  if (global == int64_t(world_size) * o.batch) return;
  const std::string fix =
      global % world_size == 0
          ? format("pass --batch %lld", static_cast<long long>(global / world_size))
          : format("use a number of ranks that divides %lld", static_cast<long long>(global));
  FARSEE_REQUIRE(false, "--resume " << o.resume << ": the checkpoint's global batch is " << global
                                    << " (" << ranks << " rank(s) x --batch " << batch
                                    << "), this run's is " << world_size << " x --batch " << o.batch
                                    << " = " << int64_t(world_size) * o.batch << ": " << fix);
}

// The checkpoint --resume names, checked against the network; a warning when the training split
// holds another number of images than when it was written (the data order then differs).
Checkpoint read_resumed(const Options& o, const net::FarSeeConfig& config, int64_t files,
                        int world_size) {
  Checkpoint c = read_checkpoint(o.resume);
  FARSEE_REQUIRE(c.config == config,
                 "--resume " << o.resume << ": the checkpoint is for preset " << c.config.preset
                             << " with " << c.config.num_classes << " classes, not "
                             << config.preset << " with " << config.num_classes);
  const int64_t stored = c.info.value("data", json::object()).value("files", files);
  require_same_global_batch(o, c, world_size);
  if (stored != files) {
    std::cerr << "farsee-train: warning: the checkpoint was written with " << stored
              << " training images, " << o.data << "/" << o.split << " holds " << files
              << ": the data order differs from the original run\n";
  }
  return c;
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

// ---- the run ---------------------------------------------------------------------------------

// One training run: the trainer, its datasets, logs and checkpoints.
class TrainingRun {
 public:
  TrainingRun(const Options& o, Executor executor, const net::FarSeeConfig& config,
              const CityscapesDataset& data, net::Collective& comm);
  // Trains to the last step; returns the exit status (130 / 143 after SIGINT / SIGTERM).
  int train();
  int64_t steps_run() const { return steps_run_; }

 private:
  void make_trainer();
  void print_start() const;
  void open_log();
  void log_line(const json& j);
  Checkpoint make_checkpoint(int64_t done) const;
  std::string write_periodic(int64_t done);
  void run_validation(int64_t done);
  // One SGD step (0-based `step`): the progress line and the log line. Throws for a NaN/Inf loss.
  void train_step(int64_t step);
  void check_loss(float loss, int64_t done);
  // After step `done`: validation, periodic checkpoint; a signal's checkpoint (returns its exit
  // status, else 0).
  int after_step(int64_t done);
  int finish();
  // Data parallelism (DESIGN.md section 10.2): this rank's block of global batch `step`; the
  // signal every rank agrees on after a step (0: none).
  Batch rank_batch(int64_t step) const;
  RawBatch rank_raw_batch(int64_t step) const;
  void load_rank_block(int64_t step, const std::function<void(int64_t, int)>& load) const;
  int agreed_signal();
  void test_fault(int64_t done) const;

  double epoch_at(int64_t done) const { return double(done * global_batch_) / double(files_); }

  const Options& o_;
  net::Collective& comm_;
  const bool rank0_;            // logs, progress, checkpoints and --save
  const int64_t global_batch_;  // ranks x --batch
  const Executor executor_;
  const net::FarSeeConfig config_;
  const bool fp16_;
  const CityscapesDataset& data_;
  const DatasetOptions val_options_;
  std::optional<CityscapesDataset> val_;
  const int64_t files_, total_;
  std::optional<Checkpoint> resumed_;
  std::optional<net::Trainer> trainer_;
  std::optional<RawFeeder> feeder_;  // --augment-on executor; after trainer_: destroyed first
  int64_t start_ = 0;
  double best_miou_ = -1;
  int64_t best_step_ = -1;
  std::string last_checkpoint_;
  int64_t last_written_ = -1;
  std::ofstream log_;
  const std::string ckpt_dir_;
  // Periodic, final and best checkpoints only when asked for; a signal always writes one.
  const bool checkpoints_on_;
  Progress progress_;
  StepRate rate_{0, 0};  // set by train()
  int64_t nan_at_ = -1, raise_at_ = -1;
  int raise_sig_ = SIGINT;
  int64_t steps_run_ = 0;
#if FARSEE_HAVE_NCCL
  std::unique_ptr<NcclReducer> nccl_;  // cuda, N > 1: the gradient all-reduce
#endif
};

TrainingRun::TrainingRun(const Options& o, Executor executor, const net::FarSeeConfig& config,
                         const CityscapesDataset& data, net::Collective& comm)
    : o_(o),
      comm_(comm),
      rank0_(comm.rank() == 0),
      global_batch_(int64_t(comm.size()) * o.batch),
      executor_(executor),
      config_(config),
      fp16_(parse_precision(o.precision) == Precision::F16),
      data_(data),
      val_options_(validation_options(data.options())),
      files_(int64_t(data.size())),
      total_(o.epochs > 0 ? (int64_t(o.epochs) * files_ + global_batch_ - 1) / global_batch_
                          : int64_t(o.steps)),
      ckpt_dir_(o.ckpt_dir.empty() ? "checkpoints" : o.ckpt_dir),
      checkpoints_on_(!o.ckpt_dir.empty() || o.ckpt_every > 0),
      progress_(o.print_every) {
  if (o_.val_every > 0) {
    val_.emplace(o_.val_data.empty() ? o_.data : o_.val_data, o_.val_split, val_options_);
  }
  if (!o_.resume.empty()) {
    resumed_ = read_resumed(o_, config_, files_, comm_.size());
    start_ = resumed_->step;
    best_miou_ = resumed_->info.value("best_miou", -1.0);
    best_step_ = stored_integer(resumed_->info, "best_step", -1);
    last_checkpoint_ = o_.resume;
    last_written_ = start_;
  }
  make_trainer();
#if FARSEE_HAVE_NCCL
  if (nccl_) {
    trainer_->set_device_all_reduce(
        [this](float* d, int64_t n, void* stream) { nccl_->all_reduce_sum(d, n, stream); });
  }
#endif
  trainer_->set_data_parallel(&comm_, o_.bn == "sync");
  if (o_.augment_on == "executor") {
    feeder_.emplace(*trainer_, data_, [this](int64_t k) { return rank_raw_batch(k); });
  }
  trainer_->set_class_weights(resolve_class_weights(o_.class_weights, o_.class_weight_list, data_,
                                                    config_.num_classes, std::max(o_.workers, 1)));
  print_start();
  open_log();
  nan_at_ = env_step("FARSEE_TRAIN_INJECT_NAN_AT_STEP");
  raise_at_ = env_step("FARSEE_TRAIN_RAISE_AT_STEP", &raise_sig_);
}

// Fresh weights, or the checkpoint's weights, momenta, step and (fp16) loss scaler.
void TrainingRun::make_trainer() {
#if FARSEE_HAVE_NCCL
  if (executor_ == Executor::Cuda && comm_.size() > 1) {  // one GPU per rank, before allocating
    select_local_gpu(comm_.local_rank());
    nccl_ = std::make_unique<NcclReducer>(comm_, o_.collective_timeout);
  }
#endif
  Context ctx;
  ctx.executor = executor_;
  const int label_h = data_.options().label_height(), label_w = data_.options().label_width();
  if (!resumed_) {
    trainer_.emplace(config_, initial_parameters(o_, config_), ctx, o_.batch, o_.input_h,
                     o_.input_w, label_h, label_w, mixed_precision(o_));
    return;
  }
  trainer_.emplace(config_, resumed_->state, ctx, o_.batch, o_.input_h, o_.input_w, label_h,
                   label_w, mixed_precision(o_));
  trainer_->load_state(resumed_->state, resumed_->momenta, resumed_->step);
  // The loss scaler of a mixed-precision run (absent: an fp32 run's checkpoint, a fresh one).
  const json amp = resumed_->info.value("loss_scaler", json::object());
  if (fp16_ && !amp.empty()) {
    net::LossScaleState ls;
    ls.scale = net::json_real<float>(amp.at("scale"), "--resume: checkpoint loss scale");
    ls.growth_tracker =
        net::json_integer<int64_t>(amp.at("growth_tracker"), "--resume: checkpoint growth tracker");
    ls.skipped_steps =
        net::json_integer<int64_t>(amp.at("skipped_steps"), "--resume: checkpoint skipped steps");
    trainer_->load_loss_scale(ls);
  }
}

void TrainingRun::print_start() const {
  if (!rank0_) return;
  const net::Trainer& t = *trainer_;
  if (comm_.size() > 1) {
    std::printf("farsee-train: data parallel: %d ranks x batch %d = global batch %lld, BN %s\n",
                comm_.size(), o_.batch, static_cast<long long>(global_batch_),
                o_.bn == "sync" ? "synchronised" : "local (per rank)");
  }
  const std::string precision =
      fp16_ ? format("fp16 mixed precision (loss scale %g)", double(t.loss_scale().scale))
            : o_.precision;
  const std::string resuming = resumed_ ? format(", resuming at step %lld from %s",
                                                 static_cast<long long>(start_), o_.resume.c_str())
                                        : "";
  std::printf(
      "farsee-train: %zu images in %s/%s, preset %s, batch %d, %dx%d, executor %s, %s, "
      "%.1f MiB on the executor (activation plan %.1f MiB), %lld steps%s\n",
      data_.size(), o_.data.c_str(), o_.split.c_str(), config_.preset.c_str(), o_.batch, o_.input_h,
      o_.input_w, executor_name(executor_), precision.c_str(), double(t.device_bytes()) / (1 << 20),
      double(t.memory_plan().arena_bytes) / (1 << 20), static_cast<long long>(total_),
      resuming.c_str());
  if (!t.class_weights().empty()) {
    std::string list;
    for (float w : t.class_weights()) list += (list.empty() ? "" : ",") + format("%.4g", w);
    std::printf("farsee-train: class weights%s: %s\n",
                o_.class_weights == "inverse-log" ? " (inverse-log)" : "", list.c_str());
  }
  std::fflush(stdout);
}

void TrainingRun::open_log() {
  if (!o_.log.empty() && rank0_) {
    log_.open(o_.log, resumed_ ? std::ios::app : std::ios::trunc);
    FARSEE_REQUIRE(log_.good(), "--log: cannot write '" << o_.log << "'");
  }
  if (!trainer_->class_weights().empty()) {
    log_line(
        {{"event", "class_weights"}, {"step", start_}, {"weights", trainer_->class_weights()}});
  }
}

void TrainingRun::log_line(const json& j) {
  if (!log_.is_open()) return;
  log_ << j.dump() << "\n";
  log_.flush();
}

Checkpoint TrainingRun::make_checkpoint(int64_t done) const {
  Checkpoint c;
  c.config = config_;
  c.step = done;
  c.state = trainer_->state();
  c.momenta = trainer_->momenta();
  c.trained = trained_settings(o_, config_);
  c.info["options"] = options_to_json(o_);
  c.info["epoch"] = epoch_at(done);
  c.info["data"] = {{"files", files_},
                    {"batch", o_.batch},
                    {"world_size", comm_.size()},
                    {"global_batch", global_batch_},
                    {"seed", o_.seed},
                    {"shuffle", o_.shuffle},
                    {"augment", o_.augment},
                    {"next_batch", done},
                    {"rng",
                     "stateless: each sample's draws hash (seed, position); the order is a "
                     "seeded permutation per epoch"}};
  c.info["best_miou"] = best_miou_;
  c.info["best_step"] = best_step_;
  if (fp16_) {  // exact: a float's decimal form from nlohmann::json reads back bitwise
    const net::LossScaleState& ls = trainer_->loss_scale();
    c.info["loss_scaler"] = {{"scale", ls.scale},
                             {"growth_tracker", ls.growth_tracker},
                             {"skipped_steps", ls.skipped_steps}};
  }
  return c;
}

std::string TrainingRun::write_periodic(int64_t done) {
  const std::string path = (fs::path(ckpt_dir_) / checkpoint_file_name(done)).string();
  last_checkpoint_ = path;
  last_written_ = done;
  if (!rank0_) return path;  // every rank holds the same weights: rank 0 writes them
  write_checkpoint(path, make_checkpoint(done));
  last_checkpoint_ = path;
  last_written_ = done;
  prune_checkpoints(ckpt_dir_, o_.keep_last);
  log_line({{"event", "checkpoint"}, {"step", done}, {"path", path}});
  return path;
}

// Validation after `done` steps (0: the untrained weights, the baseline; never "best").
void TrainingRun::run_validation(int64_t done) {
  const Validation v = validate(*val_, config_, trainer_->state(), executor_, comm_);
  const bool best = done > 0 && v.miou > best_miou_;
  if (best) {
    best_miou_ = v.miou;
    best_step_ = done;
  }
  if (!rank0_) return;  // every rank validated the same weights: rank 0 reports
  progress_.line(format("validation at step %lld: mIoU %.4f, pixel accuracy %.4f (%d %s images)%s",
                        static_cast<long long>(done), v.miou, v.pixel_accuracy, v.images,
                        o_.val_split.c_str(), best ? ", best so far" : ""));
  json iou = json::array();
  for (double x : v.iou) iou.push_back(std::isfinite(x) ? json(x) : json(nullptr));
  log_line({{"event", "val"},
            {"step", done},
            {"epoch", epoch_at(done)},
            {"miou", v.miou},
            {"pixel_accuracy", v.pixel_accuracy},
            {"iou", iou},
            {"best", best}});
  if (best && checkpoints_on_) {
    const std::string path = (fs::path(ckpt_dir_) / "best.safetensors").string();
    write_checkpoint(path, make_checkpoint(done));
    log_line({{"event", "best"}, {"step", done}, {"miou", v.miou}, {"path", path}});
  }
}

void TrainingRun::check_loss(float loss, int64_t done) {
  if (std::isfinite(loss)) return;
  progress_.close();
  log_line({{"event", "error"}, {"step", done}, {"loss", std::isnan(loss) ? "nan" : "inf"}});
  FARSEE_REQUIRE(false, "step " << done << ": the loss is " << (std::isnan(loss) ? "NaN" : "Inf")
                                << "; training stopped ("
                                << (last_checkpoint_.empty()
                                        ? std::string("no checkpoint was written")
                                        : "the last good checkpoint is " + last_checkpoint_)
                                << ")");
}

void TrainingRun::train_step(int64_t step) {
  const auto t0 = std::chrono::steady_clock::now();
  // The seconds this step waited for its batch: the prefetch queue empty or no workers (with
  // --augment-on executor: the raw batch, its upload and the op's launch).
  const auto waited = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double data_wait = 0;
  if (feeder_) {  // --augment-on executor (the NaN test hook poisons host-augmented input only)
    feeder_->feed(step);
    data_wait = waited();
  } else {
    Batch b = rank_batch(step);
    data_wait = waited();
    if (step + 1 == nan_at_) b.input[0] = std::numeric_limits<float>::quiet_NaN();
    trainer_->set_batch(b.input.data(), b.labels.data());
  }
  net::SgdArgs sgd;
  sgd.lr = float(learning_rate(schedule_of(o_), step, total_, step * global_batch_ / files_));
  sgd.momentum = float(o_.momentum);
  sgd.weight_decay = float(o_.weight_decay);
  const float loss = trainer_->step(sgd);
  const int64_t done = step + 1;
  check_loss(loss, done);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const net::LossScaleState& ls = trainer_->loss_scale();
  StepStatus s;
  s.done = done;
  s.total = total_;
  s.epoch = epoch_at(done);
  s.loss = loss;
  s.lr = sgd.lr;
  s.fp16 = fp16_;
  s.scale = ls.scale;
  s.skipped_steps = ls.skipped_steps;
  s.seconds_per_step = rate_.add(step, seconds);
  s.images_per_s = s.seconds_per_step > 0 ? double(global_batch_) / s.seconds_per_step : 0.0;
  if (rank0_) progress_.step(done, done == total_, progress_line(s));
  json line = {{"event", "step"},    {"step", done},
               {"epoch", s.epoch},   {"loss", loss},
               {"lr", sgd.lr},       {"img_per_s", s.images_per_s},
               {"seconds", seconds}, {"data_wait_s", data_wait}};
  if (fp16_) {  // the scale after this step's update; "skipped": this step's update was skipped
    line["loss_scale"] = ls.scale;
    line["skipped"] = ls.last_step_skipped;
    line["skipped_steps"] = ls.skipped_steps;
  }
  log_line(line);
  if (done == raise_at_) std::raise(raise_sig_);
  test_fault(done);
}

// Rank r takes block r of the global batch: positions step * N * B + r * B + i of the order one
// process with batch N * B walks, each sample augmented from its own position (tools/data), so
// the data do not depend on N. One rank: the dataset's batch (and its prefetcher) as before.
Batch TrainingRun::rank_batch(int64_t step) const {
  if (comm_.size() == 1) return data_.batch(step);
  Batch b = data_.make_batch();
  load_rank_block(step, [&](int64_t position, int i) { data_.load_position(position, b, i); });
  return b;
}

// rank_batch's raw counterpart (--augment-on executor): the same positions, undecoded draws.
RawBatch TrainingRun::rank_raw_batch(int64_t step) const {
  if (comm_.size() == 1) return data_.raw_batch(step);
  RawBatch b = data_.make_raw_batch();
  load_rank_block(step, [&](int64_t position, int i) { data_.load_raw_position(position, b, i); });
  return b;
}

// load(position, i) for sample i of this rank's block of global batch `step`, on the workers.
void TrainingRun::load_rank_block(int64_t step,
                                  const std::function<void(int64_t, int)>& load) const {
  const int64_t first = step * global_batch_ + int64_t(comm_.rank()) * o_.batch;
  parallel_for(o_.batch, std::max(o_.workers, 1), [&](int i, int) { load(first + i, i); });
}

// A signal reaches one rank (Ctrl-C: the one holding mpirun's terminal) or all (signalled by a
// script): every rank stops after the same step.
int TrainingRun::agreed_signal() {
  if (comm_.size() == 1) return g_signal;
  int64_t flags[2] = {g_signal == SIGINT, g_signal == SIGTERM};
  comm_.all_reduce_sum(flags, 2, "signal check");
  return flags[1] > 0 ? SIGTERM : flags[0] > 0 ? SIGINT : 0;
}

// Test hooks (README): FARSEE_TRAIN_KILL_RANK=r:k kills rank r (SIGKILL) after step k;
// FARSEE_TRAIN_HANG_RANK=r:k makes it sleep there instead (a hung rank).
void TrainingRun::test_fault(int64_t done) const {
  for (const char* name : {"FARSEE_TRAIN_KILL_RANK", "FARSEE_TRAIN_HANG_RANK"}) {
    const char* v = std::getenv(name);
    int rank = -1;
    long long step = -1;
    if (!v || std::sscanf(v, "%d:%lld", &rank, &step) != 2) continue;
    if (rank != comm_.rank() || step != done) continue;
    if (std::string(name) == "FARSEE_TRAIN_KILL_RANK") std::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
}

int TrainingRun::after_step(int64_t done) {
  if (val_ && (done % o_.val_every == 0 || done == total_)) run_validation(done);
  if (o_.ckpt_every > 0 && done % o_.ckpt_every == 0) write_periodic(done);
  const int sig = agreed_signal();
  if (sig == 0) return 0;
  const std::string path = last_written_ == done ? last_checkpoint_ : write_periodic(done);
  const int status = sig == SIGTERM ? 143 : 130;
  const std::string ranks =
      comm_.size() == 1
          ? ""
          : format(" (all %d ranks stopped here; exit status %d)", comm_.size(), status);
  if (rank0_)
    progress_.line(format("farsee-train: %s at step %lld: checkpoint %s; resume with --resume %s%s",
                          sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(done),
                          path.c_str(), ckpt_dir_.c_str(), ranks.c_str()));
  return status;
}

int TrainingRun::finish() {
  progress_.close();
  if (checkpoints_on_ && last_written_ != total_ && total_ > start_) {
    const std::string path = write_periodic(total_);
    if (rank0_) std::printf("checkpoint %s\n", path.c_str());
  }
  if (!o_.save.empty() && rank0_) {
    write_weights(o_.save, config_, trainer_->state(),
                  o_.save_dtype == "fp16" ? weights::FileDType::F16 : weights::FileDType::F32,
                  trained_settings(o_, config_));
    std::printf("saved %s\n", o_.save.c_str());
  }
  return 0;
}

int TrainingRun::train() {
  const SignalGuard signals(comm_);
  rate_ = StepRate(start_, total_);
  if (val_ && start_ == 0) run_validation(0);
  for (int64_t step = start_; step < total_; ++step) {
    train_step(step);
    ++steps_run_;
    if (const int status = after_step(step + 1)) return status;
  }
  return finish();
}

int run(const Options& o, World& world) {
  if (o.memory_plan) return print_memory_plan(o);
  std::string note;
  const Executor executor = choose_executor(o.executor, &note);
  if (!note.empty()) std::cerr << "farsee-train: " << note << "\n";
  const net::FarSeeConfig config = network_config(o);
  // Bad folders fail before the weights load.
  const CityscapesDataset data(o.data, o.split, dataset_options(o, config.num_classes));
  if (o.benchmark_loader > 0) return benchmark_loader(o, data);
  std::vector<std::string> files;
  for (const SamplePaths& f : data.files()) files.push_back(f.image + "\n" + f.label);
  require_same_start(world.comm(), options_to_json(o).dump(), files);
  TrainingRun training(o, executor, config, data, world.comm());
  const int status = training.train();
  const std::string times = world.collective_times(training.steps_run());
  if (!times.empty() && world.comm().rank() == 0)
    std::printf("farsee-train: collectives: %s\n", times.c_str());
  return status;
}

}  // namespace

int train_main(const std::vector<std::string>& args) {
  std::unique_ptr<World> world;  // closed after run_program has printed any error
  const int status = run_program("farsee-train", [&] {
    const std::optional<Options> o = parse_options(args);
    if (!o) return 0;
    world = open_world(o->collective_timeout);
    return run(*o, *world);
  });
  if (world) world->close(status);
  return status;
}

}  // namespace farsee::tools
