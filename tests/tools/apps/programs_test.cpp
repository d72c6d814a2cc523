// Tests of the programs as a user runs them: farsee-make-dataset -> farsee-infer (tiny preset,
// random weights, reference executor, small input) writes every output with the right sizes and
// label range, and the bad arguments each fail with a non-zero exit and a message naming the
// argument or file; hostile and careless input (huge image headers, overflowing sizes, clashing
// output names, --out inside the input folder, a bad image in a batch) gets a clear message and
// never a crash or a silent overwrite; farsee-bench writes its JSON schema. The programs are built
// with the tests, in <build>/bin/ (FARSEE_PROGRAM_DIR); a missing one fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/mentions.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_dir.h"
#include "tools/data/image_io.h"

namespace {

namespace fs = std::filesystem;

fs::path tools_dir() {
  return fs::path(FARSEE_PROGRAM_DIR);
}

using Result = farsee::test::ProgramResult;
Result run(const std::string& command) {
  return farsee::test::run_program(command);
}

class Programs : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"farsee-infer", "farsee-bench", "farsee-make-dataset"}) {
      ASSERT_TRUE(fs::exists(tools_dir() / p)) << (tools_dir() / p) << " is not built";
    }
  }
  std::string tool(const char* name) const { return (tools_dir() / name).string(); }
  // farsee-infer with the tiny preset on the CPU plus `args`.
  Result infer(const std::string& args) const {
    return run(tool("farsee-infer") +
               " --preset tiny-paper --executor reference --input-size 64x96 --out " +
               (dir_ / "out").string() + " " + args);
  }
  Result make_samples() const {
    return run(tool("farsee-make-dataset") + " --samples 2 --size 72x120 --labels --out " +
               (dir_ / "samples").string());
  }

  farsee::test::TempDir dir_{"farsee_programs"};
};

constexpr int kTinyClasses = 5;  // tiny-paper

// A label map as the user gets it: its size, and every value a class of the preset.
void expect_label_png(const fs::path& f, int height, int width) {
  SCOPED_TRACE(f.string());
  ASSERT_TRUE(fs::exists(f));
  const farsee::tools::Image im = farsee::tools::read_grey(f.string());
  EXPECT_EQ(im.height, height);
  EXPECT_EQ(im.width, width);
  EXPECT_EQ(farsee::tools::read_image_info(f.string()).channels, 1);  // grey, not RGB
  int distinct = 0;
  std::vector<int> count(256, 0);
  for (uint8_t v : im.data) distinct += count[v]++ == 0;
  for (int v = kTinyClasses; v < 256; ++v) EXPECT_EQ(count[v], 0) << "label " << v;
  EXPECT_GE(distinct, 2) << "a constant label map";  // random weights still vary over the image
}

// The Cityscapes colours of the tiny preset's 5 classes (trainIds 0..4: road, sidewalk, building,
// wall, fence), written out from cityscapesScripts' labels.py, not taken from tools/cityscapes/.
constexpr uint8_t kExpectedColours[kTinyClasses][3] = {
    {128, 64, 128}, {244, 35, 232}, {70, 70, 70}, {102, 102, 156}, {190, 153, 153}};

// `base`_color.png: its size, RGB in the file, and every pixel the palette colour of the label at
// that pixel in `base`_labels.png (checked by expect_label_png to be < kTinyClasses).
void expect_color_png(const std::string& base, int height, int width) {
  SCOPED_TRACE(base + "_color.png");
  ASSERT_TRUE(fs::exists(base + "_color.png"));
  EXPECT_EQ(farsee::tools::read_image_info(base + "_color.png").channels, 3);
  const farsee::tools::Image color = farsee::tools::read_rgb(base + "_color.png");
  const farsee::tools::Image labels = farsee::tools::read_grey(base + "_labels.png");
  ASSERT_EQ(color.height, height);
  ASSERT_EQ(color.width, width);
  ASSERT_EQ(labels.data.size(), size_t(height) * width);
  int wrong = 0;
  for (size_t p = 0; p < labels.data.size(); ++p) {
    const int l = labels.data[p];
    ASSERT_LT(l, kTinyClasses) << "pixel " << p;
    for (int c = 0; c < 3; ++c) wrong += color.data[p * 3 + size_t(c)] != kExpectedColours[l][c];
  }
  EXPECT_EQ(wrong, 0) << "colour values differing from the palette colour of the pixel's label";
}

// `base`_overlay.png: half the shown image, half the colour map, per channel. With `image` (the
// input at the output size) each value is (image + colour) / 2 within 1 (rounding); without it,
// only that the image part 2 * overlay - colour is a pixel value (0..255 within 1).
void expect_overlay_png(const std::string& base, const farsee::tools::Image* image) {
  SCOPED_TRACE(base + "_overlay.png");
  ASSERT_TRUE(fs::exists(base + "_overlay.png"));
  EXPECT_EQ(farsee::tools::read_image_info(base + "_overlay.png").channels, 3);
  const farsee::tools::Image overlay = farsee::tools::read_rgb(base + "_overlay.png");
  const farsee::tools::Image color = farsee::tools::read_rgb(base + "_color.png");
  ASSERT_EQ(overlay.height, color.height);
  ASSERT_EQ(overlay.width, color.width);
  if (image) {
    ASSERT_EQ(image->data.size(), color.data.size());
  }
  int wrong = 0;
  for (size_t i = 0; i < color.data.size(); ++i) {
    const int o = overlay.data[i], c = color.data[i];
    if (image) {
      wrong += std::abs(2 * o - (image->data[i] + c)) > 2;
    } else {
      wrong += 2 * o - c < -1 || 2 * o - c > 256;
    }
  }
  EXPECT_EQ(wrong, 0) << "overlay values not half image, half palette colour";
}

// The float32 .npy of one image's logits: header shape and size.
std::vector<float> read_logits_npy(const fs::path& f, const std::string& shape) {
  std::ifstream npy(f, std::ios::binary);
  std::string header(128, '\0');
  npy.read(&header[0], 128);
  EXPECT_EQ(header.compare(0, 6, "\x93NUMPY"), 0);
  EXPECT_MENTIONS(header, "'descr': '<f4'");
  EXPECT_MENTIONS(header, "'shape': (" + shape + ")");
  std::vector<float> v((fs::file_size(f) - 128) / 4);
  npy.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
  return v;
}

TEST_F(Programs, InferWritesEveryOutput) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const Result r = infer("--random-weights 3 --overlay --output-size 80x100 --save-logits " +
                         (dir_ / "samples").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int k = 0; k < 2; ++k) {
    const fs::path base = dir_ / "out" / ("synthetic_" + std::to_string(k));
    expect_label_png(base.string() + "_labels.png", 80, 100);
    expect_color_png(base.string(), 80, 100);
    expect_overlay_png(base.string(), nullptr);  // the image is resized: bounds only
    // --save-logits: one (1, 5, 80, 100) float32 file per image, whose argmax is the label map
    // (the same bilinear resize; a pixel may differ only on a near-tie).
    const std::vector<float> logits =
        read_logits_npy(base.string() + "_logits.npy", "1, 5, 80, 100");
    ASSERT_EQ(logits.size(), size_t(kTinyClasses) * 80 * 100);
    const farsee::tools::Image labels = farsee::tools::read_grey(base.string() + "_labels.png");
    int agree = 0;
    for (int p = 0; p < 80 * 100; ++p) {
      int best = 0;
      for (int c = 1; c < kTinyClasses; ++c) {
        if (logits[size_t(c) * 8000 + p] > logits[size_t(best) * 8000 + p]) best = c;
      }
      agree += labels.data[size_t(p)] == best;
    }
    EXPECT_GE(agree, 80 * 100 * 99 / 100) << base;
  }
  // samples/gt/ (the ground truth) is a subfolder: searched only with --recursive.
  EXPECT_FALSE(fs::exists(dir_ / "out" / "gt"));
  EXPECT_MENTIONS(r.output, "ms");  // per-image latency
  EXPECT_MENTIONS(r.output, "2 segmented, 0 failed");
  // No temporary files left behind (atomic writes).
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "out")) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST_F(Programs, InferLoadsAWeightFile) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const std::string weights =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-paper.weights.safetensors";
  const Result r = infer("--weights " + weights + " --precision fp16 --overlay " +
                         (dir_ / "samples" / "synthetic_1.png").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Without --output-size the labels have the image's own size, and the overlay shows the image
  // itself.
  const std::string base = (dir_ / "out" / "synthetic_1").string();
  expect_label_png(base + "_labels.png", 72, 120);
  expect_color_png(base, 72, 120);
  const farsee::tools::Image image =
      farsee::tools::read_rgb((dir_ / "samples" / "synthetic_1.png").string());
  expect_overlay_png(base, &image);
}

// A PNG that declares `height` x `width` grey pixels but holds almost no data (a 388 KB file can
// declare 20000x20000): signature, IHDR, an empty IDAT, IEND, with correct CRCs.
void write_png_header_only(const fs::path& f, uint32_t height, uint32_t width) {
  auto crc32 = [](const std::string& bytes) {
    uint32_t c = 0xffffffffu;
    for (unsigned char b : bytes) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
  };
  auto be32 = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    return be32(uint32_t(data.size())) + type + data + be32(crc32(type + data));
  };
  const std::string ihdr = be32(width) + be32(height) + std::string{8, 0, 0, 0, 0};
  const std::string zlib_empty{0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
  std::ofstream(f, std::ios::binary) << std::string("\x89PNG\r\n\x1a\n", 8) << chunk("IHDR", ihdr)
                                     << chunk("IDAT", zlib_empty) << chunk("IEND", "");
}

// The header is read before decoding: a huge declared size is refused with the size in the
// message, in well under a second and without allocating it (before: 6 GB and std::bad_alloc).
TEST_F(Programs, HugeImageIsRefusedFromItsHeader) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const fs::path huge = dir_ / "huge.png";
  write_png_header_only(huge, 20000, 20000);
  Result r = infer("--random-weights 1 " + huge.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, huge.string());
  EXPECT_MENTIONS(r.output, "20000x20000 (400.0 megapixels)");
  EXPECT_MENTIONS(r.output, "above the limit of 64 megapixels");
  EXPECT_MENTIONS(r.output, "--max-megapixels");
  EXPECT_EQ(r.output.find("bad_alloc"), std::string::npos) << r.output;
  // The limit is a flag: 0.008 megapixels (the 64x96 input fits) refuses the 72x120 samples,
  // naming their size.
  const std::string sample = (dir_ / "samples" / "synthetic_0.png").string();
  r = infer("--random-weights 1 --max-megapixels 0.008 " + sample);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "72x120 (0.00864 megapixels), above the limit of 0.008 megapixels");
  r = infer("--random-weights 1 --max-megapixels 0.01 " + sample);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = infer("--random-weights 1 --max-megapixels lots " + sample);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--max-megapixels: 'lots'");
}

// Sizes are parsed with overflow checks and bounds (before: sscanf read 99999999999 as
// 1215752191; 64000x128000 ended in a bare std::bad_alloc).
TEST_F(Programs, SizesAreBounded) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const std::string image = (dir_ / "samples" / "synthetic_0.png").string();
  Result r = infer("--random-weights 1 --input-size 99999999999x64 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--input-size: '99999999999x64': height 99999999999 is out of range");
  EXPECT_EQ(r.output.find("1215752191"), std::string::npos) << r.output;
  r = infer("--random-weights 1 --output-size 64000x128000 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--output-size: '64000x128000': width 128000 is out of range");
  r = infer("--random-weights 1 --output-size 20000x20000 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(
      r.output, "--output-size 20000x20000 (400.0 megapixels) is above the limit of 64 megapixels");
  r = infer("--random-weights 1 --input-size 16384x8192 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--input-size 16384x8192 (134.2 megapixels) is above the limit");
  for (const char* bad : {"0x64", "64x", "x64", "64x64x64", "-64x64", "64x6.4"}) {
    r = infer(std::string("--random-weights 1 --output-size ") + bad + " " + image);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_MENTIONS(r.output, std::string("'") + bad + "'");
  }
}

// An allocation that cannot succeed names what it was for and how large (here the 3.6 GB labels of
// a 60000x60000 output under a 3.4 GB address-space limit; one OpenMP/OpenBLAS thread, so that the
// per-thread reservations of a many-core machine stay far below it), never a bare std::bad_alloc.
TEST_F(Programs, FailedAllocationIsNamed) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ulimit -v and AddressSanitizer's shadow memory exclude each other";
#endif
  ASSERT_EQ(make_samples().exit_code, 0);
  const Result r =
      run("ulimit -v 3400000 && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 " + tool("farsee-infer") +
          " --preset tiny-paper --executor reference --input-size 64x96 --out " +
          (dir_ / "out").string() +
          " --random-weights 1 --max-megapixels 5000 --output-size 60000x60000 " +
          (dir_ / "samples" / "synthetic_0.png").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output,
                  "out of memory: cannot allocate 3600.0 MB for the labels (1x60000x60000");
  EXPECT_EQ(r.output.find("bad_alloc"), std::string::npos) << r.output;
  EXPECT_MENTIONS(r.output, "0 segmented, 1 failed");
}

// Output names keep each image's path relative to the folder given on the command line; inputs
// that would still write the same names are refused before anything runs, naming both (before:
// the second silently overwrote the first).
TEST_F(Programs, ClashingOutputNamesAreRefused) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const fs::path root = dir_ / "root";
  fs::create_directories(root / "d1");
  fs::create_directories(root / "d2");
  fs::copy_file(dir_ / "samples" / "synthetic_0.png", root / "d1" / "x.png");
  fs::copy_file(dir_ / "samples" / "synthetic_1.png", root / "d2" / "x.png");
  // Given by their folder (--recursive): distinct relative paths, distinct outputs.
  Result r = infer("--random-weights 1 --recursive " + root.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_label_png(dir_ / "out" / "d1" / "x_labels.png", 72, 120);
  expect_label_png(dir_ / "out" / "d2" / "x_labels.png", 72, 120);
  EXPECT_NE(farsee::tools::read_grey((dir_ / "out" / "d1" / "x_color.png").string()).data,
            farsee::tools::read_grey((dir_ / "out" / "d2" / "x_color.png").string()).data);
  // Given one by one (or as two folders): both would be <out>/x_labels.png.
  fs::remove_all(dir_ / "out");
  const std::string a = (root / "d1" / "x.png").string(), b = (root / "d2" / "x.png").string();
  r = infer("--random-weights 1 " + a + " " + b);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "inputs '" + a + "' and '" + b + "' would both be written as '");
  EXPECT_MENTIONS(r.output, "x_labels.png'");
  EXPECT_FALSE(fs::exists(dir_ / "out" / "x_labels.png"));
  r = infer("--random-weights 1 " + (root / "d1").string() + " " + (root / "d2").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "would both be written as");
  // a.png and a.jpg in one folder.
  const fs::path same = dir_ / "same";
  fs::create_directories(same);
  fs::copy_file(dir_ / "samples" / "synthetic_0.png", same / "a.png");
  fs::copy_file(dir_ / "samples" / "synthetic_1.png", same / "a.jpg");  // stb reads by content
  r = infer("--random-weights 1 " + same.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "inputs '" + (same / "a.jpg").string() + "' and '" +
                                (same / "a.png").string() + "' would both be written as");
}

// Files under --out are never inputs: a second run with --out inside the input folder segments
// the same images, not its own outputs; so does a second run with --out equal to the input folder
// (the outputs then lie beside the images: the files named like outputs are skipped). Before, the
// second run segmented its own outputs (x_labels_labels.png, ...).
TEST_F(Programs, OutputsAreNeverInputs) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const fs::path samples = dir_ / "samples";
  const std::string args =
      " --preset tiny-paper --executor reference --input-size 64x96 "
      "--random-weights 1 --recursive ";
  for (const fs::path& out : {samples / "seg", samples}) {
    for (int run_index = 0; run_index < 2; ++run_index) {
      const Result r =
          run(tool("farsee-infer") + args + "--out " + out.string() + " " + samples.string());
      ASSERT_EQ(r.exit_code, 0) << r.output;
      // 2 samples + 2 ground-truth maps, both runs.
      EXPECT_MENTIONS(r.output, "4 image(s)");
      EXPECT_MENTIONS(r.output, "4 segmented, 0 failed");
      if (run_index == 1) {
        EXPECT_MENTIONS(r.output, "skipped");
      }
    }
    EXPECT_FALSE(fs::exists(out / "synthetic_0_labels_labels.png")) << out;
    EXPECT_FALSE(fs::exists(out / "seg" / "seg")) << out;
  }
  expect_label_png(samples / "synthetic_0_labels.png", 72, 120);
  expect_label_png(samples / "seg" / "gt" / "synthetic_1_gt_labelTrainIds_labels.png", 72, 120);
}

// One bad image does not end the batch: it is reported with its reason, the others are segmented,
// and the run ends with a summary and exit status 1 (before: the images after it were lost).
TEST_F(Programs, BadImageDoesNotStopTheBatch) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const fs::path batch = dir_ / "batch";
  fs::create_directories(batch);
  fs::copy_file(dir_ / "samples" / "synthetic_0.png", batch / "a.png");
  std::ofstream(batch / "b.png") << "not an image";
  write_png_header_only(batch / "c.png", 30000, 30000);
  fs::copy_file(dir_ / "samples" / "synthetic_1.png", batch / "d.png");
  const Result r = infer("--random-weights 1 " + batch.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  expect_label_png(dir_ / "out" / "a_labels.png", 72, 120);
  expect_label_png(dir_ / "out" / "d_labels.png", 72, 120);
  EXPECT_MENTIONS(r.output, (batch / "b.png").string() + ": ");
  EXPECT_MENTIONS(r.output, "cannot read image '" + (batch / "b.png").string() + "'");
  EXPECT_MENTIONS(r.output, "30000x30000");
  EXPECT_MENTIONS(r.output, "farsee-infer: 2 segmented, 2 failed");
  EXPECT_MENTIONS(r.output, "failed: " + (batch / "c.png").string());
}

// Bad weights through the program: the tensor is named.
TEST_F(Programs, NonFiniteWeightsAreNamed) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const std::string src = std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-paper.weights.safetensors";
  // The fixture with its first float of head.up2.conv.bias set to NaN (byte-level edit).
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len));
  const uint64_t offset = header["head.up2.conv.bias"]["data_offsets"][0];
  const float nan = NAN;
  std::memcpy(&bytes[8 + header_len + offset], &nan, 4);
  const fs::path bad = dir_ / "nan.safetensors";
  std::ofstream(bad, std::ios::binary) << bytes;
  const Result r =
      infer("--weights " + bad.string() + " " + (dir_ / "samples" / "synthetic_0.png").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_MENTIONS(r.output, "parameter tensor 'head.up2.conv.bias' holds NaN at [0]");
}

TEST_F(Programs, InferErrorsNameTheCulprit) {
  ASSERT_EQ(make_samples().exit_code, 0);
  const std::string image = (dir_ / "samples" / "synthetic_0.png").string();
  Result r = infer("--random-weights 1 --input-size 50x96 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--input-size");
  r = infer("--random-weights 1 --input-size 64by96 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "64by96");
  r = infer(image);  // no weights
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--weights");
  const std::string missing = (dir_ / "nope.safetensors").string();
  r = infer("--weights " + missing + " " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, missing);
  const std::string rtseg =
      std::string(FARSEE_TEST_DATA_DIR) + "/net/tiny-rtseg.weights.safetensors";
  r = infer("--weights " + rtseg + " " + image);  // other preset's weights
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "tiny-rtseg");
  const fs::path fake = dir_ / "fake.png";
  std::ofstream(fake) << "not an image";
  r = infer("--random-weights 1 " + fake.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, fake.string());
  r = infer("--random-weights 1 " + (dir_ / "absent.png").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "absent.png");
  r = infer("--random-weights 1 --precision fp8 " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "fp8");
  r = infer("--random-weights 1 --executor gpu " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "gpu");
  r = infer("--random-weights 1 --frobnicate " + image);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_MENTIONS(r.output, "--frobnicate");
  r = infer("--random-weights 1 --save-logits " + (dir_ / "all.npy").string() + " " + image);
  EXPECT_NE(r.exit_code, 0);  // the old form, one stacked file: now one file per image
  EXPECT_MENTIONS(r.output, "--save-logits takes no value");
}

TEST_F(Programs, BenchWritesJson) {
  const fs::path json = dir_ / "bench.json";
  const Result r = run(tool("farsee-bench") +
                       " --preset tiny-rtseg --executor reference --sizes 64x64,32x96 --batches 1,2"
                       " --precision fp32,fp16 --runs 3 --warmup 1 --json " +
                       json.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(json);
  const nlohmann::json doc = nlohmann::json::parse(f);
  EXPECT_EQ(doc["tool"], "farsee-bench");
  EXPECT_EQ(doc["executor"], "reference");
  ASSERT_EQ(doc["results"].size(), 8u);  // 2 sizes x 2 batches x 2 precisions
  for (const auto& row : doc["results"]) {
    for (const char* key : {"size", "height", "width", "batch", "precision", "mode", "runs",
                            "median_ms", "p10_ms", "p90_ms", "images_per_s", "arena_bytes"}) {
      EXPECT_TRUE(row.contains(key)) << key;
    }
    EXPECT_LE(row["p10_ms"].get<double>(), row["median_ms"].get<double>());
    EXPECT_LE(row["median_ms"].get<double>(), row["p90_ms"].get<double>());
    EXPECT_EQ(row["runs"], 3);
  }
  const Result bad = run(tool("farsee-bench") + " --executor reference --sizes 64x60");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_MENTIONS(bad.output, "64x60");
}

// --precision tf32: a row named "tf32" on the reference executor (operands rounded to TF32); the
// cpu executor refuses it, naming it, in farsee-bench and farsee-infer; farsee-infer runs it on the
// reference.
TEST_F(Programs, BenchAndInferTf32) {
  const fs::path json = dir_ / "bench_tf32.json";
  const Result r = run(tool("farsee-bench") +
                       " --preset tiny-rtseg --executor reference --sizes 64x64 --batches 1"
                       " --precision tf32 --runs 1 --warmup 0 --json " +
                       json.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(json);
  const nlohmann::json doc = nlohmann::json::parse(f);
  ASSERT_EQ(doc["results"].size(), 1u);
  EXPECT_EQ(doc["results"][0]["precision"], "tf32");
  const Result cpu = run(tool("farsee-bench") +
                         " --preset tiny-rtseg --executor cpu --sizes 64x64 --precision tf32");
  EXPECT_NE(cpu.exit_code, 0);
  EXPECT_MENTIONS(cpu.output, "tf32");
  EXPECT_MENTIONS(cpu.output, "cpu executor");
  ASSERT_EQ(make_samples().exit_code, 0);
  const Result infer_cpu =
      run(tool("farsee-infer") + " --random-weights 1 --preset tiny-paper --input-size 64x96 " +
          "--executor cpu --precision tf32 --out " + (dir_ / "out").string() + " " +
          (dir_ / "samples" / "synthetic_0.png").string());
  EXPECT_NE(infer_cpu.exit_code, 0);
  EXPECT_MENTIONS(infer_cpu.output, "tf32");
  // On the reference executor farsee-infer runs tf32 through the API (farsee::Segmenter).
  const Result infer_ref =
      run(tool("farsee-infer") + " --random-weights 1 --preset tiny-paper --input-size 64x96 " +
          "--executor reference --precision tf32 --out " + (dir_ / "out").string() + " " +
          (dir_ / "samples" / "synthetic_0.png").string());
  ASSERT_EQ(infer_ref.exit_code, 0) << infer_ref.output;
  EXPECT_MENTIONS(infer_ref.output, "tf32, executor reference");
}

}  // namespace
