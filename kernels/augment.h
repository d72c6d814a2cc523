// Training-data augmentation on the executor (DESIGN.md section 10): a batch of decoded 8-bit
// samples -> the network's normalised input batch and the label batch, in one pass. The draws
// (scale, rotation, crop, flip, colour factors, noise seed) stay on the host
// (tools/data/augment.h); each sample's draw arrives as an AugmentSample
// (kernels/core/augment_math.h): two affine maps (input grid, label grid) or the resize-only flag,
// and the colour factors. The result is the host augmentation's (tools/data/dataset.cpp
// load_sample) bit for bit: labels and the fp32 input (tests/tools/data/augment_op_test.cpp).
//
//   images   uint8 RGB, sample i's [src_h][src_w][3] at byte samples[i].image_offset; the samples
//            may have different sizes (a packed buffer; the loader's raw batch)
//   labels   uint8 trainIds (255: ignored), sample i's [src_h][src_w] at samples[i].label_offset
//   samples  input.n() AugmentSamples in executor memory
//   input    [N][H][W][3], fp32 or fp16 (rounded to nearest even, as the trainer's upload), not a
//            channel slice
//   out_labels [N][label_h][label_w]
// Every sample's image and label extents must lie inside image_bytes / label_bytes:
// check_augment_samples() checks a host copy (reference and cpu call it and throw; the kernels,
// which cannot throw, refuse to read outside: such a sample's input is NaN and its labels 255).
// The input size, the label size and the samples' sizes are independent (the paper trains at
// 512x1024 input, 1024x2048 labels, from 1024x2048 images); a pack of pre-resized samples is
// simply samples of one size.
#pragma once

#include <cstdint>

#include "kernels/core/augment_math.h"
#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

struct AugmentBatch {
  const uint8_t* images = nullptr;
  int64_t image_bytes = 0;
  const uint8_t* labels = nullptr;
  int64_t label_bytes = 0;
  const AugmentSample* samples = nullptr;  // executor memory
  AugmentNormalise normalise{};
};

#define FARSEE_AUGMENT_FWD_ARGS                                                                \
  const Context &ctx, const AugmentBatch &batch, const TensorView &input, uint8_t *out_labels, \
      int label_h, int label_w
FARSEE_DECLARE_OP(augment_fwd, FARSEE_AUGMENT_FWD_ARGS);

// Throws naming the sample when its sizes are not positive or its image or label map reaches
// outside image_bytes / label_bytes.
void check_augment_samples(const AugmentSample* host_samples, int n, int64_t image_bytes,
                           int64_t label_bytes);

// A sample's extents lie inside the buffers (what the kernels test before reading).
FARSEE_HD bool augment_sample_inside(const AugmentSample& s, int64_t image_bytes,
                                     int64_t label_bytes) {
  const int64_t pixels = int64_t(s.src_h) * s.src_w;
  return s.src_h > 0 && s.src_w > 0 && s.image_offset >= 0 && s.label_offset >= 0 &&
         s.image_offset + pixels * 3 <= image_bytes && s.label_offset + pixels <= label_bytes;
}

inline void augment_fwd(FARSEE_AUGMENT_FWD_ARGS) {
  FARSEE_REQUIRE(input.dtype == DType::F32 || input.dtype == DType::F16,
                 "augment_fwd: input must be fp32 or fp16, not " << dtype_name(input.dtype));
  FARSEE_REQUIRE(input.c() == 3 && input.pixel_stride == 3,
                 "augment_fwd: input must be a dense [N][H][W][3] tensor, not "
                     << to_string(input.shape) << " with pixel stride " << input.pixel_stride);
  FARSEE_REQUIRE(input.n() >= 1 && input.h() >= 1 && input.w() >= 1 && label_h >= 1 && label_w >= 1,
                 "augment_fwd: empty batch or size (input " << to_string(input.shape) << ", labels "
                                                            << label_h << "x" << label_w << ")");
  FARSEE_REQUIRE(batch.images && batch.labels && batch.samples && input.data && out_labels,
                 "augment_fwd: null pointer (images, labels, samples, input or out_labels)");
  FARSEE_DISPATCH(ctx, augment_fwd, ctx, batch, input, out_labels, label_h, label_w);
}

}  // namespace farsee
