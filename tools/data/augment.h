// Training-data augmentation as in the FarSee-Net paper (section IV-B: random flipping, rotation,
// colour channel noise and resizing), on host images, deterministic from a per-sample seed.
//
// Geometry. The image and its label map (any file size) are viewed at the "base" size, the label
// size the loss is computed at. A sample is: scale by s in [scale_min, scale_max], rotate by an
// angle in [-max_rotation, max_rotation] about the scaled image's centre, mirror horizontally with
// probability 1/2, then take a crop window (default: the label size) at a random integer offset;
// where the scaled image is smaller than the window the offset ranges over the padding too. The
// window is then sampled onto two grids: the label grid (label size, nearest neighbour) and the
// input grid (input size, bilinear), so the network sees a lower resolution than it is
// supervised at (the paper feeds 512x1024 and supervises at 1024x2048). The whole chain is one
// affine map from output pixel centres to source coordinates, so each output is sampled once.
// Outside the source: label 255 (ignored), image the ImageNet mean (0 after normalisation).
//
// Photometric (input only, intensities in [0, 1]): brightness and contrast factors, saturation
// (blend with the pixel's luma), per-channel gains, then per-pixel uniform noise from a hash of
// (seed, pixel), clamped to [0, 1].
//
// Determinism: draw_augment() is a pure function of (params, seed, sizes); sample_seed() derives
// the seed from (run seed, epoch, index), so a sample does not depend on which worker thread
// makes it or when.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/augment_math.h"

namespace farsee::tools {

struct AugmentParams {
  bool flip = true;
  float scale_min = 1, scale_max = 1;
  float max_rotation_deg = 0;
  int crop_h = 0, crop_w = 0;  // window in base (label) pixels; 0: the base size
  float brightness = 0, contrast = 0, saturation = 0;  // factors 1 +- amplitude
  float channel_gain = 0;                              // per-channel factors 1 +- amplitude
  float noise = 0;                                     // per-pixel +- amplitude

  // The paper's recipe: scale 0.5..2, rotation +-10 degrees, flips, colour jitter 0.25, channel
  // gains 0.1, noise 0.03; the crop window is the base size.
  static AugmentParams paper();
  bool geometric_identity() const;  // no scale, rotation or crop (flips aside)
};

struct AugmentDraw {
  bool flip = false;
  float scale = 1;
  float angle = 0;             // radians, counter-clockwise on screen
  int crop_y = 0, crop_x = 0;  // window offset in the scaled, rotated base image
  int window_h = 0, window_w = 0;
  float brightness = 1, contrast = 1, saturation = 1;
  float gain[3] = {1, 1, 1};
  float noise = 0;
  uint64_t noise_seed = 0;
  bool geometric_identity() const;  // scale 1, angle 0, offset 0 (flip aside)
};

uint64_t sample_seed(uint64_t run_seed, int64_t epoch, int64_t index);
AugmentDraw draw_augment(const AugmentParams& params, uint64_t seed, int base_h, int base_w);

// x_src = a x + b y + c, y_src = d x + e y + f on continuous coordinates (pixel i covers [i, i+1)).
using Affine = AugmentAffine;  // kernels/core/augment_math.h: the augmentation op reads it as is
// The map from an out_h x out_w grid over the draw's window to a src_h x src_w image viewed at
// base_h x base_w.
Affine augment_affine(const AugmentDraw& draw, int base_h, int base_w, int src_h, int src_w,
                      int out_h, int out_w);

// Bilinear (PyTorch's align_corners=False sampling, edge-clamped) of an RGB float image; outside
// the source: `fill`.
void warp_rgb(const float* src, int src_h, int src_w, float* dst, int dst_h, int dst_w,
              const Affine& m, const float fill[3]);
// The same from 8-bit RGB (values / 255).
void warp_rgb8(const uint8_t* src, int src_h, int src_w, float* dst, int dst_h, int dst_w,
               const Affine& m, const float fill[3]);
// Nearest neighbour (the source pixel containing the mapped centre); outside: 255.
void warp_labels(const uint8_t* src, int src_h, int src_w, uint8_t* dst, int dst_h, int dst_w,
                 const Affine& m);

// Brightness, contrast, saturation, gains and noise of the draw on rgb in [0, 1], in place.
void photometric(const AugmentDraw& draw, float* rgb, int64_t pixels);

// The single steps on an image with its label map of the same size (tests, tools).
struct HostSample {
  int h = 0, w = 0;
  std::vector<float> rgb;       // [h][w][3] in [0, 1]
  std::vector<uint8_t> labels;  // [h][w]
};
HostSample flip_sample(const HostSample& s);
HostSample scale_sample(const HostSample& s, float scale);  // size round(h s) x round(w s)
// Window [y, y + h) x [x, x + w); outside the sample: label 255, image the ImageNet mean.
HostSample crop_sample(const HostSample& s, int y, int x, int h, int w);
HostSample rotate_sample(const HostSample& s, float degrees);  // about the centre, same size

// The ImageNet mean RGB in [0, 1] (net::kImageMean): the padding colour, 0 after normalisation.
extern const float kImageNetMean[3];

}  // namespace farsee::tools
