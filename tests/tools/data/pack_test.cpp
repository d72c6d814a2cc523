// The packed dataset (tools/data/pack.h, farsee-pack): XXH64 against xxHash's published vectors;
// every codec decodes to decode_sample's bits; packing is deterministic (any thread count);
// --size resizes as the loader does; a truncated pack, a flipped byte in a sample or in the index,
// a bad magic and a bad version are errors naming the pack (and the sample); batches, a short
// training run and farsee-eval from a pack are bitwise those from the PNG folder; the training log
// records each step's wait for data; --benchmark-loader prints the host side.
#include "tools/data/pack.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "kernels/core/atomic_file.h"
#include "tests/support/error_of.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_dir.h"
#include "tools/cityscapes/metrics.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/data/synthetic_scenes.h"
#include "tools/eval/eval_cli.h"
#include "tools/train/train_cli.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;

std::vector<char> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}
void write_all(const fs::path& p, const std::vector<char>& bytes) {
  write_file_atomic(p.string(), bytes.data(), bytes.size());
}

class Pack : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int k = 0; k < 5; ++k) {  // two cities, 48x96 (k = 4: 32x64, a second size)
      const std::string city = k % 2 ? "b" : "a";
      const fs::path images = dir_ / "data/leftImg8bit/train" / city,
                     labels = dir_ / "data/gtFine/train" / city;
      fs::create_directories(images);
      fs::create_directories(labels);
      const int h = k == 4 ? 32 : 48, w = 2 * h;
      const SyntheticScene s = make_synthetic_scene(h, w, uint64_t(k));
      const std::string stem = city + "_00000" + std::to_string(k) + "_000019";
      write_png((images / (stem + "_leftImg8bit.png")).string(), Image{w, h, 3, s.rgb});
      write_png((labels / (stem + "_gtFine_labelIds.png")).string(), Image{w, h, 1, s.label_ids});
    }
    options_.root = (dir_ / "data").string();
    options_.split = "train";
  }
  std::string pack(const std::string& name, PackCodec codec, int jobs = 1) {
    PackOptions o = options_;
    o.codec = codec;
    o.jobs = jobs;
    const std::string path = (dir_ / name).string();
    EXPECT_EQ(write_pack(path, o), 5);
    return path;
  }
  test::TempDir dir_{"farsee_pack"};
  PackOptions options_;
};

TEST(Xxh64, PublishedVectors) {
  EXPECT_EQ(xxh64("", 0), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(xxh64("", 0, 1), 0xD5AFBA1336A3BE4Bull);
  EXPECT_EQ(xxh64("a", 1), 0xD24EC4F1A98C6E5Bull);
  EXPECT_EQ(xxh64("abc", 3), 0x44BC2CF5AD770999ull);
  const std::string text = "Nobody inspects the spammish repetition";  // 39 bytes: the stripes
  EXPECT_EQ(xxh64(text.data(), text.size()), 0xFBCEA83C8A378BF1ull);
}

TEST_F(Pack, EveryCodecDecodesToThePngBits) {
  const std::vector<SamplePaths> files = list_cityscapes(options_.root, "train");
  for (PackCodec codec : {PackCodec::kRaw, PackCodec::kLz4, PackCodec::kZstd}) {
    if (!pack_codec_available(codec)) continue;  // CI requires both (FARSEE_REQUIRE_PACK_CODECS)
    const PackReader reader(pack(std::string(pack_codec_name(codec)) + ".pack", codec));
    ASSERT_EQ(reader.size(), files.size());
    EXPECT_EQ(reader.info().split, "train");
    EXPECT_EQ(reader.info().codec, pack_codec_name(codec));
    ASSERT_EQ(reader.info().classes.size(), size_t(kCityscapesClasses));
    EXPECT_EQ(reader.info().classes[13], "car");
    for (size_t i = 0; i < files.size(); ++i) {
      const DecodedSample want = decode_sample(files[i], 19), got = reader.decode(i, 19);
      EXPECT_EQ(got.image.height, want.image.height) << i;
      EXPECT_EQ(got.image.width, want.image.width) << i;
      EXPECT_EQ(got.image.data, want.image.data) << pack_codec_name(codec) << " sample " << i;
      EXPECT_EQ(got.label.data, want.label.data) << pack_codec_name(codec) << " sample " << i;
      EXPECT_EQ(reader.label(i, 19).data, want.label.data) << i;
      EXPECT_EQ((fs::path(options_.root) / reader.names(i).image).string(), files[i].image);
    }
    // A network with fewer classes than the labels use: the error names the sample.
    const std::string e = error_of([&] { reader.decode(0, 2); });
    EXPECT_NE(e.find("sample 0"), std::string::npos) << e;
    EXPECT_NE(e.find("but the network has 2 classes"), std::string::npos) << e;
  }
}

TEST_F(Pack, DeterministicForAnyThreadCount) {
  const std::vector<char> a = read_all(pack("a.pack", PackCodec::kLz4, 1));
  const std::vector<char> b = read_all(pack("b.pack", PackCodec::kLz4, 3));
  ASSERT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b);
}

TEST_F(Pack, SizeResizesAsTheLoader) {
  options_.height = 24;
  options_.width = 40;
  const PackReader reader(pack("small.pack", PackCodec::kRaw));
  EXPECT_EQ(reader.info().height, 24);
  const DecodedSample src = decode_sample(list_cityscapes(options_.root, "train")[1], 19);
  const DecodedSample got = reader.decode(1, 19);
  ASSERT_EQ(got.image.height, 24);
  ASSERT_EQ(got.image.width, 40);
  std::vector<uint8_t> labels(24 * 40);
  resize_labels_nearest(src.label.data.data(), src.label.height, src.label.width, labels.data(), 24,
                        40);
  EXPECT_EQ(got.label.data, labels);
}

TEST_F(Pack, TruncatedPackNamesTheFirstLostSample) {
  const std::string path = pack("t.pack", PackCodec::kLz4);
  std::vector<char> bytes = read_all(path);
  bytes.resize(bytes.size() - 100);  // inside the last sample (path order: a/0 a/2 a/4 b/1 b/3)
  write_all(path, bytes);
  std::string e = error_of([&] { PackReader r(path); });
  EXPECT_NE(e.find("is truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("sample 4 ('leftImg8bit/train/b/b_000003_000019_leftImg8bit.png')"),
            std::string::npos)
      << e;
  bytes.resize(200);  // inside the meta data
  write_all(path, bytes);
  e = error_of([&] { PackReader r(path); });
  EXPECT_NE(e.find("truncated inside its index"), std::string::npos) << e;
}

TEST_F(Pack, FlippedByteInASampleIsAnErrorNamingIt) {
  const std::string path = pack("f.pack", PackCodec::kRaw);
  std::vector<char> bytes = read_all(path);
  // Samples in path order: a/0, a/2, a/4, b/1, b/3; the last one (b/3, raw 48x96: 18432 bytes,
  // a multiple of 64, so no padding) ends the file. Flip a byte of its labels.
  bytes[bytes.size() - 100] ^= 0x10;
  write_all(path, bytes);
  const PackReader reader(path);  // the index is intact: it opens
  EXPECT_NO_THROW(reader.decode(0, 19));
  const std::string e = error_of([&] { reader.decode(4, 19); });
  EXPECT_NE(e.find("sample 4 ('leftImg8bit/train/b/b_000003_000019_leftImg8bit.png') is corrupted"),
            std::string::npos)
      << e;
}

// A crafted pack (checksums recomputed) whose labels hold an id its index does not admit: refused
// when read, so no id past the logits reaches the loss.
TEST_F(Pack, CraftedLabelsBeyondTheIndexAreRefused) {
  const std::string path = pack("x.pack", PackCodec::kRaw);
  std::vector<char> bytes = read_all(path);
  auto* b = reinterpret_cast<uint8_t*>(bytes.data());
  auto u64 = [&](size_t at) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; --k) v = (v << 8) | b[at + size_t(k)];
    return v;
  };
  const uint64_t count = u64(16), index_at = 64 + u64(24) + u64(32);
  const size_t entry = size_t(index_at);  // sample 0
  const uint64_t offset = u64(entry), image = u64(entry + 8), label = u64(entry + 16);
  b[offset + image] = 200;  // a trainId no network has
  uint64_t hash = xxh64(b + offset, size_t(image + label));
  for (int k = 0; k < 8; ++k) b[entry + 24 + size_t(k)] = uint8_t(hash >> (8 * k));
  hash = xxh64(b + 64, size_t(index_at + count * 64 - 64), xxh64(b, 56));
  for (int k = 0; k < 8; ++k) b[56 + size_t(k)] = uint8_t(hash >> (8 * k));
  write_all(path, bytes);
  const PackReader reader(path);
  const std::string e = error_of([&] { reader.decode(0, 19); });
  EXPECT_NE(e.find("sample 0"), std::string::npos) << e;
  EXPECT_NE(e.find("its labels hold trainId 200"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { reader.label(0, 19); }), "");
  EXPECT_EQ(error_of([&] { reader.decode(1, 19); }), "");
}

TEST_F(Pack, CorruptIndexBadMagicAndVersionAreClearErrors) {
  const std::string path = pack("c.pack", PackCodec::kLz4);
  const std::vector<char> good = read_all(path);
  std::vector<char> bytes = good;
  bytes[64 + 20] ^= 1;  // the meta data
  write_all(path, bytes);
  std::string e = error_of([&] { PackReader r(path); });
  EXPECT_NE(e.find("header or index is corrupted"), std::string::npos) << e;
  bytes = good;
  bytes[0] = 'X';
  write_all(path, bytes);
  e = error_of([&] { PackReader r(path); });
  EXPECT_NE(e.find("is not a FarSee pack"), std::string::npos) << e;
  EXPECT_FALSE(is_pack_file(path));
  bytes = good;
  bytes[8] = 7;  // version 7
  write_all(path, bytes);
  e = error_of([&] { PackReader r(path); });
  EXPECT_NE(e.find("has format version 7; this build reads version 1"), std::string::npos) << e;
  // The wrong split for a dataset.
  write_all(path, good);
  e = error_of([&] { open_samples(path, "val"); });
  EXPECT_NE(e.find("holds split 'train'"), std::string::npos) << e;
}

TEST_F(Pack, BatchesAreThoseOfTheFolder) {
  const std::string path = pack("d.pack", PackCodec::kLz4);
  DatasetOptions o;
  o.input_h = 32;
  o.input_w = 64;
  o.batch = 2;
  o.seed = 3;
  o.augmentation = AugmentParams::paper();
  o.workers = 2;
  const CityscapesDataset folder(options_.root, "train", o), packed(path, "train", o);
  ASSERT_EQ(packed.size(), folder.size());
  EXPECT_EQ(packed.files()[2].image, folder.files()[2].image);
  for (int k = 0; k < 4; ++k) {
    const Batch a = folder.batch(k), b = packed.batch(k);
    EXPECT_TRUE(a.input == b.input) << "batch " << k;
    EXPECT_TRUE(a.labels == b.labels) << "batch " << k;
  }
}

TEST_F(Pack, TrainingFromAPackIsBitwiseTrainingFromTheFolder) {
  const std::string path = pack("e.pack", PackCodec::kLz4);
  // Validation on the training split: from the folder, or from the pack (--val-data).
  auto train = [&](const std::string& data, const std::string& save, const std::string& log) {
    ::testing::internal::CaptureStdout();
    const int rc = train_main(
        {"--data",      data,  "--preset",    "tiny-paper", "--num-classes",   "19",
         "--steps",     "2",   "--batch",     "2",          "--input-size",    "32x64",
         "--executor",  "cpu", "--workers",   "2",          "--class-weights", "inverse-log",
         "--val-every", "2",   "--val-split", "train",      "--val-data",      data,
         "--save",      save,  "--log",       log});
    const std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(rc, 0) << out;
    std::vector<double> miou;  // the validations; each step's wait for data is logged
    std::ifstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j["event"] == "val") miou.push_back(j.at("miou").get<double>());
      if (j["event"] == "step") {
        EXPECT_GE(j.at("data_wait_s").get<double>(), 0.0) << line;
      }
    }
    EXPECT_EQ(miou.size(), 2u);  // steps 0 and 2
    return std::make_pair(read_all(save), miou);
  };
  const auto a = train(options_.root, (dir_ / "a.st").string(), (dir_ / "a.jsonl").string());
  const auto b = train(path, (dir_ / "b.st").string(), (dir_ / "b.jsonl").string());
  ASSERT_GT(a.first.size(), 1000u);
  EXPECT_TRUE(a.first == b.first);
  EXPECT_EQ(a.second, b.second);
}

// --benchmark-loader: the host side (decoding only) and the host loader, each in all and per core.
TEST_F(Pack, BenchmarkLoaderReportsTheHostSide) {
  const std::string path = pack("g.pack", PackCodec::kLz4);
  ::testing::internal::CaptureStdout();
  const int rc = train_main({"--data", path, "--input-size", "32x64", "--batch", "2", "--workers",
                             "2", "--benchmark-loader", "2"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.rfind("host: 4 samples of pack ", 0), 0u) << out;
  EXPECT_NE(out.find("images/s per core"), std::string::npos) << out;
  EXPECT_NE(out.find("\nloader: 2 batches of 2"), std::string::npos) << out;
}

// farsee-eval --data FILE: the same evaluation as from the folder (the ground truth from the pack).
TEST_F(Pack, EvaluationFromAPackIsThatOfTheFolder) {
  const std::string path = pack("h.pack", PackCodec::kLz4);
  const fs::path preds = dir_ / "preds";
  fs::create_directories(preds);
  for (const SamplePaths& f : list_cityscapes(options_.root, "train")) {
    const Image label = read_grey(f.label);  // a prediction: road in the top half
    Image pred{label.width, label.height, 1, std::vector<uint8_t>(label.data.size(), 10)};
    std::fill(pred.data.begin(), pred.data.begin() + pred.data.size() / 2, 0);
    const std::string name = fs::path(f.label).filename().string();
    write_png((preds / (name.substr(0, name.find("_gtFine")) + "_pred.png")).string(), pred);
  }
  auto eval = [&](const std::string& data, const std::string& json) {
    ::testing::internal::CaptureStdout();
    const int rc = eval_main(
        {"--data", data, "--split", "train", "--predictions", preds.string(), "--json", json});
    const std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(rc, 0) << out;
    return read_all(json);
  };
  const std::vector<char> a = eval(options_.root, (dir_ / "a.json").string());
  const std::vector<char> b = eval(path, (dir_ / "b.json").string());
  ASSERT_GT(a.size(), 20u);
  EXPECT_TRUE(a == b) << std::string(b.begin(), b.end());
}

// The program: the same bytes for any --jobs; a bad flag is an error naming it.
TEST_F(Pack, FarseePackProgram) {
  const std::string program = (fs::path(FARSEE_PROGRAM_DIR) / "farsee-pack").string();
  const std::string common = program + " --data " + options_.root + " --split train --codec lz4";
  const test::ProgramResult one =
      test::run_program(common + " --jobs 1 -o " + (dir_ / "1").string());
  const test::ProgramResult two =
      test::run_program(common + " --jobs 2 -o " + (dir_ / "2").string());
  ASSERT_EQ(one.exit_code, 0) << one.output;
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(one.output.find("5 samples"), std::string::npos) << one.output;
  EXPECT_TRUE(read_all(dir_ / "1") == read_all(dir_ / "2"));
  EXPECT_TRUE(read_all(dir_ / "1") == read_all(pack("api.pack", PackCodec::kLz4)));
  const test::ProgramResult bad = test::run_program(common + " --codec gzip -o x");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("--codec: 'gzip' is not one of raw, lz4, zstd"), std::string::npos)
      << bad.output;
}

}  // namespace
}  // namespace farsee::tools
