// farsee-train --augment-on executor (the augmentation op, kernels/augment.h, on the training
// executor) against --augment-on host (worker threads augment): with the paper's augmentation
// (scales, rotations, crops with padding, flips, colour noise; labels at twice the input size)
// the op's batches are the host's bit for bit (tests/tools/data/augment_op_test.cpp), so after
// 5 SGD steps (3 on emu, the later ones CUDA-graph replays) the weights, BN statistics and
// momenta must be bitwise equal (measured: equal) on the reference executor, in fp32 and in fp16
// mixed precision (the op writes the fp16 input itself), on the cpu executor and on emu (the CUDA
// kernels; the uploads on the trainer's copy stream, ordered by events, pipelined two slots deep;
// emu fp16 also measured equal, 24 s: left out of CI).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "net/checkpoint.h"
#include "tests/net/training_fixture.h"
#include "tests/support/temp_dir.h"
#include "tools/train/train_cli.h"

namespace farsee::net {
namespace {

namespace fs = std::filesystem;

struct AugmentOnCase {
  const char* executor;
  const char* precision;
  int steps;  // >= 3: the feeder's two slots are both reused
};

class TrainAugmentOn : public ::testing::TestWithParam<AugmentOnCase> {
 protected:
  // GetParam().steps steps; returns the final checkpoint.
  tools::Checkpoint train(const std::string& augment_on) {
    const std::string ckpt = (dir_ / augment_on).string();
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = tools::train_main({"--data",         train_test::train_data_dir() + "cityscapes",
                                      "--preset",       "tiny-paper",
                                      "--steps",        std::to_string(GetParam().steps),
                                      "--batch",        "2",
                                      "--input-size",   "32x64",
                                      "--label-size",   "64x128",
                                      "--lr",           "0.05",
                                      "--seed",         "11",
                                      "--executor",     GetParam().executor,
                                      "--precision",    GetParam().precision,
                                      "--augmentation", "paper",
                                      "--workers",      "2",
                                      "--augment-on",   augment_on,
                                      "--ckpt-dir",     ckpt});
    const std::string out = ::testing::internal::GetCapturedStdout();
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(rc, 0) << err << out;
    return tools::read_checkpoint(
        (fs::path(ckpt) / tools::checkpoint_file_name(GetParam().steps)).string());
  }
  test::TempDir dir_{"farsee_train_augment_on"};
};

void expect_bitwise(const HostTensors& got, const HostTensors& want, const char* what) {
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

TEST_P(TrainAugmentOn, ExecutorAugmentationTrainsBitwiseLikeTheHost) {
  const tools::Checkpoint host = train("host");
  const tools::Checkpoint op = train("executor");
  expect_bitwise(op.state, host.state, "weights");
  expect_bitwise(op.momenta, host.momenta, "momenta");
}

INSTANTIATE_TEST_SUITE_P(
    Executors, TrainAugmentOn,
    ::testing::Values(AugmentOnCase{"reference", "fp32", 5}, AugmentOnCase{"cpu", "fp32", 5},
                      AugmentOnCase{"reference", "fp16", 5}, AugmentOnCase{"emu", "fp32", 3}),
    [](const auto& info) { return std::string(info.param.executor) + "_" + info.param.precision; });

}  // namespace
}  // namespace farsee::net
