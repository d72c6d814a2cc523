// The augmentation op (kernels/augment.h) against the host augmentation it replaces: the raw path
// (CityscapesDataset::raw_batch, pack_raw_batch, augment_fwd on reference, cpu and emu) gives
// batch(k)'s input and labels bit for bit, with the paper's recipe (scale, rotation, crop with
// padding, flip, colour, noise; input at half the label size), with flips only (the resize-only
// path) and without augmentation, on a folder whose images have two different sizes; fp16 input
// is the host input rounded to nearest even (what Trainer::set_batch uploads). Raw batches with
// workers are the serial ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "kernels/core/half_convert.h"
#include "tests/support/compare.h"
#include "tests/support/temp_dir.h"
#include "tools/data/dataset.h"
#include "tools/data/image_io.h"
#include "tools/data/synthetic_scenes.h"

namespace farsee::tools {
namespace {

namespace fs = std::filesystem;

class AugmentOp : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path images = dir_ / "leftImg8bit/train/a", labels = dir_ / "gtFine/train/a";
    fs::create_directories(images);
    fs::create_directories(labels);
    for (int k = 0; k < 4; ++k) {
      const int h = k == 2 ? 40 : 32, w = k == 2 ? 60 : 64;  // one sample of another size
      const SyntheticScene s = make_synthetic_scene(h, w, uint64_t(k));
      const std::string stem = "a_00000" + std::to_string(k) + "_000019";
      write_png((images / (stem + "_leftImg8bit.png")).string(), Image{w, h, 3, s.rgb});
      write_png((labels / (stem + "_gtFine_labelIds.png")).string(), Image{w, h, 1, s.label_ids});
    }
    o_.input_h = 12;
    o_.input_w = 24;
    o_.label_h = 24;
    o_.label_w = 48;
    o_.batch = 2;
    o_.seed = 5;
    o_.augmentation = AugmentParams::paper();
  }
  // Batches 0..2 (every sample, one wrap-around) through both paths on `executor`.
  void expect_equal_batches(const DatasetOptions& o, Executor executor) {
    const CityscapesDataset data(dir_.string(), "train", o);
    for (int k = 0; k < 3; ++k) {
      SCOPED_TRACE("batch " + std::to_string(k));
      const Batch want = data.batch(k);
      const RawBatch raw = data.raw_batch(k);
      const Batch got = augment_raw_batch(raw, o, executor);
      // Tolerance 0: the op evaluates the host's operations in its order (measured: 0).
      EXPECT_TRUE(test::all_close(got.input, want.input, 0.0));
      EXPECT_TRUE(test::all_equal(got.labels, want.labels));
      const Batch half = augment_raw_batch(raw, o, executor, DType::F16);
      std::vector<float> rounded = want.input;
      for (float& v : rounded) v = half_bits_to_float(float_to_half_bits(v));
      EXPECT_TRUE(test::all_close(half.input, rounded, 0.0));
      EXPECT_TRUE(test::all_equal(half.labels, want.labels));
    }
  }
  farsee::test::TempDir dir_{"farsee_augment_op"};
  DatasetOptions o_;
};

TEST_F(AugmentOp, PaperRecipeEqualsTheHostPath) {
  const CityscapesDataset data(dir_.string(), "train", o_);
  int padded = 0;
  for (uint8_t v : data.batch(0).labels) padded += v == 255;
  EXPECT_GT(padded, 0);  // the draws reach outside the source
  for (Executor e : {Executor::Reference, Executor::Cpu, Executor::Emu}) {
    SCOPED_TRACE(executor_name(e));
    expect_equal_batches(o_, e);
  }
}

TEST_F(AugmentOp, FlipsOnlyAndNoAugmentationEqualTheHostPath) {
  DatasetOptions flips = o_;
  flips.augmentation = AugmentParams{};  // flips only: the resize-only path
  DatasetOptions plain = o_;
  plain.augment = false;
  for (Executor e : {Executor::Reference, Executor::Cpu, Executor::Emu}) {
    SCOPED_TRACE(executor_name(e));
    expect_equal_batches(flips, e);
    expect_equal_batches(plain, e);
  }
}

TEST_F(AugmentOp, ImagesPerSecondHook) {
  const CityscapesDataset data(dir_.string(), "train", o_);
  const RawBatch raw = data.raw_batch(0);
  const double rate = augment_images_per_second(raw, o_, Executor::Cpu, 2);
  EXPECT_TRUE(rate > 0 && std::isfinite(rate)) << rate;
  EXPECT_THROW(augment_images_per_second(raw, o_, Executor::Cpu, 0), Error);
}

TEST_F(AugmentOp, RawBatchesAreTheSameWithWorkers) {
  const CityscapesDataset serial(dir_.string(), "train", o_);
  DatasetOptions o = o_;
  o.workers = 2;
  o.prefetch = 2;
  const CityscapesDataset threaded(dir_.string(), "train", o);
  for (int k = 0; k < 4; ++k) {
    const RawBatch a = serial.raw_batch(k), b = threaded.raw_batch(k);
    ASSERT_EQ(a.decoded.size(), b.decoded.size());
    std::vector<AugmentSample> sa(a.decoded.size()), sb(b.decoded.size());
    std::vector<uint8_t> ia(size_t(a.image_bytes())), ib(size_t(b.image_bytes()));
    std::vector<uint8_t> la(size_t(a.label_bytes())), lb(size_t(b.label_bytes()));
    pack_raw_batch(a, o_, ia.data(), la.data(), sa.data());
    pack_raw_batch(b, o_, ib.data(), lb.data(), sb.data());
    EXPECT_EQ(ia, ib) << "batch " << k;
    EXPECT_EQ(la, lb) << "batch " << k;
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_EQ(sa[i].noise_seed, sb[i].noise_seed);
      EXPECT_EQ(sa[i].image_map.c, sb[i].image_map.c);
    }
  }
}

}  // namespace
}  // namespace farsee::tools
