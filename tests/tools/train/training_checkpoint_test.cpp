// farsee-train checkpoints (net/checkpoint.h, in-process through tools/train/train_cli.h): a run
// resumed from a mid-run checkpoint ends with weights, BN statistics and momenta bitwise equal
// to the uninterrupted run's, on the reference executor and under emu (the other cases run on
// the reference executor only, to keep CI short) (with shuffling,
// augmentation and a step-dependent learning rate, so data order and RNG state matter); SIGINT
// and SIGTERM (raised by the FARSEE_TRAIN_RAISE_AT_STEP test hook) write a checkpoint that
// resumes and exit 130 / 143; a NaN loss (FARSEE_TRAIN_INJECT_NAN_AT_STEP) stops the run with an
// error naming the step and keeps the last good checkpoint; --keep-last prunes; --config,
// --epochs and the learning-rate schedules (read back from --log); an fp16 (mixed-precision) run
// resumes bitwise too, its loss scaler included, and logs the scale and skipped steps.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "net/checkpoint.h"
#include "net/trainer.h"
#include "tests/net/training_fixture.h"
#include "tests/support/executors.h"
#include "tests/support/temp_dir.h"
#include "tools/train/lr_schedule.h"
#include "tools/train/train_cli.h"

namespace farsee::net {
namespace {

namespace fs = std::filesystem;
using train_test::train_data_dir;

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

class TrainCheckpoint : public ::testing::TestWithParam<std::string> {
 protected:
  std::string path(const std::string& leaf) const { return (dir_ / leaf).string(); }

  // A tiny run with everything that makes resuming hard: shuffling, the paper's augmentation
  // (scales, rotations, flips, colour noise) made by 2 prefetching threads, a poly schedule,
  // momentum from the first step.
  std::vector<std::string> args(const std::string& executor, int steps) const {
    return {"--data",         train_data_dir() + "cityscapes",
            "--preset",       "tiny-paper",
            "--steps",        std::to_string(steps),
            "--batch",        "2",
            "--input-size",   "32x64",
            "--lr",           "0.05",
            "--seed",         "7",
            "--executor",     executor,
            "--print-every",  "1000",
            "--augmentation", "paper",
            "--workers",      "2"};
  }
  static std::vector<std::string> plus(std::vector<std::string> a,
                                       const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  int run(const std::vector<std::string>& a, std::string* err = nullptr) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = tools::train_main(a);
    const std::string out = ::testing::internal::GetCapturedStdout();
    const std::string e = ::testing::internal::GetCapturedStderr();
    if (err) *err = e + out;
    return rc;
  }
  static void expect_bitwise(const HostTensors& got, const HostTensors& want, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (const auto& [name, t] : want) {
      const HostTensor& g = got.at(name);
      ASSERT_EQ(g.data.size(), t.data.size()) << what << " " << name;
      for (size_t i = 0; i < t.data.size(); ++i) {
        ASSERT_EQ(std::memcmp(&g.data[i], &t.data[i], sizeof(float)), 0)
            << what << " " << name << "[" << i << "]: " << g.data[i] << " vs " << t.data[i];
      }
    }
  }
  test::TempDir dir_{"farsee_train_ckpt"};
};

using TrainOptions = TrainCheckpoint;

TEST_P(TrainCheckpoint, ResumeIsBitwiseIdentical) {
  const std::string ex = GetParam();
  std::string err;
  // Uninterrupted: 6 steps, the final checkpoint in full/.
  ASSERT_EQ(run(plus(args(ex, 6), {"--ckpt-dir", path("full")}), &err), 0) << err;
  // The same run checkpointing every 2 steps; resumed from step 4's checkpoint.
  ASSERT_EQ(
      run(plus(args(ex, 6), {"--ckpt-dir", path("mid"), "--ckpt-every", "2", "--keep-last", "2"}),
          &err),
      0)
      << err;
  const auto kept = tools::list_checkpoints(path("mid"));
  ASSERT_EQ(kept.size(), 2u);  // --keep-last 2: steps 4 and 6
  EXPECT_EQ(kept[0].first, 4);
  EXPECT_EQ(kept[1].first, 6);
  ASSERT_EQ(run({"--resume", kept[0].second, "--ckpt-dir", path("resumed")}, &err), 0) << err;
  EXPECT_NE(err.find("resuming at step 4"), std::string::npos) << err;
  const tools::Checkpoint want = tools::read_checkpoint(path("full/ckpt-00000006.safetensors"));
  const tools::Checkpoint got = tools::read_checkpoint(path("resumed/ckpt-00000006.safetensors"));
  EXPECT_EQ(got.step, 6);
  expect_bitwise(got.state, want.state, "weights");
  expect_bitwise(got.momenta, want.momenta, "momenta");
  EXPECT_EQ(got.info["data"]["next_batch"], 6);
  EXPECT_EQ(got.info["data"]["seed"], 7);
}

INSTANTIATE_TEST_SUITE_P(Executors, TrainCheckpoint, ::testing::Values("reference", "cpu", "emu"));

TEST_F(TrainOptions, SigintWritesACheckpointThatResumes) {
  const std::string ex = "reference";
  std::string err;
  ASSERT_EQ(run(plus(args(ex, 5), {"--ckpt-dir", path("full")}), &err), 0) << err;
  {
    const ScopedEnv hook("FARSEE_TRAIN_RAISE_AT_STEP", "3");
    EXPECT_EQ(run(plus(args(ex, 5), {"--ckpt-dir", path("run")}), &err), 130) << err;
  }
  EXPECT_NE(err.find("SIGINT at step 3"), std::string::npos) << err;
  const auto written = tools::list_checkpoints(path("run"));
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].first, 3);
  // --resume DIR takes its latest checkpoint.
  ASSERT_EQ(run({"--resume", path("run")}, &err), 0) << err;
  expect_bitwise(tools::read_checkpoint(path("run/ckpt-00000005.safetensors")).state,
                 tools::read_checkpoint(path("full/ckpt-00000005.safetensors")).state, "weights");
}

TEST_F(TrainOptions, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string ex = "reference";
  std::string err;
  {
    const ScopedEnv hook("FARSEE_TRAIN_INJECT_NAN_AT_STEP", "4");
    EXPECT_EQ(run(plus(args(ex, 6), {"--ckpt-dir", path("run"), "--ckpt-every", "2"}), &err), 1);
  }
  EXPECT_NE(err.find("step 4: the loss is NaN"), std::string::npos) << err;
  EXPECT_NE(err.find("ckpt-00000002.safetensors"), std::string::npos) << err;
  const auto written = tools::list_checkpoints(path("run"));
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].first, 2);
  const tools::Checkpoint c = tools::read_checkpoint(written[0].second);
  for (const auto& [name, t] : c.state) {
    for (float v : t.data) ASSERT_TRUE(std::isfinite(v)) << name;
  }
}

TEST_F(TrainOptions, SigtermExits143) {
  std::string err;
  const ScopedEnv hook("FARSEE_TRAIN_RAISE_AT_STEP", "1:TERM");
  EXPECT_EQ(run(plus(args("reference", 3), {"--ckpt-dir", path("run")}), &err), 143) << err;
  EXPECT_EQ(tools::list_checkpoints(path("run")).size(), 1u);
}

// --config holds flags, the command line overrides it; --epochs; the schedules' learning rates.
TEST_F(TrainOptions, ConfigEpochsAndSchedules) {
  const std::string config = path("config.json");
  std::ofstream(config) << R"({"data": ")" << train_data_dir() << R"(cityscapes",
    "preset": "tiny-paper", "batch": 2, "input-size": "64x64", "lr": 0.1, "no-augment": true,
    "epochs": 2, "lr-schedule": "cosine", "warmup-steps": 2, "executor": "reference",
    "print-every": 100})";
  std::string err;
  ASSERT_EQ(run({"--config", config, "--log", path("log.jsonl"), "--lr-schedule", "cosine"}, &err),
            0)
      << err;
  std::vector<double> lrs;
  std::ifstream log(path("log.jsonl"));
  for (std::string line; std::getline(log, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j["event"] == "step") lrs.push_back(j["lr"].get<double>());
  }
  // 2 epochs of 5 images at batch 2: 5 steps; warm-up 0.05, 0.1, then cosine over 3 steps.
  ASSERT_EQ(lrs.size(), 5u);
  const double want[5] = {0.05, 0.1, 0.1, 0.1 * 0.5 * (1 + std::cos(M_PI / 3)),
                          0.1 * 0.5 * (1 + std::cos(2 * M_PI / 3))};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(lrs[size_t(i)], want[i], 1e-7) << "step " << i + 1;
  // The step schedule.
  ASSERT_EQ(run({"--config", config, "--log", path("log2.jsonl"), "--lr-schedule", "step",
                 "--lr-step-size", "2", "--lr-gamma", "0.5", "--warmup-steps", "0"},
                &err),
            0)
      << err;
  lrs.clear();
  std::ifstream log2(path("log2.jsonl"));
  for (std::string line; std::getline(log2, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j["event"] == "step") lrs.push_back(j["lr"].get<double>());
  }
  ASSERT_EQ(lrs.size(), 5u);
  const double want2[5] = {0.1, 0.1, 0.05, 0.05, 0.025};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(lrs[size_t(i)], want2[i], 1e-7) << "step " << i + 1;
  EXPECT_EQ(run({"--config", config, "--lr-schedule", "step"}, &err), 1);
  EXPECT_NE(err.find("--lr-step-size"), std::string::npos) << err;
  EXPECT_EQ(run({"--config", config, "--precision", "fp8"}, &err), 1);
  EXPECT_NE(err.find("--precision"), std::string::npos) << err;
  EXPECT_EQ(run({"--config", config, "--precision", "fp16", "--loss-scale", "0"}, &err), 1);
  EXPECT_NE(err.find("--loss-scale"), std::string::npos) << err;
}

// Mixed precision (--precision fp16) on the reference executor and emu: the loss scaler's state is
// part of the checkpoint. The scale doubles after every finite step (--loss-scale-growth-interval
// 1), so a resumed run that lost it would scale its fp16 gradients differently and end with other
// weights. A run resumed from step 2 of 3 ends bitwise equal to the uninterrupted one (weights, BN
// statistics, momenta, the scaler); the progress line and the --log lines show the scale and the
// skipped steps; an initial scale of 1e30 overflows fp16 and the logged step is skipped with the
// scale halved.
using Fp16Checkpoint = TrainCheckpoint;

TEST_P(Fp16Checkpoint, ResumeIsBitwiseIdentical) {
  const std::string ex = GetParam();
  if (ex == "emu") {
    farsee::test::ExecCase c{Executor::Emu, emu::Schedule::GreedyForward};
    FARSEE_PREPARE_EXEC_CASE(c);
  }
  const std::vector<std::string> fp16 = {"--precision", "fp16", "--loss-scale-growth-interval",
                                         "1"};
  std::string err;
  ASSERT_EQ(run(plus(plus(args(ex, 3), fp16), {"--ckpt-dir", path("mid"), "--ckpt-every", "1",
                                               "--log", path("log.jsonl"), "--print-every", "1"}),
                &err),
            0)
      << err;
  EXPECT_NE(err.find("fp16 mixed precision (loss scale 65536)"), std::string::npos) << err;
  EXPECT_NE(err.find(" scale "), std::string::npos) << err;
  std::vector<nlohmann::json> steps;
  {
    std::ifstream log(path("log.jsonl"));
    for (std::string line; std::getline(log, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j["event"] == "step") steps.push_back(j);
    }
  }
  ASSERT_EQ(steps.size(), 3u);
  // 65536 doubles after each finite step and halves after a skipped one.
  double want_scale = 65536;
  int64_t skipped = 0;
  for (const nlohmann::json& j : steps) {
    const bool skip = j.at("skipped").get<bool>();
    want_scale *= skip ? 0.5 : 2.0;
    skipped += skip ? 1 : 0;
    EXPECT_EQ(j.at("loss_scale").get<double>(), want_scale) << j.dump();
    EXPECT_EQ(j.at("skipped_steps").get<int64_t>(), skipped) << j.dump();
  }
  const auto kept = tools::list_checkpoints(path("mid"));
  ASSERT_EQ(kept.size(), 3u);
  ASSERT_EQ(kept[1].first, 2);
  EXPECT_EQ(tools::read_checkpoint(kept[1].second).info["loss_scaler"]["scale"].get<double>(),
            steps[1]["loss_scale"].get<double>());
  ASSERT_EQ(run({"--resume", kept[1].second, "--ckpt-dir", path("resumed")}, &err), 0) << err;
  const tools::Checkpoint want = tools::read_checkpoint(path("mid/ckpt-00000003.safetensors"));
  const tools::Checkpoint got = tools::read_checkpoint(path("resumed/ckpt-00000003.safetensors"));
  expect_bitwise(got.state, want.state, "weights");
  expect_bitwise(got.momenta, want.momenta, "momenta");
  EXPECT_EQ(got.info["loss_scaler"], want.info["loss_scaler"]);
  EXPECT_EQ(got.info["options"]["precision"], "fp16");

  // Overflow through the program: the step is skipped, the scale halved (one step; on the
  // reference executor only: emu's skip is training_fp16_test's).
  if (ex != "reference") return;
  ASSERT_EQ(run(plus(args(ex, 1), {"--precision", "fp16", "--loss-scale", "1e30", "--log",
                                   path("overflow.jsonl")}),
                &err),
            0)
      << err;
  std::ifstream log(path("overflow.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(log, line));
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_TRUE(j.at("skipped").get<bool>()) << line;
  EXPECT_EQ(j.at("loss_scale").get<double>(), double(1e30f * 0.5f)) << line;
  EXPECT_EQ(j.at("skipped_steps").get<int64_t>(), 1) << line;
}

INSTANTIATE_TEST_SUITE_P(Executors, Fp16Checkpoint, ::testing::Values("reference", "emu"));

// The schedules as functions: the paper's x0.9 every 50 epochs, step, warm-up into poly.
TEST(LearningRate, Schedules) {
  tools::LrSchedule paper;
  paper.kind = "paper";
  paper.lr = 0.1;
  EXPECT_DOUBLE_EQ(tools::learning_rate(paper, 0, 1000, 0), 0.1);
  EXPECT_DOUBLE_EQ(tools::learning_rate(paper, 500, 1000, 49), 0.1);
  EXPECT_DOUBLE_EQ(tools::learning_rate(paper, 510, 1000, 50), 0.1 * 0.9);
  EXPECT_DOUBLE_EQ(tools::learning_rate(paper, 999, 1000, 399), 0.1 * std::pow(0.9, 7));
  tools::LrSchedule step;
  step.kind = "step";
  step.lr = 1;
  step.step_size = 10;
  step.gamma = 0.5;
  EXPECT_DOUBLE_EQ(tools::learning_rate(step, 9, 100, 0), 1);
  EXPECT_DOUBLE_EQ(tools::learning_rate(step, 10, 100, 0), 0.5);
  EXPECT_DOUBLE_EQ(tools::learning_rate(step, 25, 100, 0), 0.25);
  tools::LrSchedule poly;
  poly.lr = 1;
  poly.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(tools::learning_rate(poly, 0, 14, 0), 0.25);
  EXPECT_DOUBLE_EQ(tools::learning_rate(poly, 3, 14, 0), 1);
  EXPECT_DOUBLE_EQ(tools::learning_rate(poly, 4, 14, 0), 1);
  EXPECT_DOUBLE_EQ(tools::learning_rate(poly, 9, 14, 0), std::pow(0.5, 0.9));
  tools::LrSchedule cosine = poly;
  cosine.kind = "cosine";
  EXPECT_NEAR(tools::learning_rate(cosine, 9, 14, 0), 0.5, 1e-15);
  EXPECT_NEAR(tools::learning_rate(cosine, 13, 14, 0), 0.5 * (1 + std::cos(M_PI * 0.9)), 1e-15);
}

// A real SIGINT from another process to the farsee-train program (<build>/bin/, built with the
// tests: a missing program fails) mid-run: exit status 130 and a checkpoint that resumes.
TEST_F(TrainOptions, SigintToTheProgram) {
  const fs::path program = fs::path(FARSEE_PROGRAM_DIR) / "farsee-train";
  ASSERT_TRUE(fs::exists(program)) << program << " is not built";
  std::vector<std::string> a =
      plus(args("reference", 100000), {"--ckpt-dir", path("run"), "--ckpt-every", "1"});
  a.insert(a.begin(), program.string());
  std::vector<char*> argv;
  for (std::string& x : a) argv.push_back(x.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Once a checkpoint exists the handlers are installed.
  for (int i = 0; i < 600 && tools::list_checkpoints(path("run")).empty(); ++i) ::usleep(100000);
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  const auto written = tools::list_checkpoints(path("run"));
  ASSERT_FALSE(written.empty());
  const int64_t last = written.back().first;
  std::string err;
  ASSERT_EQ(run({"--resume", path("run"), "--steps", std::to_string(last + 1)}, &err), 0) << err;
  EXPECT_EQ(tools::list_checkpoints(path("run")).back().first, last + 1);
}

// Initialisation: from scratch torchvision's Kaiming init for the backbone (N(0, 2 / fan_out)),
// PyTorch's defaults for the head (U(+-1/sqrt(fan_in))), BN 1 / 0, running statistics 0 / 1;
// --init with backbone.* tensors only takes them and initialises the head.
TEST_F(TrainOptions, InitFromScratchAndFromABackbone) {
  const FarSeeConfig config = preset_config("tiny-paper");
  const HostTensors scratch = training_init(config, 3);
  auto stats = [](const HostTensor& t) {
    double sum = 0, sq = 0, peak = 0;
    for (float v : t.data) {
      sum += v;
      sq += double(v) * v;
      peak = std::max(peak, std::fabs(double(v)));
    }
    const double n = double(t.data.size());
    return std::make_tuple(sum / n, std::sqrt(sq / n - (sum / n) * (sum / n)), peak);
  };
  // backbone.layer4.0.conv2: 64 x 64 x 3 x 3 -> std sqrt(2 / (64 * 9)) = 0.0589.
  const auto [m, sd, peak] = stats(scratch.at("backbone.layer4.0.conv2.weight"));
  EXPECT_NEAR(m, 0.0, 0.003);
  EXPECT_NEAR(sd, std::sqrt(2.0 / (64 * 9)), 0.003);
  for (const auto& [name, t] : scratch) {
    const bool head = name.compare(0, 5, "head.") == 0;
    if (t.shape.size() == 4 && head) {  // U(-b, b), b = 1 / sqrt(fan_in)
      const double b = 1.0 / std::sqrt(double(t.shape[1] * t.shape[2] * t.shape[3]));
      EXPECT_LE(std::get<2>(stats(t)), b) << name;
      EXPECT_GT(std::get<2>(stats(t)), 0.5 * b) << name;
    }
    const auto ends = [&](const char* s) {
      const std::string x(s);
      return name.size() > x.size() && name.compare(name.size() - x.size(), x.size(), x) == 0;
    };
    if (ends(".running_var") || (t.shape.size() == 1 && ends(".weight"))) {
      for (float v : t.data) ASSERT_EQ(v, 1.f) << name;
    }
    if (ends(".running_mean")) {
      for (float v : t.data) ASSERT_EQ(v, 0.f) << name;
    }
  }
  // A backbone-only file (plus a classifier the converter may leave): taken as it is.
  weights::SafetensorsWriter w;
  const HostTensors other = training_init(config, 99);
  for (const auto& [name, t] : other) {
    if (name.compare(0, 9, "backbone.") == 0) w.add(name, t.shape, t.data);
  }
  w.add("fc.weight", {2, 2}, std::vector<float>{1, 2, 3, 4});
  const std::string file = path("backbone.safetensors");
  w.write(file);
  std::string err;
  ASSERT_EQ(run(plus(args("reference", 1), {"--init", file, "--ckpt-dir", path("run")}), &err), 0)
      << err;
  EXPECT_NE(err.find("ignoring 1 tensors outside the backbone"), std::string::npos) << err;
  // A backbone missing a tensor is an error naming it.
  weights::SafetensorsWriter partial;
  partial.add("backbone.conv1.weight", other.at("backbone.conv1.weight").shape,
              other.at("backbone.conv1.weight").data);
  partial.write(file);
  EXPECT_EQ(run(plus(args("reference", 1), {"--init", file}), &err), 1);
  EXPECT_NE(err.find("tensor 'backbone.bn1.weight': missing"), std::string::npos) << err;
}

}  // namespace
}  // namespace farsee::net
