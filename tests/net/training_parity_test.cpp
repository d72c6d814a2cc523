// Training against PyTorch (tests/fixtures/train/, tools/pytorch/make_train_fixtures.py: PyTorch
// in float64):
// - tiny-paper, 128x256, batch 2, 5 SGD steps (momentum 0.9, weight decay 1e-4, poly LR from
//   0.005) on the reference executor, the cpu executor (and on cuda when present): per-step losses
//   within 1e-5 relative, every weight and BN running statistic after the 5 steps within 1e-4
//   relative (max abs error over max abs value, per tensor): the bounds; plus the update
//   (final - initial) within 1e-2 of PyTorch's, which is what makes the check sensitive to
//   gradients;
// - the same for a reduced configuration (half the tiny widths, 96x192, 2 steps) on cpu and emu,
//   and one step's gradients on cpu and emu against the reference executor;
// - one step of the full paper (and rtseg) preset at 64x128, batch 1, on the reference executor:
//   every parameter gradient within 1e-4 of PyTorch's relative to its max (checked on 128 samples
//   per tensor, its max |g| and its sum |g|: the full gradients are 45 MB, too big to commit);
// - determinism: the same run twice gives bitwise the same weights (reference and cpu); on cuda a
//   CUDA-graph step gives bitwise the weights of an eager one.
// The fixture sizes keep PyTorch's own float32 run within 2.1e-6 of its float64 one (measured by
// the script, stored in the manifests): the bounds test the implementation, not the conditioning.
// The batches come from the fixture's Cityscapes-layout folder through tools/data/dataset.h,
// exactly as farsee-train reads them.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "net/trainer.h"
#include "tests/net/training_fixture.h"
#include "tests/support/executors.h"
#include "tools/data/dataset.h"

namespace farsee::net {
namespace {

using train_test::relative_error;
using train_test::train_data_dir;

struct RunResult {
  std::vector<float> losses;
  HostTensors init, state;
  double ms_per_step = 0;
  int64_t graphs_captured = 0;
};

// The fixture run `name` (tiny / reduced) on `executor`.
RunResult run_fixture(const std::string& name, Executor executor, int max_steps = 1 << 30,
                      bool cuda_graph = true, bool constant_lr = false) {
  const nlohmann::json m = train_test::read_json(train_data_dir() + name + ".json");
  const FarSeeConfig config = config_from_json_text(m["config"].dump());
  tools::DatasetOptions d;
  d.input_h = m["input_size"][0];
  d.input_w = m["input_size"][1];
  d.batch = m["batch"];
  d.shuffle = false;
  d.augment = false;
  d.num_classes = config.num_classes;
  const tools::CityscapesDataset data(train_data_dir() + m["data"].get<std::string>(),
                                      m["split"].get<std::string>(), d);
  Context ctx;
  ctx.executor = executor;
  RunResult r;
  r.init = train_test::seeded_parameters(config, m["init_seed"].get<uint64_t>());
  Trainer trainer(config, r.init, ctx, d.batch, d.input_h, d.input_w);
  trainer.fill_activations(0xFF);  // NaN everywhere no step writes
  const int steps = std::min(max_steps, m["steps"].get<int>());
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < steps; ++k) {
    const tools::Batch b = data.batch(k);
    trainer.set_batch(b.input.data(), b.labels.data());
    SgdArgs sgd;
    sgd.lr = float(m["lrs"][size_t(constant_lr ? 0 : k)].get<double>());
    sgd.momentum = m["momentum"];
    sgd.weight_decay = m["weight_decay"];
    r.losses.push_back(trainer.step(sgd, cuda_graph));
  }
  r.ms_per_step =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
      steps;
  r.state = trainer.state();
  r.graphs_captured = trainer.cuda_graphs_captured();
  return r;
}

void expect_matches_fixture(const std::string& name, const RunResult& r) {
  const nlohmann::json m = train_test::read_json(train_data_dir() + name + ".json");
  ASSERT_EQ(r.losses.size(), m["losses"].size());
  double worst_loss = 0;
  for (size_t k = 0; k < r.losses.size(); ++k) {
    const double want = m["losses"][k];
    const double rel = std::fabs(double(r.losses[k]) - want) / std::fabs(want);
    worst_loss = std::max(worst_loss, rel);
    EXPECT_LE(rel, 1e-5) << "step " << k << ": loss " << r.losses[k] << ", PyTorch " << want;
  }
  const weights::SafetensorsFile want(train_data_dir() + name + ".final.safetensors");
  double worst = 0, worst_update = 0;
  std::string worst_name;
  for (const std::string& tensor_name : want.names()) {
    ASSERT_TRUE(r.state.count(tensor_name)) << tensor_name;
    const std::vector<float> w = want.read_floats(tensor_name);
    const std::vector<float>& g = r.state.at(tensor_name).data;
    ASSERT_EQ(g.size(), w.size()) << tensor_name;
    const double rel = relative_error(g, w);
    if (rel > worst) {
      worst = rel;
      worst_name = tensor_name;
    }
    EXPECT_LE(rel, 1e-4) << tensor_name << " after " << r.losses.size() << " steps";
    // Stricter than the bound, and sensitive to gradient errors (the weights move by only
    // ~1e-3 of their size in a few steps): the update itself, final - initial, within 1e-2 of
    // PyTorch's, for tensors that move by more than 1e-4 of their size (others are rounding).
    const std::vector<float>& w0 = r.init.at(tensor_name).data;
    double moved = 0, scale = 0, err = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      moved = std::max(moved, std::fabs(double(w[i]) - double(w0[i])));
      scale = std::max(scale, std::fabs(double(w[i])));
      err = std::max(err, std::fabs((double(g[i]) - w0[i]) - (double(w[i]) - w0[i])));
    }
    if (moved > 1e-4 * scale) {
      const double rel_update = err / moved;
      worst_update = std::max(worst_update, rel_update);
      EXPECT_LE(rel_update, 1e-2) << tensor_name << ": update (final - initial)";
    }
  }
  std::printf(
      "%s: %zu steps, worst loss error %.3g relative, worst tensor %s %.3g relative, worst update "
      "(final - initial) error %.3g relative (%.0f ms per step)\n",
      name.c_str(), r.losses.size(), worst_loss, worst_name.c_str(), worst, worst_update,
      r.ms_per_step);
}

TEST(TrainingParity, TinyPaperFiveStepsOnReference) {
  const RunResult r = run_fixture("tiny", Executor::Reference);
  expect_matches_fixture("tiny", r);
}

// The cpu executor (fp32 SGEMM convs, float sums) against the same PyTorch fixture and bounds.
TEST(TrainingParity, TinyPaperFiveStepsOnCpu) {
  const RunResult r = run_fixture("tiny", Executor::Cpu);
  expect_matches_fixture("tiny", r);
}

TEST(TrainingParity, ReducedConfigOnCpu) {
  const RunResult r = run_fixture("reduced", Executor::Cpu);
  expect_matches_fixture("reduced", r);
}

TEST(TrainingParity, ReducedConfigOnEmu) {
  farsee::test::ExecCase c{Executor::Emu, emu::Schedule::GreedyReverse};
  FARSEE_PREPARE_EXEC_CASE(c);
  // Every training op has an emu kernel: a throw (a missing kernel included) is a failure.
  const RunResult r = run_fixture("reduced", Executor::Emu);
  expect_matches_fixture("reduced", r);
}

// cuda (skipped without a GPU): the 5-step run with every step from the second on a CUDA-graph
// replay (re-captured per step: the poly schedule changes the learning rate).
TEST(TrainingParity, TinyPaperFiveStepsOnCuda) {
  farsee::test::ExecCase c{Executor::Cuda, emu::Schedule::RoundRobin};
  FARSEE_PREPARE_EXEC_CASE(c);
  const RunResult r = run_fixture("tiny", Executor::Cuda);
  expect_matches_fixture("tiny", r);
}

// cuda: one captured graph replayed for steps 2..4 gives bitwise the weights of eager steps, with
// a constant LR and with the fixture's per-step LRs (the graph reads the rate from memory: one
// capture for the whole run, not one per LR).
TEST(TrainingParity, CudaGraphStepEqualsEagerStep) {
  farsee::test::ExecCase c{Executor::Cuda, emu::Schedule::RoundRobin};
  FARSEE_PREPARE_EXEC_CASE(c);
  for (bool constant_lr : {true, false}) {
    SCOPED_TRACE(constant_lr ? "constant lr" : "per-step lr");
    const RunResult graph = run_fixture("tiny", Executor::Cuda, 4, true, constant_lr);
    const RunResult eager = run_fixture("tiny", Executor::Cuda, 4, false, constant_lr);
    EXPECT_EQ(graph.graphs_captured, 1);
    EXPECT_EQ(eager.graphs_captured, 0);
    ASSERT_EQ(graph.losses, eager.losses);
    for (const auto& kv : graph.state) {
      const std::vector<float>& x = kv.second.data;
      const std::vector<float>& y = eager.state.at(kv.first).data;
      ASSERT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float))) << kv.first;
    }
  }
}

void expect_bitwise_same_runs(Executor e) {
  const RunResult a = run_fixture("reduced", e);
  const RunResult b = run_fixture("reduced", e);
  ASSERT_EQ(a.losses, b.losses);
  for (const auto& kv : a.state) {
    const std::vector<float>& x = kv.second.data;
    const std::vector<float>& y = b.state.at(kv.first).data;
    ASSERT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float))) << kv.first;
  }
}

TEST(TrainingParity, SameInputsGiveBitwiseSameWeights) {
  expect_bitwise_same_runs(Executor::Reference);
}

TEST(TrainingParity, SameInputsGiveBitwiseSameWeightsOnCpu) {
  expect_bitwise_same_runs(Executor::Cpu);
}

std::vector<float> nchw_to_nhwc(const std::vector<float>& v, int n, int c, int h, int w) {
  std::vector<float> out(v.size());
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch)
      for (int p = 0; p < h * w; ++p)
        out[(size_t(i) * h * w + p) * c + ch] = v[(size_t(i) * c + ch) * h * w + p];
  return out;
}

// dir: where <preset>_grads.{json,safetensors} are; every_element: they hold every gradient
// element (<name>.grad, tools/pytorch/make_train_fixtures.py --full-gradients), not only the
// samples.
void expect_gradients_match(const std::string& preset, const std::string& dir = train_data_dir(),
                            bool every_element = false) {
  const nlohmann::json m = train_test::read_json(dir + preset + "_grads.json");
  const weights::SafetensorsFile io(dir + preset + "_grads.safetensors");
  const FarSeeConfig config = preset_config(preset);
  const int h = m["input_size"][0], w = m["input_size"][1];
  const std::vector<float> input = nchw_to_nhwc(io.read_floats("input"), 1, 3, h, w);
  const weights::TensorInfo& li = io.info("labels");
  std::vector<uint8_t> labels(size_t(h) * w);
  ASSERT_EQ(li.bytes(), labels.size());
  std::memcpy(labels.data(), io.raw_data("labels"), labels.size());
  Context ctx;
  ctx.executor = Executor::Reference;
  Trainer trainer(config, train_test::seeded_parameters(config, m["init_seed"].get<uint64_t>()),
                  ctx, 1, h, w);
  trainer.set_batch(input.data(), labels.data());
  const auto t0 = std::chrono::steady_clock::now();
  trainer.compute_gradients();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double want_loss = m["loss"];
  EXPECT_LE(std::fabs(trainer.loss() - want_loss) / want_loss, 1e-5);
  const HostTensors grads = trainer.gradients();
  double worst = 0;
  std::string worst_name;
  for (const auto& item : m["gradients"].items()) {
    const std::string& name = item.key();
    const nlohmann::json& st = item.value();
    ASSERT_TRUE(grads.count(name)) << name;
    const std::vector<float>& g = grads.at(name).data;
    const double max_abs = st["max_abs"];
    const std::vector<float> samples = io.read_floats(name + ".grad_samples");
    const size_t numel = g.size(), s = samples.size();
    double err = 0, got_max = 0, got_abs_sum = 0;
    for (size_t i = 0; i < s; ++i) {
      const size_t idx = i * numel / s;
      err = std::max(err, std::fabs(double(g[idx]) - double(samples[i])));
    }
    if (every_element) {
      const std::vector<float> want = io.read_floats(name + ".grad");
      ASSERT_EQ(want.size(), numel) << name;
      for (size_t i = 0; i < numel; ++i) {
        err = std::max(err, std::fabs(double(g[i]) - double(want[i])));
      }
    }
    for (float v : g) {
      got_max = std::max(got_max, double(std::fabs(v)));
      got_abs_sum += std::fabs(v);
    }
    const double rel = err / max_abs;
    const double rel_max = std::fabs(got_max - max_abs) / max_abs;
    const double rel_abs_sum =
        std::fabs(got_abs_sum - st["abs_sum"].get<double>()) / st["abs_sum"].get<double>();
    const double tensor_worst = std::max({rel, rel_max, rel_abs_sum});
    if (tensor_worst > worst) {
      worst = tensor_worst;
      worst_name = name;
    }
    EXPECT_LE(rel, 1e-4) << name << ": " << (every_element ? "every" : "sampled")
                         << " gradient element's error relative to max |g|";
    EXPECT_LE(rel_max, 1e-4) << name << ": max |g| " << got_max << ", PyTorch " << max_abs;
    EXPECT_LE(rel_abs_sum, 1e-4) << name << ": sum |g|";
  }
  std::printf(
      "%s 1x64x128: loss %.7f (PyTorch %.7f), worst gradient (%s) %s %.3g relative to max "
      "|g|; forward+loss+backward %.0f ms on reference\n",
      preset.c_str(), double(trainer.loss()), want_loss,
      every_element ? "every element" : "128 samples, max and sums", worst_name.c_str(), worst, ms);
}

TEST(TrainingParity, PaperPresetGradientsOfOneStep) {
  expect_gradients_match("paper");
}

// Every element of every parameter gradient of the paper preset (one step, 64x128) against
// PyTorch's, made at test time (about 45 MB, not stored): the ctest python.full_gradients runs
// tools/pytorch/make_train_fixtures.py --full-gradients paper into a folder and this test on it.
TEST(TrainingParity, PaperPresetEveryGradientElement) {
  const char* dir = std::getenv("FARSEE_FULL_GRADIENTS_DIR");
  if (dir == nullptr) GTEST_SKIP() << "run by the ctest python.full_gradients (needs torch)";
  expect_gradients_match("paper", std::string(dir) + "/", /*every_element=*/true);
}

// rtseg: no BN on up1 (plain sub-pixel conv x2 into the concat), head convs, logits without bias,
// align_corners=true in the loss's upsample.
TEST(TrainingParity, RtsegPresetGradientsOfOneStep) {
  expect_gradients_match("rtseg");
}

// Not run on the cpu executor (or any fp32 one): these one-step fixtures (batch 1, 64x128) are
// ill-conditioned for fp32 arithmetic. layer4's BNs normalise 8 values per channel (a 2x4 map),
// and perturbing every conv output of the REFERENCE forward by 1e-6 relative (a few fp32 ulps)
// moved backbone.layer4.0.bn1.bias's gradient by 0.28 relative to its max (rtseg; paper:
// head.up1.bn.bias 0.17), while 1e-7 moved it by 3e-5. The cpu executor's fp32 convs differ from
// the double reference by up to ~3e-6 absolute (values ~5), so they miss the 1e-4 bound here;
// its gradients are checked against the reference on the reduced config and against PyTorch on
// the tiny and reduced multi-step fixtures instead.

}  // namespace
}  // namespace farsee::net

namespace farsee::net {
namespace {

// One step's gradients on emu against the reference executor (reduced config, first batch):
// localises a kernel that disagrees with its reference op inside the whole network.
// Tolerance: PyTorch's own float32 gradients of this step are up to 1.0e-4 (relative to the
// tensor's max |g|, head.aspp1.branch2.dw.conv.weight: a 36-term sum at stride 32 with strong
// cancellation) off its float64 ones, measured with the fixture script's pipeline; emu's fp32
// kernels measured 1.2e-4 and, after a change of the depthwise wgrad kernel's reduction order,
// 3.1e-4 on the same tensor (every other tensor <= 1e-4). A wrong kernel is off by >= 1e-2.
constexpr double kEmuGradientTolerance = 1e-3;
// The cpu executor: fp32 SGEMM sums in OpenBLAS's order (the same kind of error as emu's fp32
// kernels); measured worst 1.7e-4 (head.aspp1.branch2.dw.conv.weight, the tensor above), every
// other tensor <= 3e-5. Same bound.
constexpr double kCpuGradientTolerance = 1e-3;

void expect_gradients_match_reference(Executor other, double tolerance) {
  const nlohmann::json m = train_test::read_json(train_data_dir() + "reduced.json");
  const FarSeeConfig config = config_from_json_text(m["config"].dump());
  tools::DatasetOptions d;
  d.input_h = m["input_size"][0];
  d.input_w = m["input_size"][1];
  d.batch = m["batch"];
  d.shuffle = false;
  d.augment = false;
  d.num_classes = config.num_classes;
  const tools::CityscapesDataset data(train_data_dir() + "cityscapes", "train", d);
  const tools::Batch b = data.batch(0);
  const HostTensors init = train_test::seeded_parameters(config, m["init_seed"].get<uint64_t>());
  std::map<Executor, HostTensors> grads;
  std::map<Executor, float> loss;
  for (Executor e : {Executor::Reference, other}) {
    Context ctx;
    ctx.executor = e;
    Trainer t(config, init, ctx, d.batch, d.input_h, d.input_w);
    t.fill_activations(0xFF);
    t.set_batch(b.input.data(), b.labels.data());
    t.compute_gradients();  // a throw (a missing kernel included) fails the test
    grads[e] = t.gradients();
    loss[e] = t.loss();
  }
  EXPECT_LE(std::fabs(loss[other] - loss[Executor::Reference]) / loss[Executor::Reference], 1e-6);
  // Ordered by the backward: the first (deepest-in-backward) failing tensor is the culprit.
  const Graph g = build_graph(config, 1, 32, 32);
  std::vector<std::pair<double, std::string>> ranked;
  for (auto it = g.layers.rbegin(); it != g.layers.rend(); ++it) {
    for (const ParamUnit& u : it->units) {
      for (const std::string& name :
           {u.conv + ".weight", u.conv + ".bias", u.bn + ".weight", u.bn + ".bias"}) {
        if (!grads[Executor::Reference].count(name)) continue;
        const double rel =
            relative_error(grads[other].at(name).data, grads[Executor::Reference].at(name).data);
        ranked.emplace_back(rel, name);
        EXPECT_LE(rel, tolerance) << name;
      }
    }
  }
  std::sort(ranked.rbegin(), ranked.rend());
  std::printf(
      "%s vs reference gradients, relative to max |g|: worst %s %.3g, then %s %.3g, %s "
      "%.3g\n",
      executor_name(other), ranked[0].second.c_str(), ranked[0].first, ranked[1].second.c_str(),
      ranked[1].first, ranked[2].second.c_str(), ranked[2].first);
}

TEST(TrainingParity, EmuGradientsMatchReference) {
  farsee::test::ExecCase c{Executor::Emu, emu::Schedule::GreedyForward};
  FARSEE_PREPARE_EXEC_CASE(c);
  expect_gradients_match_reference(Executor::Emu, kEmuGradientTolerance);
}

TEST(TrainingParity, CpuGradientsMatchReference) {
  expect_gradients_match_reference(Executor::Cpu, kCpuGradientTolerance);
}

}  // namespace
}  // namespace farsee::net
