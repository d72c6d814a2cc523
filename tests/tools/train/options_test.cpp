// farsee-train's flag table (tools/train/options.h): the options a checkpoint stores keep the keys
// checkpoints were written with, they read back to the same options, every flag of --help parses,
// switches take no value, and a bad value is an error naming its flag. --memory-plan follows
// --num-classes.
#include "tools/train/options.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "kernels/core/check.h"
#include "net/config.h"
#include "net/train_graph.h"
#include "tools/train/train_cli.h"

namespace farsee::tools {
namespace {

using nlohmann::json;

Options parsed(const std::vector<std::string>& args) {
  const std::optional<Options> o = parse_options(args);
  EXPECT_TRUE(o.has_value());
  return o.value_or(Options{});
}

// The error parse_options throws for `args` ("" when none).
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse_options(args);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// What options_to_json wrote before the flag table (tools/train/train_cli.cpp at c9a6d50) for
// `--data d`: checkpoints hold exactly these keys.
const char* const kDefaultsJson = R"({
  "data": "d", "split": "train", "preset": "paper", "num-classes": 0, "init": "",
  "steps": 100, "batch": 8, "lr": 0.01, "momentum": 0.9, "weight-decay": 0.0001,
  "lr-schedule": "poly", "lr-gamma": 0.1, "warmup-steps": 0, "precision": "fp32",
  "loss-scale": 65536.0, "loss-scale-growth-interval": 2000, "input-size": "512x1024",
  "augmentation": "paper", "no-augment": false, "no-shuffle": false, "seed": 0,
  "executor": "auto", "val-every": 0, "val-split": "val", "ckpt-every": 0, "ckpt-dir": "",
  "keep-last": 3, "log": "", "print-every": 1, "save": "", "save-dtype": "fp32"})";

TEST(TrainOptionsTable, CheckpointKeysAreUnchanged) {
  EXPECT_EQ(options_to_json(parsed({"--data", "d"})), json::parse(kDefaultsJson));
  // The conditional keys: epochs instead of steps, and the optional sizes, ranges and weights.
  json want = json::parse(kDefaultsJson);
  want.erase("steps");
  want["epochs"] = 3;
  want["lr-step-size"] = 5;
  want["label-size"] = "64x128";
  want["scale-range"] = "0.75,1.5";
  want["crop"] = "32x64";
  want["class-weights"] = "inverse-log";
  const Options o =
      parsed({"--data", "d", "--epochs", "3", "--lr-step-size", "5", "--label-size", "64x128",
              "--scale-range", "0.75,1.5", "--crop", "32x64", "--class-weights", "inverse-log",
              "--workers", "3", "--benchmark-loader", "2"});
  EXPECT_EQ(options_to_json(o), want);
}

// Options written to a checkpoint read back (as --resume applies them) to the same options.
TEST(TrainOptionsTable, StoredOptionsReadBack) {
  const Options o = parsed({"--data",
                            "d",
                            "--split",
                            "s",
                            "--preset",
                            "tiny-paper",
                            "--num-classes",
                            "5",
                            "--init",
                            "i.safetensors",
                            "--steps",
                            "7",
                            "--batch",
                            "3",
                            "--lr",
                            "0.125",
                            "--momentum",
                            "0.5",
                            "--weight-decay",
                            "0.001",
                            "--lr-schedule",
                            "step",
                            "--lr-step-size",
                            "2",
                            "--lr-gamma",
                            "0.25",
                            "--warmup-steps",
                            "4",
                            "--precision",
                            "fp16",
                            "--loss-scale",
                            "1024",
                            "--loss-scale-growth-interval",
                            "10",
                            "--input-size",
                            "64x96",
                            "--label-size",
                            "32x48",
                            "--augmentation",
                            "flip",
                            "--scale-range",
                            "0.5,1.25",
                            "--crop",
                            "16x16",
                            "--class-weights",
                            "1,2.5,0,1,1",
                            "--no-augment",
                            "--no-shuffle",
                            "--seed",
                            "11",
                            "--executor",
                            "reference",
                            "--val-every",
                            "6",
                            "--val-split",
                            "v",
                            "--ckpt-every",
                            "2",
                            "--ckpt-dir",
                            "c",
                            "--keep-last",
                            "4",
                            "--log",
                            "l.jsonl",
                            "--print-every",
                            "9",
                            "--save",
                            "out.safetensors",
                            "--save-dtype",
                            "fp16"});
  const json stored = options_to_json(o);
  Options back;
  apply_options_json(back, stored, "checkpoint");
  EXPECT_EQ(options_to_json(back), stored);
  EXPECT_EQ(back.class_weight_list, (std::vector<float>{1, 2.5f, 0, 1, 1}));
  EXPECT_EQ(back.input_h, 64);
  EXPECT_EQ(back.label_w, 48);
  EXPECT_FALSE(back.augment);
  EXPECT_FALSE(back.shuffle);
  EXPECT_DOUBLE_EQ(back.scale_max, 1.25);
  // Keys with "--" are the same flags; --config, --resume and --help are not options there.
  Options dashed;
  apply_options_json(dashed, {{"--lr", 0.5}, {"no-shuffle", true}}, "x");
  EXPECT_DOUBLE_EQ(dashed.lr, 0.5);
  EXPECT_FALSE(dashed.shuffle);
  for (const char* key : {"config", "resume", "help"}) {
    Options scratch;
    EXPECT_THROW(apply_options_json(scratch, {{key, "x"}}, "x"), Error) << key;
  }
}

// Every flag --help lists parses: switches alone, the others with a value.
TEST(TrainOptionsTable, EveryFlagOfTheHelpParses) {
  const std::string usage = usage_text();
  const std::regex flag_line(R"(\n  --([a-z0-9-]+)( [^ \n]+)?)");
  std::set<std::string> seen;
  const std::map<std::string, std::string> values = {{"input-size", "64x64"},
                                                     {"label-size", "32x32"},
                                                     {"crop", "16x16"},
                                                     {"scale-range", "1,2"},
                                                     {"lr-schedule", "cosine"},
                                                     {"augmentation", "flip"},
                                                     {"precision", "fp16"},
                                                     {"save-dtype", "fp16"},
                                                     {"class-weights", "inverse-log"},
                                                     {"augment-on", "executor"},
                                                     {"bn", "local"}};
  for (std::sregex_iterator it(usage.begin(), usage.end(), flag_line), end; it != end; ++it) {
    const std::string name = (*it)[1];
    seen.insert(name);
    if (name == "help" || name == "config" || name == "resume") continue;  // parse's own
    std::vector<std::string> args = {"--data", "d", "--" + name};
    if ((*it)[2].matched) args.push_back(values.count(name) ? values.at(name) : "2");
    EXPECT_EQ(error_of(args), "") << name;
    if (!(*it)[2].matched) {
      EXPECT_NE(error_of({"--data", "d", "--" + name + "=true"}).find("takes no value"),
                std::string::npos)
          << name;
    } else {
      // CLI11's wording (tools/cli/flags.h): "--lr: 1 required VALUE missing".
      EXPECT_NE(error_of({"--data", "d", "--" + name}).find("--" + name + ": 1 required VALUE"),
                std::string::npos)
          << name;
    }
  }
  EXPECT_EQ(seen.size(), 47u);  // + bn, collective-timeout (data parallelism)
  EXPECT_TRUE(seen.count("loss-scale-growth-interval"));
  testing::internal::CaptureStdout();
  EXPECT_FALSE(parse_options({"--lr", "1", "--help"}).has_value());
  EXPECT_EQ(testing::internal::GetCapturedStdout(), usage);
}

TEST(TrainOptionsTable, BadValuesNameTheFlag) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--num-classes", "-1"},
      {"--steps", "0"},
      {"--epochs", "x"},
      {"--batch", "0"},
      {"--lr", "-1"},
      {"--momentum", "nan"},
      {"--weight-decay", "a"},
      {"--lr-schedule", "linear"},
      {"--lr-step-size", "0"},
      {"--lr-gamma", ""},
      {"--warmup-steps", "-2"},
      {"--precision", "fp8"},
      {"--loss-scale", "0"},
      {"--loss-scale-growth-interval", "0"},
      {"--input-size", "65x64"},
      {"--label-size", "3"},
      {"--augmentation", "all"},
      {"--scale-range", "2,1"},
      {"--scale-range", "1"},
      {"--crop", "x"},
      {"--class-weights", "1,-1"},
      {"--workers", "-1"},
      {"--benchmark-loader", "0"},
      {"--seed", "-3"},
      {"--val-every", "-1"},
      {"--ckpt-every", "a"},
      {"--keep-last", "0"},
      {"--print-every", "0"},
      {"--save-dtype", "bf16"}};
  for (const auto& [flag, value] : bad) {
    const std::string err = error_of({"--data", "d", flag, value});
    EXPECT_NE(err.find(flag), std::string::npos) << flag << " " << value << ": " << err;
  }
  EXPECT_NE(error_of({"--data", "d", "--bogus", "1"}).find("unknown option '--bogus'"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "extra"}).find("unexpected argument 'extra'"),
            std::string::npos);
  EXPECT_NE(error_of({}).find("missing --data"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--lr-schedule", "step"}).find("--lr-step-size"),
            std::string::npos);
  // --steps and --epochs replace each other, the last one given wins.
  const Options o = parsed({"--data", "d", "--epochs", "2", "--steps", "9"});
  EXPECT_EQ(o.steps, 9);
  EXPECT_EQ(o.epochs, 0);
}

// --memory-plan is the plan of the network --preset and --num-classes describe.
TEST(TrainOptionsTable, MemoryPlanFollowsNumClasses) {
  auto plan_total = [](const std::vector<std::string>& args) {
    testing::internal::CaptureStdout();
    EXPECT_EQ(train_main(args), 0);
    const std::string out = testing::internal::GetCapturedStdout();
    const size_t at = out.find("  total ");
    EXPECT_NE(at, std::string::npos) << out;
    return out.substr(at, out.find('\n', at) - at);
  };
  auto want_total = [](int classes) {
    net::FarSeeConfig config = net::preset_config("tiny-paper");
    config.num_classes = classes;
    const net::TrainMemoryReport r = net::training_memory(config, 2, 64, 128, 64, 128, DType::F32);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%10.1f MiB", double(r.total_bytes()) / (1024.0 * 1024.0));
    return std::string(buf);
  };
  const std::vector<std::string> base = {"--memory-plan", "--preset", "tiny-paper", "--batch", "2",
                                         "--input-size",  "64x128"};
  std::vector<std::string> many = base;
  many.insert(many.end(), {"--num-classes", "200"});
  const std::string preset_total = plan_total(base), many_total = plan_total(many);
  EXPECT_NE(preset_total.find(want_total(net::preset_config("tiny-paper").num_classes)),
            std::string::npos)
      << preset_total;
  EXPECT_NE(many_total.find(want_total(200)), std::string::npos) << many_total;
  EXPECT_NE(preset_total, many_total);
}

}  // namespace
}  // namespace farsee::tools
