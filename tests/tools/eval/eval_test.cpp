// Cityscapes evaluation: the metrics library (tools/cityscapes/metrics.h) against a hand-worked
// confusion matrix, the labelId <-> trainId tables, and farsee-eval end to end (in-process,
// tools/eval/eval_cli.h) on small Cityscapes-layout folders, with every kind of bad prediction data
// giving an error that names the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "net/farsee_net.h"
#include "tests/support/temp_dir.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/eval/eval_cli.h"
#include "weights/safetensors.h"

namespace farsee::tools {
namespace {

// 10 pixels, worked by hand:
//   gt   0 0 0 1 1   2 255 255 0 2
//   pred 0 0 1 1 255 2 5   0   0 3
// Evaluated pixels: 8 (gt 255 ignored, with whatever is predicted there).
//   road (0):     TP 3 (px 0,1,8), FN 1 (px 2 -> 1), FP 0            IoU 3/4
//   sidewalk (1): TP 1 (px 3), FN 1 (px 4 -> void), FP 1 (px 2)     IoU 1/3
//   building (2): TP 1 (px 5), FN 1 (px 9 -> 3), FP 0               IoU 1/2
//   wall (3):     TP 0, FN 0, FP 1 (px 9)                           IoU 0
//   pole (5): predicted only on a void pixel -> absent              null
// mIoU = (3/4 + 1/3 + 1/2 + 0) / 4; pixel accuracy 5/8.
TEST(Metrics, HandWorkedConfusionMatrix) {
  const uint8_t gt[] = {0, 0, 0, 1, 1, 2, 255, 255, 0, 2};
  const uint8_t pred[] = {0, 0, 1, 1, 255, 2, 5, 0, 0, 3};
  ConfusionMatrix m;
  m.add(gt, pred, 10);
  EXPECT_EQ(m.total(), 8u);
  EXPECT_EQ(m.count(0, 0), 3u);
  EXPECT_EQ(m.count(0, 1), 1u);
  EXPECT_EQ(m.count(1, 1), 1u);
  EXPECT_EQ(m.count(1, kCityscapesClasses), 1u);  // the void column
  EXPECT_EQ(m.count(2, 2), 1u);
  EXPECT_EQ(m.count(2, 3), 1u);
  const auto iou = m.ious();
  ASSERT_TRUE(iou[0] && iou[1] && iou[2] && iou[3]);
  EXPECT_DOUBLE_EQ(*iou[0], 3.0 / 4);
  EXPECT_DOUBLE_EQ(*iou[1], 1.0 / 3);
  EXPECT_DOUBLE_EQ(*iou[2], 1.0 / 2);
  EXPECT_DOUBLE_EQ(*iou[3], 0.0);
  for (int k = 4; k < kCityscapesClasses; ++k) EXPECT_FALSE(iou[size_t(k)]) << "class " << k;
  ASSERT_TRUE(m.mean_iou() && m.pixel_accuracy());
  EXPECT_DOUBLE_EQ(*m.mean_iou(), (3.0 / 4 + 1.0 / 3 + 1.0 / 2 + 0.0) / 4);
  EXPECT_DOUBLE_EQ(*m.pixel_accuracy(), 5.0 / 8);

  // Adding in two parts, or merging two matrices, gives the same counts.
  ConfusionMatrix a, b;
  a.add(gt, pred, 4);
  b.add(gt + 4, pred + 4, 6);
  a.merge(b);
  for (int g = 0; g < kCityscapesClasses; ++g) {
    for (int p = 0; p <= kCityscapesClasses; ++p) EXPECT_EQ(a.count(g, p), m.count(g, p));
  }
  a.clear();
  EXPECT_EQ(a.total(), 0u);
}

TEST(Metrics, EmptyAndOutOfRange) {
  ConfusionMatrix m;
  EXPECT_FALSE(m.mean_iou());
  EXPECT_FALSE(m.pixel_accuracy());
  const uint8_t gt[] = {0}, bad[] = {19};
  EXPECT_THROW(m.add(gt, bad, 1), std::exception);
  EXPECT_THROW(m.add(bad, gt, 1), std::exception);
}

TEST(Metrics, CityscapesTables) {
  const auto& to_train = cityscapes_train_ids();
  const auto& to_label = cityscapes_label_ids();
  const auto& names = cityscapes_class_names();
  int evaluated = 0;
  for (int id = 0; id < 256; ++id) {
    if (to_train[size_t(id)] == kIgnoreId) continue;
    ++evaluated;
    EXPECT_LT(id, kCityscapesLabelIds);
    EXPECT_EQ(to_label[to_train[size_t(id)]], id);
  }
  EXPECT_EQ(evaluated, kCityscapesClasses);
  // labels.py spot checks: road 7, traffic light 19, traffic sign 20, sky 23, bicycle 33.
  EXPECT_EQ(to_train[7], 0);
  EXPECT_EQ(to_train[19], 6);
  EXPECT_EQ(to_train[20], 7);
  EXPECT_EQ(to_train[23], 10);
  EXPECT_EQ(to_train[33], 18);
  EXPECT_EQ(to_train[0], kIgnoreId);   // unlabeled
  EXPECT_EQ(to_train[29], kIgnoreId);  // caravan
  EXPECT_STREQ(names[6], "traffic light");
  EXPECT_STREQ(names[7], "traffic sign");
  EXPECT_STREQ(names[18], "bicycle");
}

namespace fs = std::filesystem;

// The hand-worked example above as two 1x5 images (aachen: pixels 0-4, bremen: 5-9), ground
// truth in labelIds; 0 and 4 (unlabeled, static) are void.
const uint8_t kGtLabelIds[10] = {7, 7, 7, 8, 8, 11, 0, 4, 7, 11};
const uint8_t kPredTrainIds[10] = {0, 0, 1, 1, 255, 2, 5, 0, 0, 3};
const uint8_t kPredLabelIds[10] = {7, 7, 8, 8, 0, 11, 17, 7, 7, 12};
const char* kFrames[2] = {"aachen_000000_000019", "bremen_000003_000019"};

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = (dir_ / "cityscapes").string();
    for (int i = 0; i < 2; ++i) {
      const std::string city = std::string(kFrames[i]).substr(0, 6);
      const fs::path d = fs::path(data_) / "gtFine" / "val" / city;
      fs::create_directories(d);
      write_png((d / (std::string(kFrames[i]) + "_gtFine_labelIds.png")).string(),
                Image{5, 1, 1, {kGtLabelIds + 5 * i, kGtLabelIds + 5 * i + 5}});
    }
  }

  // Writes the predictions (trainIds or labelIds) under <dir>/preds/<sub>/; returns the folder.
  std::string write_predictions(bool label_ids) {
    const uint8_t* p = label_ids ? kPredLabelIds : kPredTrainIds;
    for (int i = 0; i < 2; ++i) {
      const fs::path d = dir_ / "preds" / (i == 0 ? "a" : "b/c");
      fs::create_directories(d);
      const std::string stem = (d / (std::string(kFrames[i]) + "_leftImg8bit")).string();
      write_png(stem + "_labels.png", Image{5, 1, 1, {p + 5 * i, p + 5 * i + 5}});
      // farsee-infer's pictures next to the labels are skipped
      write_png(stem + "_color.png", Image{5, 1, 3, std::vector<uint8_t>(15, 0)});
    }
    return (dir_ / "preds").string();
  }
  std::string pred_path(int i) const {
    return (dir_ / "preds" / (i == 0 ? "a" : "b/c") /
            (std::string(kFrames[i]) + "_leftImg8bit_labels.png"))
        .string();
  }
  int run(std::vector<std::string> args, std::string* err = nullptr, std::string* out = nullptr) {
    ::testing::internal::CaptureStderr();
    ::testing::internal::CaptureStdout();
    const int rc = eval_main(args);
    const std::string o = ::testing::internal::GetCapturedStdout();
    const std::string e = ::testing::internal::GetCapturedStderr();
    if (err) *err = e;
    if (out) *out = o;
    return rc;
  }
  std::vector<std::string> eval_args(const std::string& preds, const std::string& ids) {
    return {"--data", data_, "--split", "val", "--predictions", preds, "--ids", ids};
  }
  // Runs with the predictions and expects exit 1 with a message holding every part of `expect`.
  void expect_error(const std::string& ids, const std::vector<std::string>& expect) {
    std::string err;
    EXPECT_EQ(run(eval_args((dir_ / "preds").string(), ids), &err), 1);
    for (const std::string& e : expect) {
      EXPECT_NE(err.find(e), std::string::npos) << "'" << e << "' not in: " << err;
    }
  }
  static nlohmann::ordered_json read_json(const std::string& path) {
    std::ifstream f(path);
    return nlohmann::ordered_json::parse(f);
  }

  test::TempDir dir_{"farsee_eval_cli"};
  std::string data_;
};

TEST_F(EvalCli, HandWorkedBothIdKinds) {
  for (const char* ids : {"train", "label"}) {
    SCOPED_TRACE(ids);
    fs::remove_all(dir_ / "preds");
    const std::string preds = write_predictions(std::string(ids) == "label");
    const std::string json = (dir_ / "eval.json").string();
    std::vector<std::string> args = eval_args(preds, ids);
    args.insert(args.end(), {"--json", json});
    std::string err, out;
    ASSERT_EQ(run(args, &err, &out), 0) << err;
    EXPECT_NE(out.find("confusion matrix"), std::string::npos) << out;
    EXPECT_NE(out.find("mIoU"), std::string::npos) << out;
    const nlohmann::ordered_json j = read_json(json);
    const auto& iou = j.at("iou");
    ASSERT_EQ(iou.size(), 19u);
    EXPECT_DOUBLE_EQ(iou.at("road").get<double>(), 3.0 / 4);
    EXPECT_DOUBLE_EQ(iou.at("sidewalk").get<double>(), 1.0 / 3);
    EXPECT_DOUBLE_EQ(iou.at("building").get<double>(), 1.0 / 2);
    EXPECT_DOUBLE_EQ(iou.at("wall").get<double>(), 0.0);
    EXPECT_TRUE(iou.at("pole").is_null());
    EXPECT_TRUE(iou.at("traffic light").is_null());
    EXPECT_TRUE(iou.at("bicycle").is_null());
    EXPECT_DOUBLE_EQ(j.at("miou").get<double>(), (3.0 / 4 + 1.0 / 3 + 1.0 / 2) / 4);
    EXPECT_DOUBLE_EQ(j.at("accuracy").get<double>(), 5.0 / 8);
    // official names, trainId order
    EXPECT_EQ(iou.begin().key(), "road");
  }
}

TEST_F(EvalCli, MissingPrediction) {
  write_predictions(false);
  fs::remove(pred_path(1));
  expect_error("train", {"missing prediction file", "bremen_000003_000019",
                         "bremen_000003_000019_gtFine_labelIds.png"});
}

TEST_F(EvalCli, DuplicatePrediction) {
  write_predictions(false);
  const std::string copy = (dir_ / "preds" / "aachen_000000_000019.png").string();
  fs::copy_file(pred_path(0), copy);
  expect_error("train", {"duplicate prediction files", pred_path(0), copy});
}

TEST_F(EvalCli, ExtraPrediction) {
  write_predictions(false);
  const std::string extra = (dir_ / "preds" / "a" / "zurich_000001_000019_labels.png").string();
  fs::copy_file(pred_path(0), extra);
  expect_error("train", {"extra prediction file", extra});
}

TEST_F(EvalCli, SizeMismatch) {
  write_predictions(false);
  write_png(pred_path(1), Image{4, 1, 1, {0, 0, 0, 0}});
  expect_error("train",
               {pred_path(1), "is 1x4", "bremen_000003_000019_gtFine_labelIds.png", "1x5"});
}

TEST_F(EvalCli, TrainIdOutOfRange) {
  write_predictions(false);
  write_png(pred_path(0), Image{5, 1, 1, {0, 0, 19, 0, 0}});
  expect_error("train", {pred_path(0), "trainId 19", "x 2"});
}

TEST_F(EvalCli, LabelIdOutOfRange) {
  write_predictions(true);
  write_png(pred_path(1), Image{5, 1, 1, {7, 34, 7, 7, 7}});
  expect_error("label", {pred_path(1), "labelId 34", "x 1"});
}

TEST_F(EvalCli, NotASingleChannelPng) {
  write_predictions(false);
  write_png(pred_path(0), Image{5, 1, 3, std::vector<uint8_t>(15, 0)});
  expect_error("train", {pred_path(0), "single-channel"});
}

TEST_F(EvalCli, BadArguments) {
  std::string err;
  EXPECT_EQ(run({"--data", data_}, &err), 1);
  EXPECT_NE(err.find("--predictions DIR or --weights FILE"), std::string::npos) << err;
  EXPECT_EQ(run({"--data", data_, "--predictions", data_, "--ids", "foo"}, &err), 1);
  EXPECT_NE(err.find("--ids"), std::string::npos) << err;
  EXPECT_EQ(run({"--data", data_, "--predictions", data_, "--executor", "reference"}, &err), 1);
  EXPECT_NE(err.find("--weights only"), std::string::npos) << err;
  EXPECT_EQ(run({"--data", (dir_ / "nowhere").string(), "--predictions", data_}, &err), 1);
  EXPECT_NE(err.find("nowhere"), std::string::npos) << err;
}

// --weights runs the network as farsee-infer does (the loader's resize and normalisation, labels
// at the ground truth's size); its figures equal --predictions on those labels, written as PNGs.
TEST_F(EvalCli, WeightsModeEqualsItsPredictions) {
  // Two of the training fixture's images (one per city) as split "val".
  const fs::path from = fs::path(FARSEE_TEST_DATA_DIR) / "train" / "cityscapes";
  const std::string data = (dir_ / "small").string();
  for (const char* frame : {"aachen/aachen_000000_000019", "bremen/bremen_000003_000019"}) {
    for (const char* kind : {"leftImg8bit", "gtFine"}) {
      const std::string suffix =
          std::string(kind) == "gtFine" ? "_gtFine_labelIds.png" : "_leftImg8bit.png";
      const fs::path to = fs::path(data) / kind / "val" / (std::string(frame) + suffix);
      fs::create_directories(to.parent_path());
      fs::copy_file(from / kind / "train" / (std::string(frame) + suffix), to);
    }
  }
  const net::FarSeeConfig config = net::preset_config("paper");
  const net::HostTensors params = net::random_parameters(config, 7);
  weights::SafetensorsWriter w;
  w.set_metadata("preset", config.preset);
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    w.add(spec.name, spec.shape, params.at(spec.name).data);
  }
  const std::string weights_file = (dir_ / "w.safetensors").string();
  w.write(weights_file);

  const int ih = 32, iw = 64;
  DatasetOptions options;
  options.input_h = ih;
  options.input_w = iw;
  Context ctx;
  ctx.executor = Executor::Reference;
  net::FarSeeNet model(config, params, ctx, DType::F32);
  std::vector<float> input(size_t(ih) * iw * 3);
  std::vector<uint8_t> scratch(size_t(ih) * iw);
  for (const SamplePaths& s : list_cityscapes(data, "val")) {
    load_sample(s, options, /*flip=*/false, input.data(), scratch.data());
    const Image gt = read_grey(s.label);
    model.prepare(1, ih, iw, gt.height, gt.width);
    model.set_input(input.data());
    model.forward();
    const std::string name = fs::path(s.image).filename().string();
    fs::create_directories(dir_ / "preds");
    write_png((dir_ / "preds" / (name.substr(0, 20) + "_labels.png")).string(),
              Image{gt.width, gt.height, 1, model.labels()});
  }
  const std::string a = (dir_ / "a.json").string(), b = (dir_ / "b.json").string();
  std::string err;
  ASSERT_EQ(run({"--data", data, "--split", "val", "--weights", weights_file, "--preset", "paper",
                 "--input-size", "32x64", "--executor", "reference", "--json", a},
                &err),
            0)
      << err;
  ASSERT_EQ(run({"--data", data, "--split", "val", "--predictions", (dir_ / "preds").string(),
                 "--json", b},
                &err),
            0)
      << err;
  const nlohmann::ordered_json ja = read_json(a), jb = read_json(b);
  EXPECT_EQ(ja, jb);
  EXPECT_TRUE(ja.at("miou").is_number()) << ja.dump();

  // Every ground-truth image needs its camera image.
  const fs::path image =
      fs::path(data) / "leftImg8bit" / "val" / "bremen" / "bremen_000003_000019_leftImg8bit.png";
  fs::remove(image);
  EXPECT_EQ(run({"--data", data, "--weights", weights_file, "--input-size", "32x64", "--executor",
                 "reference"},
                &err),
            1);
  EXPECT_NE(err.find("bremen_000003_000019_gtFine_labelIds.png' has no image"), std::string::npos)
      << err;
}

// --num-classes: a tiny preset trained with farsee-train --num-classes 19 is evaluated with the
// same flag; without it the 5-class preset is refused with the class count in the message.
TEST_F(EvalCli, NumClassesOverridesThePreset) {
  const fs::path from = fs::path(FARSEE_TEST_DATA_DIR) / "train" / "cityscapes";
  const std::string data = (dir_ / "one").string();
  const std::string frame = "aachen/aachen_000000_000019";
  for (const char* kind : {"leftImg8bit", "gtFine"}) {
    const std::string suffix =
        std::string(kind) == "gtFine" ? "_gtFine_labelIds.png" : "_leftImg8bit.png";
    const fs::path to = fs::path(data) / kind / "val" / (frame + suffix);
    fs::create_directories(to.parent_path());
    fs::copy_file(from / kind / "train" / (frame + suffix), to);
  }
  net::FarSeeConfig config = net::preset_config("tiny-paper");
  config.num_classes = 19;
  const net::HostTensors params = net::random_parameters(config, 3);
  weights::SafetensorsWriter w;
  for (const net::ParamSpec& spec : net::parameter_specs(config)) {
    w.add(spec.name, spec.shape, params.at(spec.name).data);
  }
  const std::string weights_file = (dir_ / "tiny19.safetensors").string();
  w.write(weights_file);
  std::string err;
  EXPECT_EQ(run({"--data", data, "--weights", weights_file, "--preset", "tiny-paper",
                 "--num-classes", "19", "--input-size", "32x64", "--executor", "reference"},
                &err),
            0)
      << err;
  EXPECT_EQ(run({"--data", data, "--weights", weights_file, "--preset", "tiny-paper",
                 "--input-size", "32x64", "--executor", "reference"},
                &err),
            1);
  EXPECT_NE(err.find("has 5 classes"), std::string::npos) << err;
}

// Agreement with cityscapesScripts' evalPixelLevelSemanticLabeling without Python: its figures for
// the prediction sets of tests/fixtures/eval (tools/pytorch/check_eval_cityscapes.py
// --write-fixture: random, partially right, classes never predicted or only falsely predicted, void
// labelIds predicted, two classes in no ground truth) against farsee-eval on the same files, as
// labelIds and converted to trainIds. Same 64-bit counts, same double divisions: equal to 1e-12
// (the task's bar: 1e-4).
TEST_F(EvalCli, AgreesWithCityscapesScripts) {
  const fs::path fixture = fs::path(FARSEE_TEST_DATA_DIR) / "eval";
  const nlohmann::ordered_json expected = read_json((fixture / "cityscapes_scripts.json").string());
  ASSERT_GE(expected.size(), 4u);
  int compared = 0, left_out = 0;
  for (const auto& [set, want] : expected.items()) {
    const fs::path labels = fixture / "predictions" / set;
    // the same predictions as trainIds
    const fs::path train = dir_ / ("train_" + set);
    fs::create_directories(train);
    for (const auto& f : fs::directory_iterator(labels)) {
      Image im = read_grey(f.path().string());
      for (uint8_t& v : im.data) v = cityscapes_train_ids()[v];
      write_png((train / f.path().filename()).string(), im);
    }
    for (const auto& [ids, dir] :
         {std::pair<std::string, fs::path>{"label", labels}, {"train", train}}) {
      SCOPED_TRACE(set + " --ids " + ids);
      const std::string json = (dir_ / "got.json").string();
      std::string err;
      ASSERT_EQ(run({"--data", (fixture / "cityscapes").string(), "--predictions", dir.string(),
                     "--ids", ids, "--json", json},
                    &err),
                0)
          << err;
      const nlohmann::ordered_json got = read_json(json);
      for (const auto& [name, v] : want.at("iou").items()) {
        if (v.is_null()) {
          EXPECT_TRUE(got.at("iou").at(name).is_null()) << name;
          ++left_out;
        } else {
          EXPECT_NEAR(got.at("iou").at(name).get<double>(), v.get<double>(), 1e-12) << name;
          ++compared;
        }
      }
      EXPECT_NEAR(got.at("miou").get<double>(), want.at("miou").get<double>(), 1e-12);
      EXPECT_NEAR(got.at("accuracy").get<double>(), want.at("accuracy").get<double>(), 1e-12);
    }
  }
  EXPECT_GT(left_out, 0);  // the protocol's "absent from both" case is exercised
  EXPECT_GT(compared, 100);
}

// farsee-infer --ids label writes Cityscapes labelIds: the same labels as --ids train mapped by
// the table, and farsee-eval gives the same figures on both folders (the user's workflow:
// farsee-infer over the images, farsee-eval over its output folder, whose *_color.png it skips).
TEST_F(EvalCli, InferLabelIdsRoundTrip) {
  const fs::path infer = fs::path(FARSEE_PROGRAM_DIR) / "farsee-infer";
  ASSERT_TRUE(fs::exists(infer)) << infer << " is not built";
  const fs::path from = fs::path(FARSEE_TEST_DATA_DIR) / "train" / "cityscapes";
  const std::string frame = "aachen_000000_000019";
  fs::create_directories(dir_ / "gt" / "gtFine" / "val" / "aachen");
  fs::copy_file(from / "gtFine" / "train" / "aachen" / (frame + "_gtFine_labelIds.png"),
                dir_ / "gt" / "gtFine" / "val" / "aachen" / (frame + "_gtFine_labelIds.png"));
  const std::string image =
      (from / "leftImg8bit" / "train" / "aachen" / (frame + "_leftImg8bit.png")).string();
  auto run_infer = [&](const std::string& ids, const std::string& preset) {
    const std::string out = (dir_ / ("out_" + ids)).string();
    const std::string cmd = infer.string() + " --preset " + preset +
                            " --random-weights 3 --executor reference --input-size 32x64 --ids " +
                            ids + " --out " + out + " " + image + " > /dev/null 2>&1";
    return std::make_pair(std::system(cmd.c_str()), out);
  };
  EXPECT_NE(run_infer("label", "tiny-paper").first, 0);  // 5 classes: no labelIds
  const auto [rc_train, out_train] = run_infer("train", "paper");
  const auto [rc_label, out_label] = run_infer("label", "paper");
  ASSERT_EQ(rc_train, 0);
  ASSERT_EQ(rc_label, 0);
  const std::string name = "/" + frame + "_leftImg8bit_labels.png";
  const Image train = read_grey(out_train + name), label = read_grey(out_label + name);
  ASSERT_EQ(train.data.size(), label.data.size());
  for (size_t i = 0; i < train.data.size(); ++i) {
    ASSERT_LT(train.data[i], kCityscapesClasses) << "pixel " << i;
    ASSERT_EQ(label.data[i], cityscapes_label_ids()[train.data[i]]) << "pixel " << i;
  }
  const std::string a = (dir_ / "a.json").string(), b = (dir_ / "b.json").string();
  const std::string gt = (dir_ / "gt").string();
  std::string err;
  ASSERT_EQ(run({"--data", gt, "--predictions", out_train, "--json", a}, &err), 0) << err;
  ASSERT_EQ(run({"--data", gt, "--predictions", out_label, "--ids", "label", "--json", b}, &err), 0)
      << err;
  EXPECT_EQ(read_json(a), read_json(b));
}

}  // namespace
}  // namespace farsee::tools
