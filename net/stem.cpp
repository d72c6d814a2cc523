#include "net/stem.h"

#include <algorithm>

#include "kernels/core/check.h"
#include "kernels/core/executor.h"

namespace farsee::net {
namespace {

constexpr int kBlockChannels = 12;  // 2 x 2 pixels x 3 channels

void require_channels(int channels, const char* who) {
  FARSEE_REQUIRE(channels >= kBlockChannels,
                 who << ": " << channels << " channels per block pixel, need >= 12");
}

}  // namespace

bool stem_space_to_depth(Executor executor) {
  return !is_host_reference_layout(executor);
}

int stem_s2d_channels(DType dtype) {
  return dtype == DType::F16 ? 16 : kBlockChannels;
}

Shape4 stem_s2d_shape(Shape4 x, int channels) {
  return Shape4{x.n, (x.h + 1) / 2 + 1, (x.w + 1) / 2 + 1, channels};
}

ConvShape stem_s2d_conv(const ConvShape& stem) {
  const ConvShape plain = square_conv(7, 2);
  FARSEE_REQUIRE(stem.kernel_h == 7 && stem.kernel_w == 7 && stem.stride_h == 2 &&
                     stem.stride_w == 2 && stem.pad_h == plain.pad_h && stem.pad_w == plain.pad_w &&
                     stem.dilation_h == 1 && stem.dilation_w == 1 && stem.groups == 1,
                 "stem_s2d_conv: the space-to-depth stem needs a 7x7 stride-2 pad-3 conv");
  ConvShape s = square_conv(4, 1);
  s.pad_h = s.pad_w = 1;  // square_conv's (k / 2) would be 2 for an even kernel
  return s;
}

void stem_s2d_input(const float* x, Shape4 shape, int channels, float* out) {
  require_channels(channels, "stem_s2d_input");
  FARSEE_REQUIRE(shape.c == 3, "stem_s2d_input: input has " << shape.c << " channels, expected 3");
  const Shape4 s = stem_s2d_shape(shape, channels);
  std::fill(out, out + s.elements(), 0.0f);
  for (int n = 0; n < s.n; ++n) {
    for (int y = 0; y < shape.h; ++y) {
      const int by = (y + 1) / 2, a = (y + 1) % 2;  // y = 2 * by - 1 + a
      for (int x0 = 0; x0 < shape.w; ++x0) {
        const int bx = (x0 + 1) / 2, b = (x0 + 1) % 2;
        const float* src = x + ((int64_t(n) * shape.h + y) * shape.w + x0) * 3;
        float* dst = out + ((int64_t(n) * s.h + by) * s.w + bx) * channels + a * 6 + b * 3;
        std::copy(src, src + 3, dst);
      }
    }
  }
}

std::vector<float> stem_s2d_weights(const std::vector<float>& krsc, int K, int channels) {
  require_channels(channels, "stem_s2d_weights");
  FARSEE_REQUIRE(krsc.size() == size_t(K) * 7 * 7 * 3,
                 "stem_s2d_weights: got "
                     << krsc.size() << " weights, expected K*7*7*3 = " << size_t(K) * 7 * 7 * 3);
  std::vector<float> out(size_t(K) * 4 * 4 * channels, 0.0f);
  for (int k = 0; k < K; ++k) {
    for (int r = 0; r < 7; ++r) {
      for (int s = 0; s < 7; ++s) {
        const float* src = krsc.data() + ((size_t(k) * 7 + r) * 7 + s) * 3;
        const int u = r / 2, a = r % 2, v = s / 2, b = s % 2;
        float* dst = out.data() + ((size_t(k) * 4 + u) * 4 + v) * channels + a * 6 + b * 3;
        std::copy(src, src + 3, dst);
      }
    }
  }
  return out;
}

}  // namespace farsee::net
