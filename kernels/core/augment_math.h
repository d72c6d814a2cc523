// The per-pixel arithmetic of the augmentation op (kernels/augment.h), shared by the cpu executor
// and the kernels (cuda, emu), so every executor evaluates the same operations in the same order.
// It is the host augmentation of tools/data/augment.cpp and tools/data/dataset.cpp load_sample(),
// written once per output pixel instead of image by image:
//   geometry  affine: the source coordinate of an output pixel centre in double (tools' Affine,
//             warp_rows), bilinear with PyTorch's align_corners=False taps clamped to the edge,
//             blended in float (warp_rgb8); labels nearest (warp_labels).
//             resize_only: PyTorch's bilinear resize (reference::linear_taps: taps in double from
//             the float scale, blended in double and rounded once; net::rgb8_to_unit) and labels
//             by src = floor(dst * in / out) in integers, then mirrored when `flip`.
//   colour    brightness, contrast, saturation, gains, hash noise, clamp to [0, 1] (photometric),
//             skipped when the draw is the identity (as the host skips it);
//   normalise (v - mean) / std (net::normalise_rgb).
// Host builds do not contract (-ffp-contract=off) and the kernels are compiled with --fmad=false
// (kernels/CMakeLists.txt); float division and the double arithmetic are IEEE on both. So host,
// emu and GPU give the host path's bits (tested: tests/kernels/augment_test.cpp,
// tests/tools/data/augment_op_test.cpp).
#pragma once

#include <cstdint>

#include "kernels/core/hd.h"
#include "kernels/core/splitmix.h"

namespace farsee {

// x_src = a x + b y + c, y_src = d x + e y + f on continuous coordinates (pixel i covers
// [i, i + 1)); tools::Affine's fields.
struct AugmentAffine {
  double a = 1, b = 0, c = 0, d = 0, e = 1, f = 0;
};

// One sample's geometry and colour, drawn on the host (tools/data/augment.h: draw_augment,
// augment_affine); tools/data/dataset.h augment_sample() fills it from a draw.
struct AugmentSample {
  int64_t image_offset = 0;  // byte offset of the RGB8 image [src_h][src_w][3] in the images
  int64_t label_offset = 0;  // byte offset of its label map [src_h][src_w] in the labels
  int32_t src_h = 0, src_w = 0;
  int32_t resize_only = 0;  // 1: plain resizes, then the mirror if `flip`; 0: the affine maps
  int32_t flip = 0;
  AugmentAffine image_map;  // output (input-size) pixel -> source
  AugmentAffine label_map;  // output (label-size) pixel -> source
  float brightness = 1, contrast = 1, saturation = 1;
  float gain[3] = {1, 1, 1};
  float noise = 0;
  uint64_t noise_seed = 0;
};

// The ImageNet normalisation: (v - mean) / std; also the padding colour (mean) before colour.
struct AugmentNormalise {
  float mean[3], std[3];
};

FARSEE_HD float augment_unit(uint8_t v) {
  return float(v) / 255.f;
}

// tools::warp_rgb8 at output pixel (x, y).
FARSEE_HD void augment_warp_pixel(const uint8_t* src, int h, int w, const AugmentAffine& m, int x,
                                  int y, const float fill[3], float rgb[3]) {
  const double xc = x + 0.5, yc = y + 0.5;
  const double sx = m.a * xc + m.b * yc + m.c, sy = m.d * xc + m.e * yc + m.f;
  if (!(sx >= 0 && sx < w && sy >= 0 && sy < h)) {
    for (int c = 0; c < 3; ++c) rgb[c] = fill[c];
    return;
  }
  const double px = sx - 0.5 > 0.0 ? sx - 0.5 : 0.0, py = sy - 0.5 > 0.0 ? sy - 0.5 : 0.0;
  const int x0 = int(px) < w - 1 ? int(px) : w - 1, y0 = int(py) < h - 1 ? int(py) : h - 1;
  const int x1 = x0 + 1 < w - 1 ? x0 + 1 : w - 1, y1 = y0 + 1 < h - 1 ? y0 + 1 : h - 1;
  const float fx = float(px - x0), fy = float(py - y0);
  const uint8_t* p00 = src + (int64_t(y0) * w + x0) * 3;
  const uint8_t* p01 = src + (int64_t(y0) * w + x1) * 3;
  const uint8_t* p10 = src + (int64_t(y1) * w + x0) * 3;
  const uint8_t* p11 = src + (int64_t(y1) * w + x1) * 3;
  for (int c = 0; c < 3; ++c) {
    const float v00 = augment_unit(p00[c]), v01 = augment_unit(p01[c]);
    const float v10 = augment_unit(p10[c]), v11 = augment_unit(p11[c]);
    const float top = v00 + (v01 - v00) * fx;
    const float bottom = v10 + (v11 - v10) * fx;
    rgb[c] = top + (bottom - top) * fy;
  }
}

// One axis of PyTorch's bilinear resize (align_corners=False), as reference::linear_taps.
struct AugmentTap {
  int i0, i1;
  float l0, l1;
};
FARSEE_HD AugmentTap augment_resize_tap(int d, int in, int out) {
  if (in == out) return AugmentTap{d, d, 1.0f, 0.0f};
  const float scale = float(in) / float(out);
  double src = double(scale) * (d + 0.5) - 0.5;
  if (src < 0.0) src = 0.0;
  int i0 = int(src);  // src >= 0: truncation is floor
  if (i0 > in - 1) i0 = in - 1;
  double l = src - i0;
  l = l < 0.0 ? 0.0 : (l > 1.0 ? 1.0 : l);
  const float l1 = float(l);
  return AugmentTap{i0, i0 < in - 1 ? i0 + 1 : i0, 1.0f - l1, l1};
}

// net::rgb8_to_unit (the reference resize) at output pixel (x, y).
FARSEE_HD void augment_resize_pixel(const uint8_t* src, int h, int w, int out_h, int out_w, int x,
                                    int y, float rgb[3]) {
  const AugmentTap ty = augment_resize_tap(y, h, out_h), tx = augment_resize_tap(x, w, out_w);
  const uint8_t* p00 = src + (int64_t(ty.i0) * w + tx.i0) * 3;
  const uint8_t* p01 = src + (int64_t(ty.i0) * w + tx.i1) * 3;
  const uint8_t* p10 = src + (int64_t(ty.i1) * w + tx.i0) * 3;
  const uint8_t* p11 = src + (int64_t(ty.i1) * w + tx.i1) * 3;
  for (int c = 0; c < 3; ++c) {
    const double top = double(tx.l0) * augment_unit(p00[c]) + double(tx.l1) * augment_unit(p01[c]);
    const double bottom =
        double(tx.l0) * augment_unit(p10[c]) + double(tx.l1) * augment_unit(p11[c]);
    rgb[c] = float(double(ty.l0) * top + double(ty.l1) * bottom);
  }
}

FARSEE_HD bool augment_colour_identity(const AugmentSample& s) {
  return s.brightness == 1 && s.contrast == 1 && s.saturation == 1 && s.gain[0] == 1 &&
         s.gain[1] == 1 && s.gain[2] == 1 && s.noise == 0;
}

// tools::photometric on the pixel with index `i` (y * out_w + x) of the output image.
FARSEE_HD void augment_colour_pixel(const AugmentSample& s, int64_t i, float rgb[3]) {
  if (augment_colour_identity(s)) return;
  float c[3];
  for (int k = 0; k < 3; ++k) c[k] = (rgb[k] * s.brightness - 0.5f) * s.contrast + 0.5f;
  const float luma = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
  const uint64_t hash = s.noise > 0 ? splitmix64(s.noise_seed ^ splitmix64(uint64_t(i))) : 0;
  for (int k = 0; k < 3; ++k) {
    float v = (luma + (c[k] - luma) * s.saturation) * s.gain[k];
    if (s.noise > 0) {
      const float u = float((hash >> (k * 20)) & 0xfffff) * (1.0f / 1048576.0f);
      v += s.noise * (2 * u - 1);
    }
    rgb[k] = v < 0.0f ? 0.0f : (1.0f < v ? 1.0f : v);
  }
}

// The normalised input pixel (x, y) of a sample: geometry, colour, normalisation.
FARSEE_HD void augment_input_pixel(const uint8_t* image, const AugmentSample& s,
                                   const AugmentNormalise& norm, int out_h, int out_w, int x, int y,
                                   float rgb[3]) {
  if (s.resize_only) {
    const int sx = s.flip ? out_w - 1 - x : x;  // the mirror after the resize
    augment_resize_pixel(image, s.src_h, s.src_w, out_h, out_w, sx, y, rgb);
  } else {
    augment_warp_pixel(image, s.src_h, s.src_w, s.image_map, x, y, norm.mean, rgb);
  }
  augment_colour_pixel(s, int64_t(y) * out_w + x, rgb);
  for (int c = 0; c < 3; ++c) rgb[c] = (rgb[c] - norm.mean[c]) / norm.std[c];
}

// The label at output pixel (x, y) of the label grid: tools::warp_labels, or the integer
// nearest resize (and mirror) of load_sample's resize-only path.
FARSEE_HD uint8_t augment_label_pixel(const uint8_t* labels, const AugmentSample& s, int label_h,
                                      int label_w, int x, int y) {
  const int h = s.src_h, w = s.src_w;
  if (s.resize_only) {
    const int lx = s.flip ? label_w - 1 - x : x;
    const int sy = int(int64_t(y) * h / label_h), sx = int(int64_t(lx) * w / label_w);
    return labels[int64_t(sy) * w + sx];
  }
  const AugmentAffine& m = s.label_map;
  const double xc = x + 0.5, yc = y + 0.5;
  const double sx = m.a * xc + m.b * yc + m.c, sy = m.d * xc + m.e * yc + m.f;
  if (!(sx >= 0 && sx < w && sy >= 0 && sy < h)) return 255;
  const int iy = int(sy) < h - 1 ? int(sy) : h - 1, ix = int(sx) < w - 1 ? int(sx) : w - 1;
  return labels[int64_t(iy) * w + ix];
}

}  // namespace farsee
