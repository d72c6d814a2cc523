// Reference augmentation (kernels/augment.h): the host augmentation's stages one after the other
// on one sample at a time, as tools/data/dataset.cpp load_sample() runs them: the whole image
// warped (or resized with the reference resize, as net::rgb8_to_unit, then mirrored) into an fp32
// buffer, then the colour jitter over the buffer, then the normalisation, then the store; the
// label map warped (or resized by integer nearest and mirrored) on its own. The fused executors
// (cpu, emu, cuda) share one per-pixel function (kernels/core/augment_math.h) instead; this file
// does not use it.
#include "kernels/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/resize.h"

namespace farsee::reference {
namespace {

// The source coordinate of output pixel centre (x, y).
void map_centre(const AugmentAffine& m, int x, int y, double* sx, double* sy) {
  const double xc = x + 0.5, yc = y + 0.5;
  *sx = m.a * xc + m.b * yc + m.c;
  *sy = m.d * xc + m.e * yc + m.f;
}

void warp_image(const uint8_t* src, int h, int w, const AugmentAffine& m, const float fill[3],
                float* dst, int out_h, int out_w) {
  for (int y = 0; y < out_h; ++y) {
    for (int x = 0; x < out_w; ++x) {
      float* out = dst + (size_t(y) * out_w + x) * 3;
      double sx, sy;
      map_centre(m, x, y, &sx, &sy);
      if (!(sx >= 0 && sx < w && sy >= 0 && sy < h)) {
        std::copy(fill, fill + 3, out);
        continue;
      }
      const double px = std::max(sx - 0.5, 0.0), py = std::max(sy - 0.5, 0.0);
      const int x0 = std::min(int(px), w - 1), y0 = std::min(int(py), h - 1);
      const int x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1);
      const float fx = float(px - x0), fy = float(py - y0);
      const auto v = [&](int yy, int xx, int c) {
        return float(src[(size_t(yy) * w + xx) * 3 + c]) / 255.f;
      };
      for (int c = 0; c < 3; ++c) {
        const float top = v(y0, x0, c) + (v(y0, x1, c) - v(y0, x0, c)) * fx;
        const float bottom = v(y1, x0, c) + (v(y1, x1, c) - v(y1, x0, c)) * fx;
        out[c] = top + (bottom - top) * fy;
      }
    }
  }
}

void resize_image(const uint8_t* src, int h, int w, bool flip, float* dst, int out_h, int out_w) {
  std::vector<float> unit(size_t(h) * w * 3);
  for (size_t i = 0; i < unit.size(); ++i) unit[i] = float(src[i]) / 255.f;
  resize_bilinear_fwd(false, make_view(unit.data(), DType::F32, Shape4{1, h, w, 3}),
                      make_view(dst, DType::F32, Shape4{1, out_h, out_w, 3}));
  if (!flip) return;
  for (int y = 0; y < out_h; ++y) {
    for (int x = 0; x < out_w / 2; ++x) {
      for (int c = 0; c < 3; ++c) {
        std::swap(dst[(size_t(y) * out_w + x) * 3 + c],
                  dst[(size_t(y) * out_w + out_w - 1 - x) * 3 + c]);
      }
    }
  }
}

void colour(const AugmentSample& s, float* rgb, int64_t pixels) {
  if (s.brightness == 1 && s.contrast == 1 && s.saturation == 1 && s.gain[0] == 1 &&
      s.gain[1] == 1 && s.gain[2] == 1 && s.noise == 0) {
    return;
  }
  for (int64_t i = 0; i < pixels; ++i) {
    float* p = rgb + i * 3;
    float c[3];
    for (int k = 0; k < 3; ++k) c[k] = (p[k] * s.brightness - 0.5f) * s.contrast + 0.5f;
    const float luma = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
    const uint64_t h = s.noise > 0 ? splitmix64(s.noise_seed ^ splitmix64(uint64_t(i))) : 0;
    for (int k = 0; k < 3; ++k) {
      float v = (luma + (c[k] - luma) * s.saturation) * s.gain[k];
      if (s.noise > 0) v += s.noise * (2 * (float((h >> (k * 20)) & 0xfffff) / 1048576.0f) - 1);
      p[k] = std::clamp(v, 0.0f, 1.0f);
    }
  }
}

void labels_of(const uint8_t* src, const AugmentSample& s, uint8_t* dst, int lh, int lw) {
  const int h = s.src_h, w = s.src_w;
  for (int y = 0; y < lh; ++y) {
    for (int x = 0; x < lw; ++x) {
      uint8_t v = 255;
      if (s.resize_only) {
        const int sx = int(int64_t(s.flip ? lw - 1 - x : x) * w / lw);
        v = src[size_t(int64_t(y) * h / lh) * w + sx];
      } else {
        double sx, sy;
        map_centre(s.label_map, x, y, &sx, &sy);
        if (sx >= 0 && sx < w && sy >= 0 && sy < h) {
          v = src[size_t(std::min(int(sy), h - 1)) * w + std::min(int(sx), w - 1)];
        }
      }
      dst[size_t(y) * lw + x] = v;
    }
  }
}

}  // namespace

void augment_fwd(FARSEE_AUGMENT_FWD_ARGS) {
  check_augment_samples(batch.samples, input.n(), batch.image_bytes, batch.label_bytes);
  const int oh = input.h(), ow = input.w();
  const int64_t pixels = int64_t(oh) * ow;
  const AugmentNormalise& norm = batch.normalise;
  std::vector<float> rgb(size_t(pixels) * 3);
  for (int n = 0; n < input.n(); ++n) {
    const AugmentSample& s = batch.samples[n];
    const uint8_t* image = batch.images + s.image_offset;
    if (s.resize_only) {
      resize_image(image, s.src_h, s.src_w, s.flip != 0, rgb.data(), oh, ow);
    } else {
      warp_image(image, s.src_h, s.src_w, s.image_map, norm.mean, rgb.data(), oh, ow);
    }
    colour(s, rgb.data(), pixels);
    for (int64_t i = 0; i < pixels * 3; ++i) {
      store(input, int64_t(n) * pixels * 3 + i,
            (rgb[size_t(i)] - norm.mean[i % 3]) / norm.std[i % 3]);
    }
    labels_of(batch.labels + s.label_offset, s, out_labels + int64_t(n) * label_h * label_w,
              label_h, label_w);
  }
  (void)ctx;
}

}  // namespace farsee::reference
