// Training-data augmentation (forward only): decoded uint8 samples -> the normalised NHWC input
// batch and the uint8 label batch (kernels/augment.h), the host augmentation of
// tools/data/augment.cpp bit for bit.
//
// Algorithm: per output pixel, independently (kernels/core/augment_math.h): the source coordinate
//   of the pixel centre through the sample's affine map in double, a bilinear sample of the 8-bit
//   RGB source (PyTorch's align_corners=False taps, edge-clamped; outside the source the ImageNet
//   mean), or, for a resize-only sample, PyTorch's bilinear resize taps and the mirror; then the
//   colour jitter (brightness, contrast, saturation, gains, a splitmix64 hash noise of (seed,
//   pixel index)), the clamp to [0, 1] and the ImageNet normalisation. Labels: the source pixel
//   containing the mapped centre (255 outside), or the integer nearest resize.
// Tiling: none; one thread per output pixel, 256 threads a block, grid (pixel blocks, N). A thread
//   handles input pixel p and label pixel p of its sample (the label grid may be larger: both
//   ranges are covered by the grid's x extent). The 4 bilinear taps are gathered straight from
//   global memory: neighbouring threads read neighbouring source pixels (within two source rows
//   for scale >= 1/2), so the L1/L2 caches serve the reuse; no shared-memory staging.
// Layout: images / labels packed uint8 buffers, sample i at its byte offsets (sizes may differ
//   between samples); the sample parameters (AugmentSample) in device memory, read once per
//   thread (uniform across the block: broadcast loads); input NHWC [N][H][W][3] dense, fp32 or
//   fp16; labels [N][label_h][label_w].
// Precision: coordinates in double and the blends exactly as the host writes them (float for the
//   affine path, double for the resize-only path), compiled with --fmad=false so nothing is
//   contracted: the same bits as the host path; fp16 output rounded once (nearest even). About 8
//   double operations per output pixel: nothing on sm_80/sm_90 (FP64 at half the fp32 rate), a
//   few times the float cost on GPUs with 1/64-rate FP64.
// Fused: warp (or resize + mirror), photometric jitter and noise, normalisation, fp16 conversion,
//   and the label warp, in one launch; the host augmentation made four passes over float images.
#include <algorithm>
#include <cmath>

#include "kernels/augment.h"
#include "kernels/core/launch.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/vec.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    augment_kernel(AugmentBatch batch, T* __restrict__ input, int out_h, int out_w,
                   uint8_t* __restrict__ out_labels, int label_h, int label_w) {
  const int n = blockIdx.y;
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const AugmentSample s = batch.samples[n];
  const bool inside = augment_sample_inside(s, batch.image_bytes, batch.label_bytes);
  const int64_t input_pixels = int64_t(out_h) * out_w;
  if (p < input_pixels) {
    const int y = int(p / out_w), x = int(p - int64_t(y) * out_w);
    float rgb[3] = {NAN, NAN, NAN};
    if (inside) {
      augment_input_pixel(batch.images + s.image_offset, s, batch.normalise, out_h, out_w, x, y,
                          rgb);
    }
    T* out = input + (int64_t(n) * input_pixels + p) * 3;
    for (int c = 0; c < 3; ++c) st(&out[c], from_float<T>(rgb[c]));
  }
  const int64_t label_pixels = int64_t(label_h) * label_w;
  if (p < label_pixels) {
    const int y = int(p / label_w), x = int(p - int64_t(y) * label_w);
    const uint8_t v =
        inside ? augment_label_pixel(batch.labels + s.label_offset, s, label_h, label_w, x, y)
               : uint8_t(255);
    st(&out_labels[int64_t(n) * label_pixels + p], v);
  }
}

template <typename T>
void launch_augment(const Context& ctx, const AugmentBatch& batch, const TensorView& input,
                    uint8_t* out_labels, int label_h, int label_w) {
  const int64_t pixels = std::max(int64_t(input.h()) * input.w(), int64_t(label_h) * label_w);
  const int64_t blocks = (pixels + kThreads - 1) / kThreads;
  FARSEE_REQUIRE(
      blocks <= 0x7fffffff && input.n() <= 65535,
      "augment_fwd: " << pixels << " pixels x " << input.n() << " samples exceed the grid limits");
  const dim3 grid(unsigned(blocks), unsigned(input.n()));
  FARSEE_LAUNCH(augment_kernel<T>, grid, dim3(kThreads), 0, ctx.stream, batch,
                static_cast<T*>(input.data), input.h(), input.w(), out_labels, label_h, label_w);
}

}  // namespace

void augment_fwd(FARSEE_AUGMENT_FWD_ARGS) {
  if (input.dtype == DType::F32) {
    launch_augment<float>(ctx, batch, input, out_labels, label_h, label_w);
  } else {
    launch_augment<__half>(ctx, batch, input, out_labels, label_h, label_w);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
