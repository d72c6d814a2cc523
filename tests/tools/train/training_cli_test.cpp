// farsee-train end to end (in-process, tools/train/train_cli.h): `--steps 5` on the fixture's
// Cityscapes-layout folder reproduces PyTorch's weights (tests/fixtures/train/tiny.*, made by
// tools/pytorch/make_train_fixtures.py from the same folder and flags), and bad data is an error
// naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/net/training_fixture.h"
#include "tests/support/temp_dir.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/train/train_cli.h"
#include "weights/safetensors.h"

namespace farsee::net {
namespace {

namespace fs = std::filesystem;
using train_test::relative_error;
using train_test::train_data_dir;

class TrainCli : public ::testing::Test {
 protected:
  // The fixture's initial weights as a safetensors file (what --init reads).
  std::string write_init(const FarSeeConfig& config, uint64_t seed) {
    const HostTensors init = train_test::seeded_parameters(config, seed);
    weights::SafetensorsWriter w;
    w.set_metadata("preset", config.preset);
    for (const ParamSpec& spec : parameter_specs(config)) {
      w.add(spec.name, spec.shape, init.at(spec.name).data);
    }
    const std::string path = (dir_ / "init.safetensors").string();
    w.write(path);
    return path;
  }
  // A copy of the fixture folder to break.
  std::string copy_data() {
    const fs::path to = dir_ / "data";
    fs::copy(train_data_dir() + "cityscapes", to, fs::copy_options::recursive);
    return to.string();
  }
  // Runs farsee-train; returns the exit status, stderr in `err`.
  int run(const std::vector<std::string>& args, std::string* err = nullptr) {
    ::testing::internal::CaptureStderr();
    const int rc = tools::train_main(args);
    const std::string text = ::testing::internal::GetCapturedStderr();
    if (err) *err = text;
    return rc;
  }
  // The fixture run's flags (tests/fixtures/train/tiny.json).
  std::vector<std::string> tiny_args(const std::string& data, const std::string& init, int steps) {
    const nlohmann::json m = train_test::read_json(train_data_dir() + "tiny.json");
    std::vector<std::string> a = {"--data",
                                  data,
                                  "--split",
                                  m["split"],
                                  "--preset",
                                  m["preset"],
                                  "--steps",
                                  std::to_string(steps),
                                  "--batch",
                                  std::to_string(m["batch"].get<int>()),
                                  "--lr",
                                  std::to_string(m["lr"].get<double>()),
                                  "--momentum",
                                  std::to_string(m["momentum"].get<double>()),
                                  "--weight-decay",
                                  std::to_string(m["weight_decay"].get<double>()),
                                  "--lr-schedule",
                                  m["lr_schedule"],
                                  "--input-size",
                                  std::to_string(m["input_size"][0].get<int>()) + "x" +
                                      std::to_string(m["input_size"][1].get<int>()),
                                  "--no-augment",
                                  "--no-shuffle",
                                  "--executor",
                                  "reference"};
    if (!init.empty()) a.insert(a.end(), {"--init", init});
    return a;
  }
  test::TempDir dir_{"farsee_train_cli"};
};

TEST_F(TrainCli, FiveStepsReproducePyTorch) {
  const nlohmann::json m = train_test::read_json(train_data_dir() + "tiny.json");
  const FarSeeConfig config = preset_config("tiny-paper");
  const std::string init = write_init(config, m["init_seed"].get<uint64_t>());
  const std::string out = (dir_ / "final.safetensors").string();
  std::vector<std::string> args = tiny_args(train_data_dir() + "cityscapes", init, 5);
  args.insert(args.end(), {"--save", out});
  std::string err;
  ASSERT_EQ(run(args, &err), 0) << err;
  // --save holds exactly the weight-file tensors (DESIGN.md section 7, fp32), reloads as weights.
  const HostTensors saved = load_parameters(out, config);
  const weights::SafetensorsFile want(train_data_dir() + "tiny.final.safetensors");
  ASSERT_EQ(saved.size(), want.names().size());
  double worst = 0;
  for (const std::string& name : want.names()) {
    const double rel = relative_error(saved.at(name).data, want.read_floats(name));
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-4) << name;
  }
  std::printf("farsee-train --steps 5: worst tensor error %.3g relative to PyTorch\n", worst);
}

TEST_F(TrainCli, MissingLabelFileIsAnErrorNamingIt) {
  const std::string data = copy_data();
  const fs::path label =
      fs::path(data) / "gtFine/train/bremen/bremen_000003_000019_gtFine_labelIds.png";
  fs::remove(label);
  std::string err;
  EXPECT_EQ(run(tiny_args(data, "", 1), &err), 1);
  EXPECT_NE(err.find("missing label file"), std::string::npos) << err;
  EXPECT_NE(err.find(label.string()), std::string::npos) << err;
}

TEST_F(TrainCli, ImageAndLabelOfDifferentSizesIsAnError) {
  const std::string data = copy_data();
  const fs::path label =
      fs::path(data) / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png";
  tools::Image small;
  small.width = 20;
  small.height = 10;
  small.channels = 1;
  small.data.assign(200, 7);
  tools::write_png(label.string(), small);
  std::string err;
  EXPECT_EQ(run(tiny_args(data, "", 1), &err), 1);
  EXPECT_NE(err.find(label.string()), std::string::npos) << err;
  EXPECT_NE(err.find("96x192"), std::string::npos) << err;
  EXPECT_NE(err.find("10x20"), std::string::npos) << err;
}

TEST_F(TrainCli, UnreadableImageIsAnErrorNamingIt) {
  const std::string data = copy_data();
  const fs::path image =
      fs::path(data) / "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png";
  std::ofstream(image, std::ios::binary | std::ios::trunc) << "not a png";
  std::string err;
  EXPECT_EQ(run(tiny_args(data, "", 2), &err), 1);
  EXPECT_NE(err.find("cannot read image"), std::string::npos) << err;
  EXPECT_NE(err.find(image.string()), std::string::npos) << err;
}

TEST_F(TrainCli, BadFlagsAreErrors) {
  std::string err;
  EXPECT_EQ(run({"--data", train_data_dir() + "cityscapes", "--lr-schedule", "linear"}, &err), 1);
  EXPECT_NE(err.find("--lr-schedule"), std::string::npos) << err;
  EXPECT_EQ(run({"--data", (dir_ / "nothing").string()}, &err), 1);
  EXPECT_NE(err.find("nothing"), std::string::npos) << err;
}

// --class-weights: inverse-log is 1 / ln(1.02 + share) of each class among the training split's
// labelled pixels; weights all 1 train bitwise as no weights, other weights train differently; a
// wrong count or a negative weight is an error naming the flag.
TEST_F(TrainCli, ClassWeights) {
  const std::string data = train_data_dir() + "cityscapes";
  const FarSeeConfig config = preset_config("tiny-paper");
  const int classes = config.num_classes;
  // Hand-computed once (Python: the 5 train labelIds PNGs of tests/fixtures/train/cityscapes
  // decoded with zlib, labelIds mapped to trainIds by cityscapesScripts' table, 7 road -> 0,
  // 8 sidewalk -> 1, 11 building -> 2, 12 wall -> 3, 13 fence -> 4, the others (0, 1, 4, 9)
  // ignored): pixels per class 16384, 17152, 15360, 4864, 7424 of 61184 labelled, so the weights 1
  // / ln(1.02 + n / 61184), e.g. 1 / ln(1.02 + 16384 / 61184) = 1 / ln(1.287782) = 3.953793.
  const std::vector<double> want = {3.953792968835668, 3.8077582509944015, 4.169442763686224,
                                    10.542559289616776, 7.564178791177644};
  ASSERT_EQ(int(want.size()), classes);
  const std::string log = (dir_ / "log.jsonl").string();
  std::vector<std::string> args = tiny_args(data, "", 1);
  args.insert(args.end(), {"--class-weights", "inverse-log", "--log", log});
  std::string err;
  ASSERT_EQ(run(args, &err), 0) << err;
  std::ifstream in(log);
  std::vector<float> got;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("event", "") == "class_weights") got = j["weights"].get<std::vector<float>>();
  }
  ASSERT_EQ(int(got.size()), classes);
  for (int c = 0; c < classes; ++c) {
    EXPECT_FLOAT_EQ(got[size_t(c)], float(want[size_t(c)])) << "class " << c;
  }

  auto train_with = [&](const std::string& weights, const std::string& name) {
    const std::string out = (dir_ / name).string();
    std::vector<std::string> a = tiny_args(data, "", 2);
    if (!weights.empty()) a.insert(a.end(), {"--class-weights", weights});
    a.insert(a.end(), {"--save", out});
    std::string e;
    EXPECT_EQ(run(a, &e), 0) << e;
    return load_parameters(out, config);
  };
  std::string ones = "1", skewed = "4";
  for (int c = 1; c < classes; ++c) {
    ones += ",1";
    skewed += c % 2 ? ",0.5" : ",2";
  }
  const HostTensors plain = train_with("", "plain.safetensors");
  const HostTensors unit = train_with(ones, "unit.safetensors");
  const HostTensors other = train_with(skewed, "skewed.safetensors");
  bool differs = false;
  for (const auto& [name, t] : plain) {
    EXPECT_EQ(t.data, unit.at(name).data) << name;
    differs = differs || t.data != other.at(name).data;
  }
  EXPECT_TRUE(differs) << "class weights must change the training";

  std::vector<std::string> bad = tiny_args(data, "", 1);
  bad.insert(bad.end(), {"--class-weights", "1,2"});
  EXPECT_EQ(run(bad, &err), 1);
  EXPECT_NE(err.find("--class-weights: 2 weights for " + std::to_string(classes)),
            std::string::npos)
      << err;
  bad.back() = "-1," + ones.substr(2);
  EXPECT_EQ(run(bad, &err), 1);
  EXPECT_NE(err.find("--class-weights"), std::string::npos) << err;
}

TEST_F(TrainCli, MemoryPlanNeedsNoData) {
  ::testing::internal::CaptureStdout();
  const int rc = tools::train_main({"--memory-plan", "--batch", "8", "--input-size", "512x1024"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("activations + activation gradients"), std::string::npos) << out;
  // The README's paper fp32 plan (2688 MiB before the logits buffer was padded to 24 channels for
  // the sub-pixel stores: the planner's packing then came out 32 MiB smaller; lower bound 2624).
  EXPECT_NE(out.find("2656.0 MiB"), std::string::npos) << out;
  // --precision fp16 (mixed precision): the same plan with every buffer half the bytes.
  ::testing::internal::CaptureStdout();
  const int rc16 = tools::train_main(
      {"--memory-plan", "--batch", "8", "--input-size", "512x1024", "--precision", "fp16"});
  const std::string out16 = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc16, 0);
  EXPECT_NE(out16.find("fp16 activations"), std::string::npos) << out16;
  EXPECT_NE(out16.find("1328.0 MiB"), std::string::npos) << out16;
}

// The loader: labelIds -> trainIds, nearest-neighbour labels, wrap-around batches.
TEST(CityscapesDataset, TrainIdsAndBatchOrder) {
  const auto& t = tools::cityscapes_train_ids();
  EXPECT_EQ(t[7], 0);
  EXPECT_EQ(t[26], 13);
  EXPECT_EQ(t[33], 18);
  EXPECT_EQ(t[0], 255);
  EXPECT_EQ(t[34], 255);
  tools::DatasetOptions o;
  o.input_h = 32;
  o.input_w = 64;
  o.batch = 2;
  o.shuffle = false;
  o.augment = false;
  o.num_classes = 5;
  const tools::CityscapesDataset d(train_data_dir() + "cityscapes", "train", o);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_LT(d.files()[0].image, d.files()[1].image);
  // Batch 2 holds files 4 and 0 (wrapping around).
  const tools::Batch b2 = d.batch(2), b0 = d.batch(0);
  const size_t plane = size_t(o.input_h) * o.input_w;
  EXPECT_TRUE(std::equal(b2.labels.begin() + plane, b2.labels.end(), b0.labels.begin()));
  EXPECT_TRUE(std::equal(b2.input.begin() + plane * 3, b2.input.end(), b0.input.begin()));
  for (uint8_t v : b0.labels) EXPECT_TRUE(v < 5 || v == 255);
}

// --shuffle: every epoch visits every file once (a seeded permutation, different per epoch and
// reproducible); augmentation: each sample is the plain one or its horizontal mirror.
TEST(CityscapesDataset, ShuffleIsAPermutationAndFlipsMirror) {
  tools::DatasetOptions o;
  o.input_h = 32;
  o.input_w = 64;
  o.batch = 1;
  o.shuffle = false;
  o.augment = false;
  o.num_classes = 5;
  o.seed = 3;
  const std::string root = train_data_dir() + "cityscapes";
  const tools::CityscapesDataset plain(root, "train", o);
  std::vector<std::vector<uint8_t>> files;
  for (int k = 0; k < 5; ++k) files.push_back(plain.batch(k).labels);
  auto find = [&](const std::vector<uint8_t>& labels) {
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i] == labels) return int(i);
    }
    return -1;
  };
  o.shuffle = true;
  const tools::CityscapesDataset shuffled(root, "train", o);
  std::vector<int> epoch0, epoch1;
  for (int k = 0; k < 5; ++k) epoch0.push_back(find(shuffled.batch(k).labels));
  for (int k = 5; k < 10; ++k) epoch1.push_back(find(shuffled.batch(k).labels));
  for (const auto* e : {&epoch0, &epoch1}) {
    std::vector<int> sorted = *e;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int>{0, 1, 2, 3, 4}));
  }
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(shuffled.batch(7).labels, shuffled.batch(7).labels);

  o.shuffle = false;
  o.augment = true;
  const tools::CityscapesDataset augmented(root, "train", o);
  int flipped = 0;
  for (int k = 0; k < 10; ++k) {
    const std::vector<uint8_t> got = augmented.batch(k).labels;
    std::vector<uint8_t> mirror = files[size_t(k % 5)];
    for (int y = 0; y < o.input_h; ++y) {
      std::reverse(mirror.begin() + y * o.input_w, mirror.begin() + (y + 1) * o.input_w);
    }
    const bool is_plain = got == files[size_t(k % 5)], is_mirror = got == mirror;
    EXPECT_TRUE(is_plain || is_mirror) << "sample " << k;
    flipped += is_mirror && !is_plain ? 1 : 0;
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 10);
}

}  // namespace
}  // namespace farsee::net
