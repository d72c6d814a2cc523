// The network's input preprocessing, one definition for every program (farsee-infer, farsee-eval,
// the training loader): an 8-bit RGB image as floats in [0, 1] (v / 255), resized to the input
// size with bilinear interpolation (half-pixel centres, no antialiasing: exactly PyTorch's
// F.interpolate(mode='bilinear', align_corners=False)), then normalised with the ImageNet mean and
// std (normalise_rgb, net/farsee_net.h).
#pragma once

#include <cstdint>

namespace farsee::net {

// Interleaved 8-bit RGB [h][w][3] -> floats in [0, 1] at out_h x out_w, [out_h][out_w][3]: the
// values converted first, then resized; a plain conversion when the sizes match. `out` must hold
// out_h * out_w * 3 floats.
void rgb8_to_unit(const uint8_t* rgb8, int h, int w, float* out, int out_h, int out_w);

// The network input of an 8-bit RGB image: rgb8_to_unit, then normalise_rgb.
void preprocess_rgb8(const uint8_t* rgb8, int h, int w, float* input, int out_h, int out_w);

}  // namespace farsee::net
