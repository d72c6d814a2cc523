// The prefetching loader (tools/data/dataset.h): the same batches with 0, 1 and 3 worker threads
// (with the paper's augmentation, input at half the label resolution), a bounded queue, restarts
// at any batch, and a bad file's error reaching the consumer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/temp_dir.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/data/synthetic_scenes.h"
#include "tools/train/train_cli.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;

class Loader : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int k = 0; k < 5; ++k) {
      const std::string city = k % 2 ? "b" : "a";
      const fs::path images = dir_ / "leftImg8bit/train" / city,
                     labels = dir_ / "gtFine/train" / city;
      fs::create_directories(images);
      fs::create_directories(labels);
      const SyntheticScene s = make_synthetic_scene(48, 96, uint64_t(k));
      const std::string stem = city + "_00000" + std::to_string(k) + "_000019";
      write_png((images / (stem + "_leftImg8bit.png")).string(), Image{96, 48, 3, s.rgb});
      write_png((labels / (stem + "_gtFine_labelIds.png")).string(), Image{96, 48, 1, s.label_ids});
    }
    o_.input_h = 32;
    o_.input_w = 64;
    o_.label_h = 64;
    o_.label_w = 128;
    o_.batch = 2;
    o_.seed = 9;
    o_.augmentation = AugmentParams::paper();
  }
  farsee::test::TempDir dir_{"farsee_loader"};
  DatasetOptions o_;
};

TEST_F(Loader, SameBatchesForAnyWorkerCount) {
  const CityscapesDataset serial(dir_.string(), "train", o_);
  std::vector<Batch> want;
  for (int k = 0; k < 6; ++k) want.push_back(serial.batch(k));
  EXPECT_EQ(want[0].label_h, 64);
  EXPECT_EQ(want[0].labels.size(), size_t(2) * 64 * 128);
  EXPECT_EQ(want[0].input.size(), size_t(2) * 32 * 64 * 3);
  int padded = 0;
  for (const Batch& b : want) {
    for (uint8_t v : b.labels) {
      EXPECT_TRUE(v < 19 || v == 255);
      padded += v == 255;
    }
  }
  EXPECT_GT(padded, 0);  // scaled-down or rotated samples pad with 255
  for (int workers : {1, 3}) {
    DatasetOptions o = o_;
    o.workers = workers;
    o.prefetch = 2;
    const CityscapesDataset threaded(dir_.string(), "train", o);
    for (int k = 0; k < 6; ++k) {
      const Batch b = threaded.batch(k);
      EXPECT_EQ(b.input, want[size_t(k)].input) << workers << " workers, batch " << k;
      EXPECT_EQ(b.labels, want[size_t(k)].labels) << workers << " workers, batch " << k;
    }
    // Out of order: the prefetcher restarts there.
    EXPECT_EQ(threaded.batch(2).labels, want[2].labels);
    EXPECT_EQ(threaded.batch(3).labels, want[3].labels);
  }
}

TEST_F(Loader, TheQueueIsBounded) {
  const CityscapesDataset data(dir_.string(), "train", o_);
  BatchPrefetcher p(data, 3, 2, 0);
  // The workers run ahead until two batches are in flight, and no further.
  for (int i = 0; i < 500 && p.peak_in_flight() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(p.peak_in_flight(), 2);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(p.next().labels, data.batch(k).labels);
  EXPECT_LE(p.peak_in_flight(), 2);
  EXPECT_EQ(p.next_index(), 5);
}

TEST_F(Loader, AnErrorReachesTheConsumer) {
  const fs::path bad = dir_ / "leftImg8bit/train/b/b_000003_000019_leftImg8bit.png";
  std::ofstream(bad, std::ios::binary | std::ios::trunc) << "not a png";
  DatasetOptions o = o_;
  o.shuffle = false;
  o.workers = 2;
  const CityscapesDataset data(dir_.string(), "train", o);
  EXPECT_NO_THROW(data.batch(0));
  try {
    for (int k = 1; k < 3; ++k) data.batch(k);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace farsee::tools

namespace farsee::tools {
namespace {

// farsee-train's loader flags: --benchmark-loader prints images/s; bad values name the flag.
TEST_F(Loader, TrainLoaderFlags) {
  const std::vector<std::string> common = {"--data",       dir_.string(), "--input-size", "32x64",
                                           "--label-size", "64x128",      "--batch",      "2"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return extra;
  };
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  int rc = train_main(with({"--workers", "2", "--crop", "48x96", "--scale-range", "0.75,1.5",
                            "--benchmark-loader", "3"}));
  std::string out = ::testing::internal::GetCapturedStdout();
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("images/s"), std::string::npos) << out;
  EXPECT_NE(out.find("labels 64x128"), std::string::npos) << out;
  ::testing::internal::CaptureStderr();
  rc = train_main(with({"--scale-range", "2,1", "--benchmark-loader", "1"}));
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("--scale-range"), std::string::npos) << err;
  ::testing::internal::CaptureStderr();
  rc = train_main(with({"--workers", "-1"}));
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("--workers"), std::string::npos) << err;
}

}  // namespace
}  // namespace farsee::tools
