// Augmentation (tools/data/augment.h): draws are deterministic by seed, crops pad with 255 (image:
// the ImageNet mean), flips mirror image and label, scales and rotations only ever produce label
// values of the source (or 255), and the identity warp copies exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tools/data/augment.h"

namespace farsee::tools {
namespace {

HostSample pattern(int h, int w) {
  HostSample s;
  s.h = h;
  s.w = w;
  s.rgb.resize(size_t(h) * w * 3);
  s.labels.resize(size_t(h) * w);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      s.labels[i] = uint8_t((x / 5 + y / 3) % 4 == 3 ? 255 : (x / 5 + 2 * (y / 3)) % 7);
      for (int c = 0; c < 3; ++c)
        s.rgb[i * 3 + size_t(c)] = float((x * 7 + y * 3 + c * 11) % 50) / 50;
    }
  }
  return s;
}

std::set<uint8_t> values(const std::vector<uint8_t>& v) {
  return {v.begin(), v.end()};
}

TEST(Augment, DrawsAreDeterministic) {
  const AugmentParams p = AugmentParams::paper();
  const AugmentDraw a = draw_augment(p, sample_seed(1, 2, 3), 64, 128);
  const AugmentDraw b = draw_augment(p, sample_seed(1, 2, 3), 64, 128);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.angle, b.angle);
  EXPECT_EQ(a.crop_x, b.crop_x);
  EXPECT_EQ(a.flip, b.flip);
  EXPECT_EQ(a.noise_seed, b.noise_seed);
  EXPECT_NE(sample_seed(1, 2, 3), sample_seed(1, 3, 2));
  EXPECT_NE(sample_seed(1, 2, 3), sample_seed(2, 2, 3));
  int flips = 0;
  for (int i = 0; i < 200; ++i) {
    const AugmentDraw d = draw_augment(p, sample_seed(0, 0, i), 64, 128);
    EXPECT_GE(d.scale, 0.5f);
    EXPECT_LE(d.scale, 2.0f);
    EXPECT_LE(std::abs(d.angle), 10 * 3.1416f / 180);
    flips += d.flip;
  }
  EXPECT_GT(flips, 60);
  EXPECT_LT(flips, 140);
  // The same sample through the pipeline twice: identical bytes.
  const HostSample s = pattern(40, 60);
  std::vector<float> in1(20 * 30 * 3), in2(in1.size());
  const Affine m = augment_affine(a, 40, 60, 40, 60, 20, 30);
  warp_rgb(s.rgb.data(), 40, 60, in1.data(), 20, 30, m, kImageNetMean);
  warp_rgb(s.rgb.data(), 40, 60, in2.data(), 20, 30, m, kImageNetMean);
  photometric(a, in1.data(), 600);
  photometric(a, in2.data(), 600);
  EXPECT_EQ(in1, in2);
  for (float v : in1) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
  }
}

TEST(Augment, CropPadsWith255AndTheMean) {
  const HostSample s = pattern(20, 30);
  const HostSample c = crop_sample(s, -4, 25, 10, 12);  // 4 rows above, 7 columns right
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 12; ++x) {
      const int sy = y - 4, sx = x + 25;
      const size_t i = size_t(y) * 12 + x;
      if (sy < 0 || sx >= 30) {
        EXPECT_EQ(c.labels[i], 255) << y << "," << x;
        EXPECT_EQ(c.rgb[i * 3 + 1], kImageNetMean[1]);
      } else {
        const size_t j = size_t(sy) * 30 + sx;
        EXPECT_EQ(c.labels[i], s.labels[j]);
        EXPECT_EQ(c.rgb[i * 3 + 2], s.rgb[j * 3 + 2]);  // integer shifts copy exactly
      }
    }
  }
}

TEST(Augment, FlipMirrorsImageAndLabel) {
  const HostSample s = pattern(9, 13), f = flip_sample(s);
  for (int y = 0; y < 9; ++y) {
    for (int x = 0; x < 13; ++x) {
      EXPECT_EQ(f.labels[size_t(y) * 13 + x], s.labels[size_t(y) * 13 + 12 - x]);
      EXPECT_EQ(f.rgb[(size_t(y) * 13 + x) * 3], s.rgb[(size_t(y) * 13 + 12 - x) * 3]);
    }
  }
  const HostSample ff = flip_sample(f);
  EXPECT_EQ(ff.labels, s.labels);
  EXPECT_EQ(ff.rgb, s.rgb);
  // The fused warp's flip is the same mirror.
  AugmentDraw d;
  d.flip = true;
  d.window_h = 9;
  d.window_w = 13;
  std::vector<uint8_t> labels(9 * 13);
  warp_labels(s.labels.data(), 9, 13, labels.data(), 9, 13, augment_affine(d, 9, 13, 9, 13, 9, 13));
  EXPECT_EQ(labels, f.labels);
}

TEST(Augment, ScaleAndRotationKeepLabelValues) {
  const HostSample s = pattern(30, 40);
  std::set<uint8_t> allowed = values(s.labels);
  for (float scale : {0.5f, 0.77f, 1.6f, 2.0f}) {
    const HostSample o = scale_sample(s, scale);
    EXPECT_EQ(o.h, int(std::lround(30 * scale)));
    for (uint8_t v : values(o.labels)) EXPECT_TRUE(allowed.count(v)) << int(v);
  }
  const HostSample twice = scale_sample(s, 2.0f);  // nearest: each source pixel becomes 2x2
  for (int y = 0; y < 60; ++y) {
    for (int x = 0; x < 80; ++x) {
      EXPECT_EQ(twice.labels[size_t(y) * 80 + x], s.labels[size_t(y / 2) * 40 + x / 2]);
    }
  }
  for (float deg : {-10.0f, 3.0f, 10.0f}) {
    const HostSample o = rotate_sample(s, deg);
    for (uint8_t v : values(o.labels)) EXPECT_TRUE(allowed.count(v)) << int(v);
    EXPECT_EQ(o.labels[size_t(15) * 40 + 20], s.labels[size_t(15) * 40 + 20]);  // the centre
  }
  // The identity copies exactly; the corners of a rotation fall outside (255).
  const HostSample same = rotate_sample(s, 0);
  EXPECT_EQ(same.labels, s.labels);
  EXPECT_EQ(same.rgb, s.rgb);
  HostSample plain = s;
  std::fill(plain.labels.begin(), plain.labels.end(), 1);
  EXPECT_EQ(rotate_sample(plain, 10).labels[0], 255);
  // A full paper draw: label values stay in the source set.
  const AugmentParams p = AugmentParams::paper();
  for (int i = 0; i < 10; ++i) {
    const AugmentDraw d = draw_augment(p, sample_seed(4, 0, i), 30, 40);
    std::vector<uint8_t> labels(30 * 40);
    warp_labels(s.labels.data(), 30, 40, labels.data(), 30, 40,
                augment_affine(d, 30, 40, 30, 40, 30, 40));
    for (uint8_t v : values(labels)) EXPECT_TRUE(allowed.count(v)) << int(v);
  }
}

}  // namespace
}  // namespace farsee::tools
