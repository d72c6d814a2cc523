// farsee-bench: full-network latency and throughput of FarSee-Net (DESIGN.md section 9), for
// inference (default) or for whole training steps (--train).
//
// Inference: one measurement = one forward pass from the normalised input already on the
// executor to uint8 labels at the input size (every conv, depthwise, pool, and the fused
// resize+argmax); the input upload and host pre/post-processing are excluded. On cuda each pass is
// the replay of the CUDA graph captured after one eager run, timed with CUDA events around it;
// elsewhere a steady clock.
// Training (--train): one measurement = one net::Trainer::step on a fixed random batch (random
// weights, labels at the input size: the preset's classes (19) with about 5% ignore = 255): zeroed
// gradients, forward with BN in training mode, fused softmax cross-entropy, backward, SGD (lr 0.01
// constant, momentum 0.9, weight decay 1e-4) and the repack of the conv weights, plus the 4-byte
// read-back of the loss that step() does. On cuda the trainer's own CUDA graph is replayed (the
// first warm-up step runs eagerly, the second captures; --warmup is at least 2 there), timed with
// CUDA events on the trainer's stream; elsewhere a steady clock. --precision fp16: mixed-precision
// training (net/trainer.h: fp16 activations, fp32 master weights, dynamic loss scaling from
// 2^16; a step skipped for non-finite gradients is timed like any other, and the row reports the
// final "loss_scale" and "skipped_steps"). After `--warmup` passes, `--runs`
// passes are timed and the median, p10 and p90 reported, with throughput = batch / median. Results
// print as a table and, with --json, as
//   {"tool": "farsee-bench", "mode": "inference" | "train", "device": ..., "executor": ...,
//    "preset": ..., "weights": ...,
//    "results": [{"size": "512x1024", "height": 512, "width": 1024, "batch": 1,
//                 "precision": "fp16", "mode": "cuda-graph", "runs": 100, "median_ms": ...,
//                 "p10_ms": ..., "p90_ms": ..., "images_per_s": ..., "arena_bytes": ...,
//                 "weight_bytes": ...}]}
// where a result's "mode" is how it ran (cuda-graph, eager, or the CPU executor's name). Training
// results add "device_bytes" (everything the trainer holds on the executor: the activation arena
// of the plan = "arena_bytes", weights, gradients, momenta, packed weights, workspace), "loss" (the
// last step's, a sanity check) and, on the CPU executors, "max_rss_bytes" (getrusage of the
// process, so far) and "cpu_ms" (median process CPU time per step, all threads: on a shared
// machine a steadier measure of the work than the wall-clock times). (tools/pytorch/bench_torch.py
// prints the same schema for PyTorch.)
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kernels/core/runtime.h"
#include "net/farsee_net.h"
#include "net/trainer.h"
#include "tools/cli/flags.h"
#include "tools/data/image_io.h"
#include "tools/video/video_bench.h"

#if FARSEE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

using namespace farsee;

namespace {

const char* kUsage = R"(usage: farsee-bench [options]

Full-network latency/throughput of FarSee-Net (input on the device -> labels), or with
--train of whole training steps (forward, loss, backward, SGD update).

  --preset NAME         paper (default) | rtseg | tiny-paper | tiny-rtseg
  --config FILE.json    network configuration (overrides --preset)
  --weights FILE        safetensors weights (default: deterministic random weights)
  --executor E          auto (default: cuda if a GPU is usable, else cpu) | cuda | cpu |
                        reference
  --train               time training steps on random weights and random labels at the input
                        size (the preset's classes, some 255): SGD lr 0.01, momentum 0.9, wd 1e-4
  --sizes LIST          input sizes HxW (default 512x1024,512x768,1024x2048; cpu, reference:
                        512x1024; --train: 512x1024,1024x1024; --train on cpu, reference: 256x512)
  --batches LIST        batch sizes (default 1,4,8; cpu, reference: 1; --train: 8,16;
                        --train on cpu, reference: 2)
  --precision LIST      fp32,tf32,fp16 (default all three on cuda; CPU executors: fp32). tf32:
                        fp32 storage, convolutions in TF32 on tensor cores (PyTorch's default
                        for fp32); the cpu executor refuses it. With --train, fp16 is
                        mixed-precision training (dynamic loss scaling)
  --runs N              timed runs per configuration (default 100; --train: 20; cpu, reference: 3)
  --warmup N            untimed runs first (default 10; --train: 3; cpu, reference: 1)
  --no-cuda-graph       on cuda, launch every kernel instead of replaying a CUDA graph
  --profile             after each configuration, time one eager pass (--train: one eager
                        step) step by step and print the steps that take the most time
  --json FILE           also write the results as JSON
  --video FILE          instead: the network alone (Segmenter::segment on the decoded frames)
                        and farsee-infer's whole video pipeline (decode, segment, overlay,
                        encode) on the first --runs frames of FILE (default 100), in one run; the
                        input size is the first of --sizes (default: the weights file's, else
                        512x1024), the precision the first of --precision; --json FILE writes
                        {"mode": "video", "network_fps", "end_to_end_fps", ...}
  --help                this text
)";

struct Options {
  std::string preset = "paper", config_file, weights, executor = "auto", json_file;
  std::vector<std::pair<int, int>> sizes;
  std::vector<int> batches;
  std::vector<Precision> precisions;
  int runs = 0, warmup = -1;
  bool cuda_graph = true;
  bool profile = false;
  bool train = false;
  std::string video;  // --video FILE
};

// nullopt after --help. --sizes, --batches and --precision given twice add to the list.
std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  tools::Flags flags("farsee-bench", kUsage);
  flags.text("--preset", o.preset);
  flags.text("--config", o.config_file);
  flags.text("--weights", o.weights);
  flags.text("--executor", o.executor);
  flags.value("--sizes", [&](const std::string& v) {
    for (const auto& s : tools::split_list(v, "--sizes")) {
      o.sizes.push_back(tools::parse_size(s, "--sizes"));
      FARSEE_REQUIRE(o.sizes.back().first % 32 == 0 && o.sizes.back().second % 32 == 0,
                     "--sizes: " << s << ": height and width must be multiples of 32");
    }
  });
  flags.value("--batches", [&](const std::string& v) {
    for (const auto& s : tools::split_list(v, "--batches")) {
      o.batches.push_back(tools::parse_int(s, "--batches", 1));
    }
  });
  flags.value("--precision", [&](const std::string& v) {
    for (const auto& s : tools::split_list(v, "--precision")) {
      o.precisions.push_back(tools::parse_precision(s));
    }
  });
  flags.integer("--runs", o.runs, 1);
  flags.integer("--warmup", o.warmup, 0);
  flags.switch_("--no-cuda-graph", [&] { o.cuda_graph = false; });
  flags.set_true("--train", o.train);
  flags.set_true("--profile", o.profile);
  flags.text("--json", o.json_file);
  flags.text("--video", o.video);
  if (!flags.parse(argc, argv)) return std::nullopt;
  return o;
}

std::string device_name(Executor e) {
#if FARSEE_HAVE_CUDA
  if (e == Executor::Cuda) {
    int dev = 0;
    cudaDeviceProp prop;
    FARSEE_CUDA_CHECK(cudaGetDevice(&dev));
    FARSEE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    return prop.name;
  }
#endif
  (void)e;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return "CPU: " + line.substr(colon + 2);
    }
  }
  return "CPU";
}

// Linear interpolation between closest ranks (numpy's default percentile).
double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

// The slowest steps of one eager pass, with their share of the pass.
template <typename StepTime>
void print_profile(std::vector<StepTime> steps) {
  double total = 0;
  for (const auto& s : steps) total += s.ms;
  std::stable_sort(steps.begin(), steps.end(),
                   [](const auto& a, const auto& b) { return a.ms > b.ms; });
  std::printf("    eager pass, step by step: %.3f ms in %zu steps; slowest:\n", total,
              steps.size());
  for (size_t i = 0; i < steps.size() && i < 12; ++i) {
    std::printf("    %-32s %9.3f ms %5.1f%%\n", steps[i].name.c_str(), steps[i].ms,
                100.0 * steps[i].ms / total);
  }
}

// Peak resident set of this process so far (bytes; Linux reports ru_maxrss in KiB).
int64_t max_rss_bytes() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return int64_t(usage.ru_maxrss) * 1024;
}

// CPU time of this process, all threads (ms).
double process_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
}

std::string size_text(const std::pair<int, int>& size) {
  return std::to_string(size.first) + "x" + std::to_string(size.second);
}

struct Timing {
  double median, p10, p90;
};

Timing summarize(const std::vector<double>& ms) {
  return {percentile(ms, 0.5), percentile(ms, 0.1), percentile(ms, 0.9)};
}

// The fields every row of the JSON results has (inference and training), in schema order.
nlohmann::ordered_json result_row(const std::pair<int, int>& size, int batch, Precision precision,
                                  const std::string& mode, int runs, const Timing& t,
                                  double images_per_s, int64_t arena_bytes, int64_t weight_bytes) {
  return {{"size", size_text(size)},
          {"height", size.first},
          {"width", size.second},
          {"batch", batch},
          {"precision", precision_name(precision)},
          {"mode", mode},
          {"runs", runs},
          {"median_ms", t.median},
          {"p10_ms", t.p10},
          {"p90_ms", t.p90},
          {"images_per_s", images_per_s},
          {"arena_bytes", arena_bytes},
          {"weight_bytes", weight_bytes}};
}

// A fixed pseudo-random normalised input (values do not change the work done).
std::vector<float> bench_input(int batch, const std::pair<int, int>& size) {
  std::vector<float> input(size_t(batch) * size.first * size.second * 3);
  for (size_t i = 0; i < input.size(); ++i)
    input[i] = float(int(i * 2654435761u % 2001) - 1000) / 500.f;
  return input;
}

// Fixed pseudo-random labels: trainIds 0..classes-1, about 5% ignore (255).
std::vector<uint8_t> bench_labels(int batch, const std::pair<int, int>& size, int classes) {
  std::vector<uint8_t> labels(size_t(batch) * size.first * size.second);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (uint8_t& l : labels) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t r = uint32_t(state >> 33);
    l = r % 20 == 0 ? uint8_t(255) : uint8_t((r / 20) % uint32_t(classes));
  }
  return labels;
}

void run_inference(const Options& o, const net::FarSeeConfig& config,
                   const net::HostTensors& params, Executor executor, const std::string& mode,
                   nlohmann::ordered_json& results) {
  std::printf("%-10s %5s %5s %10s %10s %10s %10s %12s\n", "size", "batch", "prec", "median_ms",
              "p10_ms", "p90_ms", "images/s", "arena_MiB");
  for (Precision precision : o.precisions) {
    Context ctx;
    ctx.executor = executor;
    net::FarSeeNet model(config, params, ctx, precision);
    for (const auto& size : o.sizes) {
      for (int batch : o.batches) {
        model.prepare(batch, size.first, size.second);
        const std::vector<float> input = bench_input(batch, size);
        model.set_input(input.data());
        for (int i = 0; i < o.warmup; ++i) model.forward(o.cuda_graph);
        rt::synchronize(model.context());
        std::vector<double> ms;
        rt::Timer timer(executor);
        for (int i = 0; i < o.runs; ++i) {
          timer.record_start(model.context());
          model.forward(o.cuda_graph);
          timer.record_stop(model.context());
          ms.push_back(timer.elapsed_ms());
        }
        const Timing t = summarize(ms);
        const double images_per_s = batch / (t.median / 1000.0);
        const int64_t arena = model.memory_plan().arena_bytes;
        std::printf("%-10s %5d %5s %10.3f %10.3f %10.3f %10.1f %12.1f\n", size_text(size).c_str(),
                    batch, precision_name(precision), t.median, t.p10, t.p90, images_per_s,
                    double(arena) / (1 << 20));
        std::fflush(stdout);
        if (o.profile) print_profile(model.profile_forward());
        results.push_back(result_row(size, batch, precision, mode, o.runs, t, images_per_s, arena,
                                     model.parameter_bytes()));
      }
    }
  }
}

struct TrainTiming {
  Timing wall;
  double cpu_ms;  // median process CPU time per step
  float loss;     // of the last step
};

// `o.warmup` untimed steps, then `o.runs` timed ones.
TrainTiming time_train_steps(const Options& o, net::Trainer& trainer, const net::SgdArgs& sgd,
                             Executor executor) {
  float loss = 0.f;
  for (int i = 0; i < o.warmup; ++i) loss = trainer.step(sgd, o.cuda_graph);
  rt::synchronize(trainer.context());
  std::vector<double> ms, cpu_ms;
  rt::Timer timer(executor);
  for (int i = 0; i < o.runs; ++i) {
    const double cpu_start = process_cpu_ms();
    timer.record_start(trainer.context());
    loss = trainer.step(sgd, o.cuda_graph);
    timer.record_stop(trainer.context());
    ms.push_back(timer.elapsed_ms());
    cpu_ms.push_back(process_cpu_ms() - cpu_start);
  }
  return {summarize(ms), percentile(cpu_ms, 0.5), loss};
}

void run_train(const Options& o, const net::FarSeeConfig& config, const net::HostTensors& params,
               Executor executor, const std::string& mode, nlohmann::ordered_json& results) {
  const bool cpu = executor != Executor::Cuda;
  const net::SgdArgs sgd;  // lr 0.01 (constant: one captured graph), momentum 0.9, wd 1e-4
  std::printf("%-10s %5s %5s %10s %10s %10s %10s %10s %10s%s\n", "size", "batch", "prec",
              "median_ms", "p10_ms", "p90_ms", "images/s", "arena_MiB", "device_MiB",
              cpu ? "    maxRSS_MiB" : "");
  for (const auto& size : o.sizes) {
    for (int batch : o.batches) {
      for (Precision precision : o.precisions) {
        Context ctx;
        ctx.executor = executor;
        net::MixedPrecision mp;
        mp.activations = storage_dtype(precision);
        mp.tf32 = precision == Precision::TF32;
        net::Trainer trainer(config, params, ctx, batch, size.first, size.second, 0, 0, mp);
        {
          const std::vector<float> input = bench_input(batch, size);
          const std::vector<uint8_t> labels = bench_labels(batch, size, config.num_classes);
          trainer.set_batch(input.data(), labels.data());
        }
        const TrainTiming timed = time_train_steps(o, trainer, sgd, executor);
        const Timing& t = timed.wall;
        const float loss = timed.loss;
        const double cpu_ms = timed.cpu_ms;
        const double images_per_s = batch / (t.median / 1000.0);
        const int64_t arena = trainer.memory_plan().arena_bytes;
        const int64_t device_bytes = trainer.device_bytes();
        const int64_t rss = cpu ? max_rss_bytes() : 0;
        std::printf("%-10s %5d %5s %10.3f %10.3f %10.3f %10.2f %10.1f %10.1f",
                    size_text(size).c_str(), batch, precision_name(precision), t.median, t.p10,
                    t.p90, images_per_s, double(arena) / (1 << 20),
                    double(device_bytes) / (1 << 20));
        if (cpu) {
          std::printf(" %13.1f   (process CPU time %.1f ms/step)", double(rss) / (1 << 20), cpu_ms);
        }
        std::printf("   (loss %.4g", double(loss));
        if (precision == Precision::F16) {
          std::printf(", loss scale %g, %lld skipped", double(trainer.loss_scale().scale),
                      static_cast<long long>(trainer.loss_scale().skipped_steps));
        }
        std::printf(")\n");
        std::fflush(stdout);
        if (o.profile) print_profile(trainer.profile_step(sgd));
        nlohmann::ordered_json row =
            result_row(size, batch, precision, mode, o.runs, t, images_per_s, arena,
                       trainer.layout().parameter_floats * int64_t(sizeof(float)));
        row["device_bytes"] = device_bytes;
        row["loss"] = double(loss);
        if (cpu) {
          row["max_rss_bytes"] = rss;
          row["cpu_ms"] = cpu_ms;
        }
        if (precision == Precision::F16) {
          row["loss_scale"] = trainer.loss_scale().scale;
          row["skipped_steps"] = trainer.loss_scale().skipped_steps;
        }
        results.push_back(row);
      }
    }
  }
}

// --video FILE: the network alone vs the whole video pipeline (tools/video/video_bench.h).
int run_video(const Options& o) {
  SegmenterOptions s;
  s.weights = o.weights;
  s.random_seed = o.weights.empty() ? 1 : -1;
  s.preset = o.config_file.empty() ? o.preset : "";
  s.config_file = o.config_file;
  if (!o.sizes.empty()) std::tie(s.input_height, s.input_width) = o.sizes[0];
  s.executor = o.executor;
  if (!o.precisions.empty()) s.precision = precision_name(o.precisions[0]);
  Segmenter segmenter(s);
  const int runs = o.runs > 0 ? o.runs : 100;
  const tools::video::VideoBenchResult r =
      tools::video::bench_video(segmenter, o.video, runs, o.warmup < 0 ? 1 : o.warmup);
  std::printf("farsee-bench --video %s: %lld frames %dx%d, preset %s, input %dx%d, executor %s\n",
              o.video.c_str(), (long long)r.frames, r.height, r.width, segmenter.preset().c_str(),
              segmenter.input_height(), segmenter.input_width(), segmenter.executor().c_str());
  std::printf(
      "  network only     %7.2f fps (segment() on the decoded frames, nothing else)\n"
      "  end to end       %7.2f fps (decode + segment + overlay + %s encode, pipelined) "
      "= %.1f%% of network only\n"
      "  network in pipe  %7.2f fps (segment() while decode and encode share the CPU)\n"
      "  CPU time         %7.1f ms/frame network only, %.1f ms/frame end to end (network only = "
      "%.1f%% of it)\n",
      r.network_fps, r.end_to_end_fps, r.codec.c_str(), 100.0 * r.end_to_end_fps / r.network_fps,
      r.pipeline_network_fps, r.network_cpu_ms, r.pipeline_cpu_ms,
      100.0 * r.network_cpu_ms / r.pipeline_cpu_ms);
  if (!o.json_file.empty()) {
    const nlohmann::ordered_json doc{{"tool", "farsee-bench"},
                                     {"mode", "video"},
                                     {"video", o.video},
                                     {"frames", r.frames},
                                     {"height", r.height},
                                     {"width", r.width},
                                     {"preset", segmenter.preset()},
                                     {"input_size", std::to_string(segmenter.input_height()) + "x" +
                                                        std::to_string(segmenter.input_width())},
                                     {"precision", segmenter.precision()},
                                     {"executor", segmenter.executor()},
                                     {"weights", o.weights.empty() ? "random" : o.weights},
                                     {"encoder", r.codec},
                                     {"network_fps", r.network_fps},
                                     {"end_to_end_fps", r.end_to_end_fps},
                                     {"pipeline_network_fps", r.pipeline_network_fps},
                                     {"network_cpu_ms", r.network_cpu_ms},
                                     {"end_to_end_cpu_ms", r.pipeline_cpu_ms}};
    const std::string text = doc.dump(2) + "\n";
    tools::write_file_atomic(o.json_file, text.data(), text.size());
  }
  return 0;
}

int run(Options o) {
  if (!o.video.empty()) return run_video(o);
  std::string note;
  const Executor executor = tools::choose_executor(o.executor, &note);
  if (!note.empty()) std::cerr << "farsee-bench: " << note << "\n";
  const bool slow = executor != Executor::Cuda;  // CPU executors: a small default matrix
  if (o.train) {
    if (o.precisions.empty()) {
      o.precisions = slow ? std::vector<Precision>{Precision::F32}
                          : std::vector<Precision>{Precision::F32, Precision::TF32, Precision::F16};
    }
    if (o.sizes.empty()) {
      o.sizes = slow ? std::vector<std::pair<int, int>>{{256, 512}}
                     : std::vector<std::pair<int, int>>{{512, 1024}, {1024, 1024}};
    }
    if (o.batches.empty()) o.batches = slow ? std::vector<int>{2} : std::vector<int>{8, 16};
    if (o.runs == 0) o.runs = slow ? 3 : 20;
    if (o.warmup < 0) o.warmup = slow ? 1 : 3;
    // On cuda the first step is eager and the second captures the graph: time replays only.
    if (!slow && o.cuda_graph) o.warmup = std::max(o.warmup, 2);
  }
  if (o.sizes.empty()) {
    o.sizes = slow ? std::vector<std::pair<int, int>>{{512, 1024}}
                   : std::vector<std::pair<int, int>>{{512, 1024}, {512, 768}, {1024, 2048}};
  }
  if (o.batches.empty()) o.batches = slow ? std::vector<int>{1} : std::vector<int>{1, 4, 8};
  if (o.precisions.empty()) {
    o.precisions = slow ? std::vector<Precision>{Precision::F32}
                        : std::vector<Precision>{Precision::F32, Precision::TF32, Precision::F16};
  }
  if (o.runs == 0) o.runs = slow ? 3 : 100;
  if (o.warmup < 0) o.warmup = slow ? 1 : 10;

  const net::FarSeeConfig config =
      o.config_file.empty() ? net::preset_config(o.preset) : net::load_config_json(o.config_file);
  const net::HostTensors params = o.weights.empty() ? net::random_parameters(config, 1)
                                                    : net::load_parameters(o.weights, config);
  const std::string device = device_name(executor);
  const std::string mode = executor == Executor::Cuda ? (o.cuda_graph ? "cuda-graph" : "eager")
                                                      : executor_name(executor);
  std::printf("farsee-bench%s: %s, preset %s, executor %s (%s), %d warm-up + %d timed %s\n",
              o.train ? " --train" : "", device.c_str(), config.preset.c_str(),
              executor_name(executor), mode.c_str(), o.warmup, o.runs,
              o.train ? "training steps" : "runs");

  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  if (o.train) {
    run_train(o, config, params, executor, mode, results);
  } else {
    run_inference(o, config, params, executor, mode, results);
  }
  if (!o.json_file.empty()) {
    const nlohmann::ordered_json doc{
        {"tool", "farsee-bench"},  {"mode", o.train ? "train" : "inference"},
        {"device", device},        {"executor", executor_name(executor)},
        {"preset", config.preset}, {"weights", o.weights.empty() ? "random" : o.weights},
        {"results", results}};
    const std::string text = doc.dump(2) + "\n";
    tools::write_file_atomic(o.json_file, text.data(), text.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return farsee::tools::run_program("farsee-bench", [&] {
    const std::optional<Options> o = parse_options(argc, argv);
    return o ? run(*o) : 0;
  });
}
