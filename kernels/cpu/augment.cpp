// cpu executor, augmentation (kernels/augment.h): the kernels' per-pixel function
// (kernels/core/augment_math.h) over every output pixel, fused (geometry, colour, normalisation,
// fp16 rounding in one visit), OpenMP over output rows of the batch; the label rows after. Each
// pixel is independent, so the result does not depend on the thread count.
#include "kernels/augment.h"

#include "kernels/core/half_convert.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void augment_fwd(FARSEE_AUGMENT_FWD_ARGS) {
  (void)ctx;
  check_augment_samples(batch.samples, input.n(), batch.image_bytes, batch.label_bytes);
  const int oh = input.h(), ow = input.w();
  const int64_t rows = int64_t(input.n()) * oh;
  const bool half = input.dtype == DType::F16;
  float* out32 = static_cast<float*>(input.data);
  uint16_t* out16 = static_cast<uint16_t*>(input.data);
#pragma omp parallel for schedule(static) if (worth_threads_elements(rows * ow * 16))
  for (int64_t row = 0; row < rows; ++row) {
    const int n = int(row / oh), y = int(row % oh);
    const AugmentSample& s = batch.samples[n];
    const uint8_t* image = batch.images + s.image_offset;
    for (int x = 0; x < ow; ++x) {
      float rgb[3];
      augment_input_pixel(image, s, batch.normalise, oh, ow, x, y, rgb);
      const int64_t o = (row * ow + x) * 3;
      for (int c = 0; c < 3; ++c) {
        if (half) {
          out16[o + c] = float_to_half_bits(rgb[c]);
        } else {
          out32[o + c] = rgb[c];
        }
      }
    }
  }
  const int64_t label_rows = int64_t(input.n()) * label_h;
#pragma omp parallel for schedule(static) if (worth_threads_elements(label_rows * label_w * 4))
  for (int64_t row = 0; row < label_rows; ++row) {
    const int n = int(row / label_h), y = int(row % label_h);
    const AugmentSample& s = batch.samples[n];
    uint8_t* out = out_labels + row * label_w;
    for (int x = 0; x < label_w; ++x) {
      out[x] = augment_label_pixel(batch.labels + s.label_offset, s, label_h, label_w, x, y);
    }
  }
}

}  // namespace farsee::cpu_impl
