// The public C++ API (net/api/farsee/farsee.h): the shipped weights segment a fixture scene
// exactly as farsee-infer did before it used the API (labels committed in tests/fixtures/api/,
// written by that farsee-infer: --preset paper --input-size 64x128 --executor reference|cpu), the
// weights file's metadata supplies the settings not given and refuses a contradicting network, a
// Segmenter is reusable across image sizes and two run at once on two threads, precision tf32
// reaches the network, and every bad input is a farsee::Error naming what is wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "net/api/farsee/farsee.h"
#include "net/api/weights_metadata.h"
#include "tests/net/tiny_segmenter.h"
#include "tests/support/error_of.h"
#include "tests/support/mentions.h"
#include "tools/data/image_io.h"

namespace {

// FARSEE_TEST_DATA_DIR is tests/fixtures.
const std::string kShipped =
    std::string(FARSEE_TEST_DATA_DIR) + "/../../weights/shipped/farsee-paper-synthetic.safetensors";
const std::string kFixtures = std::string(FARSEE_TEST_DATA_DIR) + "/api/";

// The first differing index of two label maps, or -1.
int64_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i] != b[i]) return int64_t(i);
  }
  return a.size() == b.size() ? -1 : int64_t(std::min(a.size(), b.size()));
}

class ShippedWeights : public ::testing::TestWithParam<const char*> {};

// The labels farsee-infer wrote for the scene before the API, bitwise (the cpu executor's labels
// equal the reference's on this scene: its logits differ by at most 4.8e-6, no argmax flips).
TEST_P(ShippedWeights, SegmentEqualsFarseeInfer) {
  const farsee::tools::Image scene = farsee::tools::read_rgb(kFixtures + "scene.png");
  const farsee::tools::Image expected =
      farsee::tools::read_grey(kFixtures + "scene_labels_" + GetParam() + ".png");
  farsee::SegmenterOptions o;
  o.weights = kShipped;
  o.input_height = 64;
  o.input_width = 128;
  o.executor = GetParam();
  farsee::Segmenter seg(o);
  const farsee::LabelMap labels = seg.segment(scene.data.data(), scene.height, scene.width);
  ASSERT_EQ(labels.height, scene.height);
  ASSERT_EQ(labels.width, scene.width);
  EXPECT_EQ(first_difference(labels.data, expected.data), -1);
  // logits(): C x H x W at the output size, the same as last_logits() after segment().
  const std::vector<float> after_segment = seg.last_logits();
  const std::vector<float> logits =
      seg.logits(scene.data.data(), scene.height, scene.width, 32, 48);
  EXPECT_EQ(after_segment.size(), size_t(19) * scene.height * scene.width);
  ASSERT_EQ(logits.size(), size_t(19) * 32 * 48);
  EXPECT_EQ(seg.last_logits(), logits);
  EXPECT_EQ(seg.executor(), GetParam());
  // The size asked differs from the one the weights were trained at: a note says so.
  ASSERT_FALSE(seg.notes().empty());
  EXPECT_MENTIONS(seg.notes().back(), "was trained at input 256x512; running at 64x128");
}
INSTANTIATE_TEST_SUITE_P(Api, ShippedWeights, ::testing::Values("reference", "cpu"));

// Nothing but the file: the preset, input size and class names come from its metadata.
TEST(Api, SettingsFromWeightsMetadata) {
  farsee::SegmenterOptions o;
  o.weights = kShipped;
  o.executor = "cpu";
  const farsee::Segmenter seg(o);
  EXPECT_EQ(seg.preset(), "paper");
  EXPECT_EQ(seg.input_height(), 256);
  EXPECT_EQ(seg.input_width(), 512);
  EXPECT_EQ(seg.num_classes(), 19);
  ASSERT_EQ(seg.class_names().size(), 19u);
  EXPECT_EQ(seg.class_names()[6], "traffic light");
  EXPECT_TRUE(seg.notes().empty()) << seg.notes().front();
  EXPECT_STREQ(farsee::version(), "0.1.0");
}

// A preset or configuration that is not the file's network: an error naming both.
TEST(Api, ContradictingNetworkIsAnError) {
  farsee::SegmenterOptions o;
  o.weights = kShipped;
  o.executor = "cpu";
  o.preset = "rtseg";
  std::string e = error_of([&] { farsee::Segmenter s(o); });
  EXPECT_MENTIONS(e, "preset 'rtseg', 19 classes is not the network of weights file");
  EXPECT_MENTIONS(e, "(preset 'paper', 19 classes, from its metadata)");
  o.preset = "tiny-paper";
  e = error_of([&] { farsee::Segmenter s(o); });
  EXPECT_MENTIONS(e, "preset 'tiny-paper', 5 classes is not the network");
}

farsee::SegmenterOptions tiny(const char* executor = "reference") {
  return farsee::test::tiny_segmenter(executor, 64, 96, 7);
}

// A deterministic test image.
std::vector<uint8_t> pattern(int h, int w, int seed) {
  std::vector<uint8_t> rgb(size_t(h) * w * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t((i * 37 + size_t(seed) * 101) % 251);
  return rgb;
}

// Images of three sizes through one Segmenter, each equal to a fresh Segmenter's labels.
TEST(Api, ReusableAcrossImageSizes) {
  farsee::Segmenter seg(tiny());
  const int sizes[][2] = {{40, 70}, {90, 50}, {40, 70}};
  for (int k = 0; k < 3; ++k) {
    const auto [h, w] = sizes[k];
    const std::vector<uint8_t> rgb = pattern(h, w, k);
    const farsee::LabelMap got = seg.segment(rgb.data(), h, w, k == 1 ? 30 : 0, k == 1 ? 20 : 0);
    farsee::Segmenter fresh(tiny());
    const farsee::LabelMap want = fresh.segment(rgb.data(), h, w, k == 1 ? 30 : 0, k == 1 ? 20 : 0);
    EXPECT_EQ(got.height, k == 1 ? 30 : h);
    EXPECT_EQ(got.width, k == 1 ? 20 : w);
    EXPECT_EQ(first_difference(got.data, want.data), -1) << "image " << k;
  }
}

// Two Segmenters on two threads at once give what each gives alone.
TEST(Api, TwoSegmentersOnTwoThreads) {
  const std::vector<uint8_t> a = pattern(48, 80, 1), b = pattern(56, 72, 2);
  farsee::Segmenter alone(tiny("cpu"));
  const farsee::LabelMap want_a = alone.segment(a.data(), 48, 80);
  const farsee::LabelMap want_b = alone.segment(b.data(), 56, 72);
  farsee::Segmenter s1(tiny("cpu")), s2(tiny("cpu"));
  farsee::LabelMap got_a, got_b;
  std::thread t1([&] { got_a = s1.segment(a.data(), 48, 80); });
  std::thread t2([&] { got_b = s2.segment(b.data(), 56, 72); });
  t1.join();
  t2.join();
  EXPECT_EQ(first_difference(got_a.data, want_a.data), -1);
  EXPECT_EQ(first_difference(got_b.data, want_b.data), -1);
}

// precision "tf32" reaches the network (tools::parse_precision -> FarSeeNet's Precision::TF32):
// on the reference its logits differ from strict fp32's, by the TF32 operand rounding only
// (measured max |tf32 - fp32| / max |fp32|: 1.5e-3 at 64x96, bound 2x that); the cpu executor
// refuses it.
TEST(Api, Tf32Precision) {
  const std::vector<uint8_t> rgb = pattern(64, 96, 3);
  farsee::SegmenterOptions o = tiny();
  farsee::Segmenter strict(o);
  o.precision = "tf32";
  farsee::Segmenter tf32(o);
  EXPECT_EQ(tf32.precision(), "tf32");
  const std::vector<float> want = strict.logits(rgb.data(), 64, 96);
  const std::vector<float> got = tf32.logits(rgb.data(), 64, 96);
  ASSERT_EQ(got.size(), want.size());
  double max_diff = 0.0, max_want = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "logit " << i << " is NaN";
    max_diff = std::max(max_diff, double(std::fabs(got[i] - want[i])));
    max_want = std::max(max_want, double(std::fabs(want[i])));
  }
  std::printf("tf32 vs fp32 logits: max diff %.3g of max %.3g\n", max_diff, max_want);
  EXPECT_GT(max_diff, 0.0) << "tf32 logits equal fp32's: the precision did not reach the convs";
  EXPECT_LT(max_diff, 3e-3 * max_want);
  o.executor = "cpu";
  EXPECT_MENTIONS(error_of([&] { farsee::Segmenter s(o); }), "tf32");
}

TEST(Api, BadOptionsAreErrors) {
  auto with = [](auto change) {
    farsee::SegmenterOptions o = tiny();
    change(o);
    return error_of([&] { farsee::Segmenter s(o); });
  };
  using O = farsee::SegmenterOptions;
  EXPECT_MENTIONS(with([](O& o) { o.precision = "fp8"; }), "--precision: 'fp8' is not one of");
  EXPECT_MENTIONS(with([](O& o) { o.executor = "tpu"; }), "--executor: 'tpu' is not one of");
  EXPECT_MENTIONS(with([](O& o) { o.preset = "huge"; }), "huge");
  EXPECT_MENTIONS(with([](O& o) { o.input_height = 60; }),
                  "--input-size 60x96: height and width must be multiples of 32");
  EXPECT_MENTIONS(with([](O& o) { o.input_width = 0; }), "give both sides, or neither");
  EXPECT_MENTIONS(with([](O& o) { o.random_seed = -1; }), "no weights file given");
  EXPECT_MENTIONS(with([](O& o) { o.weights = "x.safetensors"; }),
                  "weights ('x.safetensors') and random weights (seed 7) exclude each other");
  EXPECT_MENTIONS(with([](O& o) {
                    o.random_seed = -1;
                    o.weights = "/nonexistent/w.safetensors";
                  }),
                  "/nonexistent/w.safetensors");
  EXPECT_MENTIONS(with([](O& o) { o.num_threads = -2; }), "num_threads -2 is negative");
}

TEST(Api, BadImagesAreErrors) {
  farsee::Segmenter seg(tiny());
  const std::vector<uint8_t> rgb = pattern(40, 60, 0);
  EXPECT_MENTIONS(error_of([&] { seg.segment(nullptr, 40, 60); }), "image pointer is null");
  EXPECT_MENTIONS(error_of([&] { seg.segment(rgb.data(), 0, 60); }),
                  "image size 0x60 is not positive");
  EXPECT_MENTIONS(error_of([&] { seg.segment(rgb.data(), 40, 60, 30, 0); }),
                  "output size 30x0: give both sides");
  EXPECT_MENTIONS(error_of([&] { seg.segment(rgb.data(), 40, 60, 10000, 10000); }),
                  "output size 10000x10000 (100.0 megapixels) is above the limit of 64 megapixels");
  EXPECT_MENTIONS(error_of([&] { seg.last_logits(); }), "no image has been segmented yet");
  // Still usable after the errors.
  EXPECT_EQ(seg.segment(rgb.data(), 40, 60).data.size(), size_t(40 * 60));
}

// The metadata keys round-trip through the writer and reader; malformed ones name file and key.
TEST(Api, WeightsMetadataRoundTrip) {
  namespace net = farsee::net;
  const std::string path = ::testing::TempDir() + "/api_metadata.safetensors";
  net::WeightsMetadata m;
  m.config = net::preset_config("tiny-paper");
  m.input_height = 96;
  m.input_width = 160;
  m.class_names = {"a", "b", "c", "d", "e"};
  farsee::weights::SafetensorsWriter w;
  net::set_weights_metadata(w, m);
  w.add("x", {1}, std::vector<float>{1.f});
  w.write(path);
  const net::WeightsMetadata r = net::read_weights_metadata(path);
  ASSERT_TRUE(r.config.has_value());
  EXPECT_TRUE(*r.config == *m.config);
  EXPECT_EQ(r.preset, "tiny-paper");
  EXPECT_EQ(r.input_height, 96);
  EXPECT_EQ(r.input_width, 160);
  EXPECT_EQ(r.class_names, m.class_names);

  farsee::weights::SafetensorsWriter bad;
  bad.set_metadata("input_size", "100x64");
  bad.add("x", {1}, std::vector<float>{1.f});
  bad.write(path);
  EXPECT_MENTIONS(error_of([&] { net::read_weights_metadata(path); }),
                  "metadata 'input_size' is '100x64', not HxW with sides multiples of 32");
  farsee::weights::SafetensorsWriter names;
  names.set_metadata("config", net::config_to_json_text(net::preset_config("tiny-paper")));
  names.set_metadata("class_names", "[\"a\", \"b\"]");
  names.add("x", {1}, std::vector<float>{1.f});
  names.write(path);
  EXPECT_MENTIONS(error_of([&] { net::read_weights_metadata(path); }),
                  "metadata 'class_names' holds 2 names for a network of 5 classes");
}

// A file that records only a preset and a class count (no "config"): they are the defaults,
// --num-classes replaces the classes, and a preset or count that differs is refused naming both;
// a malformed count names the key.
TEST(Api, PresetAndClassesWithoutConfig) {
  namespace net = farsee::net;
  net::WeightsMetadata m;
  m.preset = "tiny-paper";
  m.num_classes = 3;
  const net::FarSeeConfig c = net::resolve_config("", "", m, "w.safetensors");
  EXPECT_EQ(c.preset, "tiny-paper");
  EXPECT_EQ(c.num_classes, 3);
  EXPECT_EQ(net::resolve_config("", "tiny-paper", m, "w.safetensors", 3).num_classes, 3);
  EXPECT_MENTIONS(error_of([&] { net::resolve_config("", "tiny-paper", m, "w.safetensors"); }),
                  "preset 'tiny-paper', 5 classes is not the network of weights file "
                  "'w.safetensors' (made for preset 'tiny-paper', 3 classes, from its metadata)");
  EXPECT_MENTIONS(error_of([&] { net::resolve_config("", "", m, "w.safetensors", 4); }),
                  "preset 'tiny-paper', 4 classes is not the network");
  EXPECT_EQ(net::resolve_input_size(0, 0, m), std::make_pair(512, 1024));
  m.input_height = 64;
  m.input_width = 96;
  EXPECT_EQ(net::resolve_input_size(0, 0, m), std::make_pair(64, 96));
  EXPECT_EQ(net::resolve_input_size(32, 32, m), std::make_pair(32, 32));

  const std::string path = ::testing::TempDir() + "/api_classes.safetensors";
  farsee::weights::SafetensorsWriter w;
  w.set_metadata("num_classes", "three");
  w.add("x", {1}, std::vector<float>{1.f});
  w.write(path);
  EXPECT_MENTIONS(error_of([&] { net::read_weights_metadata(path); }),
                  "metadata 'num_classes' is 'three', not in 1..255");
}

}  // namespace
