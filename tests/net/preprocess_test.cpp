// net/preprocess.h: the network input of an 8-bit RGB image, the one definition farsee-infer,
// farsee-eval and the training loader share. Checked bitwise against the steps written out
// (v / 255 in float, PyTorch bilinear with align_corners=False by the reference resize, ImageNet
// normalisation), at the image's own size (no resize) and at smaller and larger sizes, and against
// hand values for a uniform image.
#include "net/preprocess.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/core/tensor.h"
#include "kernels/reference/resize.h"
#include "net/farsee_net.h"

namespace farsee::net {
namespace {

std::vector<uint8_t> test_image(int h, int w) {
  std::vector<uint8_t> rgb(size_t(h) * w * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t((i * 37 + i / 7) % 256);
  return rgb;
}

// The preprocessing as the programs wrote it out before it was shared.
std::vector<float> written_out(const std::vector<uint8_t>& image, int h, int w, int oh, int ow,
                               bool normalise) {
  std::vector<float> rgb(image.size());
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = float(image[i]) / 255.f;
  std::vector<float> out = rgb;
  if (h != oh || w != ow) {
    out.assign(size_t(oh) * ow * 3, 0.f);
    reference::resize_bilinear_fwd(false, make_view(rgb.data(), DType::F32, Shape4{1, h, w, 3}),
                                   make_view(out.data(), DType::F32, Shape4{1, oh, ow, 3}));
  }
  if (normalise) normalise_rgb(out.data(), int64_t(oh) * ow);
  return out;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Preprocess, BitwiseTheWrittenOutSteps) {
  const int h = 45, w = 70;
  const std::vector<uint8_t> image = test_image(h, w);
  for (const auto& [oh, ow] : {std::pair{45, 70}, std::pair{32, 64}, std::pair{96, 128}}) {
    SCOPED_TRACE(std::to_string(oh) + "x" + std::to_string(ow));
    std::vector<float> unit(size_t(oh) * ow * 3, -1.f), input(size_t(oh) * ow * 3, -1.f);
    rgb8_to_unit(image.data(), h, w, unit.data(), oh, ow);
    preprocess_rgb8(image.data(), h, w, input.data(), oh, ow);
    EXPECT_TRUE(bitwise_equal(unit, written_out(image, h, w, oh, ow, false)));
    EXPECT_TRUE(bitwise_equal(input, written_out(image, h, w, oh, ow, true)));
  }
}

TEST(Preprocess, UniformImageIsTheNormalisedColour) {
  const std::vector<uint8_t> image(size_t(8) * 8 * 3, 255);
  std::vector<float> input(size_t(4) * 16 * 3);
  preprocess_rgb8(image.data(), 8, 8, input.data(), 4, 16);
  for (size_t p = 0; p < input.size() / 3; ++p) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_FLOAT_EQ(input[p * 3 + c], (1.f - kImageMean[c]) / kImageStd[c]);
    }
  }
}

TEST(Preprocess, RefusesEmptySizes) {
  const std::vector<uint8_t> image(3, 0);
  std::vector<float> out(3);
  EXPECT_THROW(rgb8_to_unit(image.data(), 1, 1, out.data(), 0, 1), Error);
  EXPECT_THROW(preprocess_rgb8(image.data(), 0, 1, out.data(), 1, 1), Error);
}

}  // namespace
}  // namespace farsee::net
