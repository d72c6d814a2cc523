#include "tools/data/augment.h"

#include <algorithm>
#include <cmath>

#include "kernels/core/check.h"
#include "net/farsee_net.h"
#include "tools/data/splitmix.h"

namespace farsee::tools {
namespace {

struct Rng {
  uint64_t state;
  double uniform() {
    return double((state = splitmix64(state)) >> 11) * (1.0 / 9007199254740992.0);
  }
  double range(double lo, double hi) { return lo + (hi - lo) * uniform(); }
};

constexpr double kPi = 3.14159265358979323846;

template <typename Sampler>
void warp_rows(int dst_h, int dst_w, const Affine& m, Sampler&& sample) {
  for (int y = 0; y < dst_h; ++y) {
    const double yc = y + 0.5;
    for (int x = 0; x < dst_w; ++x) {
      const double xc = x + 0.5;
      sample(y, x, m.a * xc + m.b * yc + m.c, m.d * xc + m.e * yc + m.f);
    }
  }
}

template <typename T, typename Load>
void warp_bilinear(const T* src, int src_h, int src_w, float* dst, int dst_h, int dst_w,
                   const Affine& m, const float fill[3], Load&& load) {
  warp_rows(dst_h, dst_w, m, [&](int y, int x, double sx, double sy) {
    float* out = dst + (size_t(y) * dst_w + x) * 3;
    if (!(sx >= 0 && sx < src_w && sy >= 0 && sy < src_h)) {
      out[0] = fill[0];
      out[1] = fill[1];
      out[2] = fill[2];
      return;
    }
    // PyTorch's align_corners=False: sample at (s - 0.5), neighbours clamped to the edge.
    const double px = std::max(sx - 0.5, 0.0), py = std::max(sy - 0.5, 0.0);
    const int x0 = std::min(int(px), src_w - 1), y0 = std::min(int(py), src_h - 1);
    const int x1 = std::min(x0 + 1, src_w - 1), y1 = std::min(y0 + 1, src_h - 1);
    const float fx = float(px - x0), fy = float(py - y0);
    const T* p00 = src + (size_t(y0) * src_w + x0) * 3;
    const T* p01 = src + (size_t(y0) * src_w + x1) * 3;
    const T* p10 = src + (size_t(y1) * src_w + x0) * 3;
    const T* p11 = src + (size_t(y1) * src_w + x1) * 3;
    for (int c = 0; c < 3; ++c) {
      const float top = load(p00[c]) + (load(p01[c]) - load(p00[c])) * fx;
      const float bottom = load(p10[c]) + (load(p11[c]) - load(p10[c])) * fx;
      out[c] = top + (bottom - top) * fy;
    }
  });
}

}  // namespace

const float kImageNetMean[3] = {net::kImageMean[0], net::kImageMean[1], net::kImageMean[2]};

AugmentParams AugmentParams::paper() {
  AugmentParams p;
  p.flip = true;
  p.scale_min = 0.5f;
  p.scale_max = 2.0f;
  p.max_rotation_deg = 10;
  p.brightness = 0.25f;
  p.contrast = 0.25f;
  p.saturation = 0.25f;
  p.channel_gain = 0.1f;
  p.noise = 0.03f;
  return p;
}

bool AugmentParams::geometric_identity() const {
  return scale_min == 1 && scale_max == 1 && max_rotation_deg == 0 && crop_h == 0 && crop_w == 0;
}

bool AugmentDraw::geometric_identity() const {
  return scale == 1 && angle == 0 && crop_y == 0 && crop_x == 0;
}

uint64_t sample_seed(uint64_t run_seed, int64_t epoch, int64_t index) {
  return splitmix64(splitmix64(run_seed ^ 0xa46e7ull) ^
                    splitmix64(uint64_t(epoch) * 0x100000001b3ull + uint64_t(index)));
}

AugmentDraw draw_augment(const AugmentParams& p, uint64_t seed, int base_h, int base_w) {
  FARSEE_REQUIRE(p.scale_min > 0 && p.scale_min <= p.scale_max,
                 "augmentation scale range " << p.scale_min << ".." << p.scale_max
                                             << " must be positive and ordered");
  Rng r{seed};
  AugmentDraw d;
  // A fixed number of draws in a fixed order, whichever steps are enabled.
  const double u_flip = r.uniform(), u_scale = r.uniform(), u_angle = r.uniform();
  const double u_y = r.uniform(), u_x = r.uniform();
  const double u_b = r.uniform(), u_c = r.uniform(), u_s = r.uniform();
  const double u_g[3] = {r.uniform(), r.uniform(), r.uniform()};
  d.noise_seed = splitmix64(r.state ^ 0x7015eull);
  d.flip = p.flip && u_flip < 0.5;
  d.scale = float(p.scale_min + (p.scale_max - p.scale_min) * u_scale);
  d.angle = float((2 * u_angle - 1) * p.max_rotation_deg * kPi / 180);
  d.window_h = p.crop_h > 0 ? p.crop_h : base_h;
  d.window_w = p.crop_w > 0 ? p.crop_w : base_w;
  const auto offset = [](double scaled, int window, double u) {
    const double lo = std::min(0.0, scaled - window), hi = std::max(0.0, scaled - window);
    const int span = int(std::floor(hi - lo));
    return int(std::floor(lo)) + std::min(span, int(u * (span + 1)));
  };
  if (!(p.scale_min == 1 && p.scale_max == 1 && d.window_h == base_h && d.window_w == base_w)) {
    d.crop_y = offset(double(base_h) * d.scale, d.window_h, u_y);
    d.crop_x = offset(double(base_w) * d.scale, d.window_w, u_x);
  }
  d.brightness = float(1 + p.brightness * (2 * u_b - 1));
  d.contrast = float(1 + p.contrast * (2 * u_c - 1));
  d.saturation = float(1 + p.saturation * (2 * u_s - 1));
  for (int c = 0; c < 3; ++c) d.gain[c] = float(1 + p.channel_gain * (2 * u_g[c] - 1));
  d.noise = p.noise;
  return d;
}

Affine augment_affine(const AugmentDraw& d, int base_h, int base_w, int src_h, int src_w, int out_h,
                      int out_w) {
  const double s = d.scale, sw = base_w * s, sh = base_h * s;
  const double cs = std::cos(double(d.angle)), sn = std::sin(double(d.angle));
  const auto map = [&](double px, double py, double* ox, double* oy) {
    double qx = px * d.window_w / out_w + d.crop_x, qy = py * d.window_h / out_h + d.crop_y;
    if (d.flip) qx = sw - qx;
    // Undo the rotation about the scaled image's centre.
    const double dx = qx - sw / 2, dy = qy - sh / 2;
    const double rx = cs * dx - sn * dy + sw / 2, ry = sn * dx + cs * dy + sh / 2;
    *ox = rx / s * src_w / base_w;
    *oy = ry / s * src_h / base_h;
  };
  double x0, y0, x1, y1, x2, y2;
  map(0, 0, &x0, &y0);
  map(1, 0, &x1, &y1);
  map(0, 1, &x2, &y2);
  return Affine{x1 - x0, x2 - x0, x0, y1 - y0, y2 - y0, y0};
}

void warp_rgb(const float* src, int src_h, int src_w, float* dst, int dst_h, int dst_w,
              const Affine& m, const float fill[3]) {
  warp_bilinear(src, src_h, src_w, dst, dst_h, dst_w, m, fill, [](float v) { return v; });
}

void warp_rgb8(const uint8_t* src, int src_h, int src_w, float* dst, int dst_h, int dst_w,
               const Affine& m, const float fill[3]) {
  warp_bilinear(src, src_h, src_w, dst, dst_h, dst_w, m, fill,
                [](uint8_t v) { return float(v) / 255.f; });
}

void warp_labels(const uint8_t* src, int src_h, int src_w, uint8_t* dst, int dst_h, int dst_w,
                 const Affine& m) {
  warp_rows(dst_h, dst_w, m, [&](int y, int x, double sx, double sy) {
    uint8_t v = 255;
    if (sx >= 0 && sx < src_w && sy >= 0 && sy < src_h) {
      v = src[size_t(std::min(int(sy), src_h - 1)) * src_w + std::min(int(sx), src_w - 1)];
    }
    dst[size_t(y) * dst_w + x] = v;
  });
}

void photometric(const AugmentDraw& d, float* rgb, int64_t pixels) {
  const bool plain = d.brightness == 1 && d.contrast == 1 && d.saturation == 1 && d.gain[0] == 1 &&
                     d.gain[1] == 1 && d.gain[2] == 1 && d.noise == 0;
  if (plain) return;
  for (int64_t i = 0; i < pixels; ++i) {
    float* p = rgb + i * 3;
    float c[3];
    for (int k = 0; k < 3; ++k) c[k] = (p[k] * d.brightness - 0.5f) * d.contrast + 0.5f;
    const float luma = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
    const uint64_t h = d.noise > 0 ? splitmix64(d.noise_seed ^ splitmix64(uint64_t(i))) : 0;
    for (int k = 0; k < 3; ++k) {
      float v = (luma + (c[k] - luma) * d.saturation) * d.gain[k];
      if (d.noise > 0) {
        const float u = float((h >> (k * 20)) & 0xfffff) * (1.0f / 1048576.0f);
        v += d.noise * (2 * u - 1);
      }
      p[k] = std::clamp(v, 0.0f, 1.0f);
    }
  }
}

namespace {
HostSample warp_sample(const HostSample& s, int h, int w, const Affine& m) {
  HostSample o;
  o.h = h;
  o.w = w;
  o.rgb.resize(size_t(h) * w * 3);
  o.labels.resize(size_t(h) * w);
  warp_rgb(s.rgb.data(), s.h, s.w, o.rgb.data(), h, w, m, kImageNetMean);
  warp_labels(s.labels.data(), s.h, s.w, o.labels.data(), h, w, m);
  return o;
}
}  // namespace

HostSample flip_sample(const HostSample& s) {
  HostSample o = s;
  for (int y = 0; y < s.h; ++y) {
    for (int x = 0; x < s.w; ++x) {
      const size_t from = size_t(y) * s.w + (s.w - 1 - x), to = size_t(y) * s.w + x;
      o.labels[to] = s.labels[from];
      for (int c = 0; c < 3; ++c) o.rgb[to * 3 + c] = s.rgb[from * 3 + c];
    }
  }
  return o;
}

HostSample scale_sample(const HostSample& s, float scale) {
  const int h = std::max(1, int(std::lround(s.h * double(scale))));
  const int w = std::max(1, int(std::lround(s.w * double(scale))));
  Affine m;
  m.a = double(s.w) / w;
  m.e = double(s.h) / h;
  return warp_sample(s, h, w, m);
}

HostSample crop_sample(const HostSample& s, int y, int x, int h, int w) {
  Affine m;
  m.c = x;
  m.f = y;
  return warp_sample(s, h, w, m);
}

HostSample rotate_sample(const HostSample& s, float degrees) {
  AugmentDraw d;
  d.angle = float(degrees * kPi / 180);
  d.window_h = s.h;
  d.window_w = s.w;
  return warp_sample(s, s.h, s.w, augment_affine(d, s.h, s.w, s.h, s.w, s.h, s.w));
}

}  // namespace farsee::tools
