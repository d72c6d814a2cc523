// Weights that carry their settings (issue 22 item 4; net/api/weights_metadata.h): what
// farsee-train --save and its checkpoints record (network, input size trained at, class names) is
// what farsee-eval and farsee-infer use when no flag says otherwise, a flag that contradicts the
// file's network is an error naming both, and the shipped weights need no flag but --weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "net/api/weights_metadata.h"
#include "tests/support/mentions.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_dir.h"
#include "tools/data/image_io.h"
#include "tools/eval/eval_cli.h"
#include "tools/train/train_cli.h"

namespace {

namespace fs = std::filesystem;
using farsee::net::WeightsMetadata;

const std::string kFixtures = FARSEE_TEST_DATA_DIR;
const std::string kShipped =
    kFixtures + "/../../weights/shipped/farsee-paper-synthetic.safetensors";

std::string program(const char* name) {
  return (fs::path(FARSEE_PROGRAM_DIR) / name).string();
}

// An in-process run of farsee-train or farsee-eval: exit status, stdout + stderr.
template <typename Main>
farsee::test::ProgramResult run_in_process(Main main, const std::vector<std::string>& args) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int rc = main(args);
  std::string out = ::testing::internal::GetCapturedStdout();
  out += ::testing::internal::GetCapturedStderr();
  return {rc, out};
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class WeightsSettings : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  farsee::test::TempDir dir_{"farsee_weights_settings"};
};

void expect_tiny_19_at_32x64(const WeightsMetadata& m) {
  ASSERT_TRUE(m.config.has_value());
  EXPECT_EQ(m.config->preset, "tiny-paper");
  EXPECT_EQ(m.num_classes, 19);
  EXPECT_EQ(m.input_height, 32);
  EXPECT_EQ(m.input_width, 64);
  ASSERT_EQ(m.class_names.size(), 19u);
  EXPECT_EQ(m.class_names[0], "road");
  EXPECT_EQ(m.class_names[18], "bicycle");
}

// One training step of tiny-paper with 19 classes at 32x64, saved and checkpointed: both files
// record the settings; farsee-eval and farsee-infer given only --weights use them (the same
// figures as with the flags spelled out), and a contradicting --preset or --num-classes is refused.
TEST_F(WeightsSettings, TrainSaveIsReadBackByEvalAndInfer) {
  const std::string data = kFixtures + "/train/cityscapes", saved = path("tiny19.safetensors");
  const auto train = run_in_process(farsee::tools::train_main,
                                    {"--data",       data,         "--split",       "train",
                                     "--preset",     "tiny-paper", "--num-classes", "19",
                                     "--steps",      "1",          "--batch",       "1",
                                     "--input-size", "32x64",      "--no-augment",  "--no-shuffle",
                                     "--executor",   "reference",  "--save",        saved,
                                     "--ckpt-dir",   path("ckpt")});
  ASSERT_EQ(train.exit_code, 0) << train.output;
  expect_tiny_19_at_32x64(farsee::net::read_weights_metadata(saved));
  expect_tiny_19_at_32x64(
      farsee::net::read_weights_metadata(path("ckpt/ckpt-00000001.safetensors")));

  const std::vector<std::string> base = {"--data",    data,  "--split",    "train",
                                         "--weights", saved, "--executor", "reference"};
  std::vector<std::string> plain = base, spelled = base;
  plain.insert(plain.end(), {"--json", path("plain.json")});
  spelled.insert(spelled.end(), {"--preset", "tiny-paper", "--num-classes", "19", "--input-size",
                                 "32x64", "--json", path("spelled.json")});
  const auto a = run_in_process(farsee::tools::eval_main, plain);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_MENTIONS(a.output, "preset tiny-paper, input 32x64");
  const auto b = run_in_process(farsee::tools::eval_main, spelled);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_EQ(nlohmann::json::parse(read_file(path("plain.json"))),
            nlohmann::json::parse(read_file(path("spelled.json"))));

  std::vector<std::string> wrong = base;
  wrong.insert(wrong.end(), {"--preset", "paper"});
  const auto c = run_in_process(farsee::tools::eval_main, wrong);
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_MENTIONS(c.output, "preset 'paper', 19 classes is not the network of weights file");
  EXPECT_MENTIONS(c.output, "(preset 'tiny-paper', 19 classes, from its metadata)");
  wrong.back() = "tiny-paper";  // its own 5 classes
  EXPECT_EQ(run_in_process(farsee::tools::eval_main, wrong).exit_code, 1);

  const std::string image = data + "/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png";
  const auto infer =
      farsee::test::run_program(program("farsee-infer") + " --weights " + saved +
                                " --executor reference --out " + path("out") + " " + image);
  ASSERT_EQ(infer.exit_code, 0) << infer.output;
  EXPECT_MENTIONS(infer.output, "preset tiny-paper, input 32x64");
  const auto refused =
      farsee::test::run_program(program("farsee-infer") + " --weights " + saved +
                                " --preset rtseg --out " + path("out") + " " + image);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_MENTIONS(refused.output, "preset 'rtseg', 19 classes is not the network of weights file");
}

// The shipped weights with nothing but --weights: paper at 256x512, fp32 (their metadata; the
// labels at these settings are checked bitwise by tests/net/api_test.cpp). One run: ~1 s on a CPU.
TEST_F(WeightsSettings, ShippedWeightsNeedNoOtherFlag) {
  const std::string image = kFixtures + "/api/scene.png";
  const auto plain = farsee::test::run_program(program("farsee-infer") + " --weights " + kShipped +
                                               " --out " + path("plain") + " " + image);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_MENTIONS(plain.output, "preset paper, input 256x512, fp32");
  const farsee::tools::Image labels = farsee::tools::read_grey(path("plain/scene_labels.png"));
  const farsee::tools::Image scene = farsee::tools::read_rgb(image);
  EXPECT_EQ(labels.height, scene.height);
  EXPECT_EQ(labels.width, scene.width);
}

}  // namespace
