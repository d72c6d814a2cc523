// Index helpers shared by the reference ops: sliding-window coordinates (conv, depthwise, pool),
// pixel index <-> (n, y, x), whole-row loads, and the OpenMP pixel loop with its threshold.
//
// The reference executor is the oracle the kernels are tested against, so it deliberately does
// not reuse the kernels' index math (kernels/core/nhwc_index.h, bilinear.h): a mistake shared by
// both would be invisible in kernel-vs-reference tests. The reference is checked against PyTorch
// fixtures instead (tests/kernels/reference/).
#pragma once

#include <cstdint>

#include "kernels/core/half_convert.h"
#include "kernels/core/tensor.h"

namespace farsee::reference {

// Input coordinate read by tap `tap` of the window of output coordinate `out` (PyTorch conv and
// pool geometry). A coordinate outside [0, size) is padding.
inline int window_coord(int out, int tap, int stride, int pad, int dilation) {
  return out * stride - pad + tap * dilation;
}
inline bool in_range(int coord, int size) {
  return coord >= 0 && coord < size;
}

struct PixelCoord {
  int n, y, x;
};
// Pixel index p = (n * h + y) * w + x of an NHWC shape.
inline PixelCoord pixel_coord(int64_t p, const Shape4& s) {
  const int64_t row = p / s.w;
  return PixelCoord{int(row / s.h), int(row % s.h), int(p % s.w)};
}
// Element offset of channel 0 of pixel p in view v.
inline int64_t pixel_offset(const TensorView& v, int64_t p) {
  return p * v.pixel_stride;
}

// Reads `count` consecutive elements starting at element `offset` of v as T (float or double):
// one dtype branch per row instead of one per element.
template <typename T>
void load_row(const TensorView& v, int64_t offset, int count, T* out) {
  if (v.dtype == DType::F32) {
    const float* src = static_cast<const float*>(v.data) + offset;
    for (int i = 0; i < count; ++i) out[i] = T(src[i]);
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(v.data) + offset;
    for (int i = 0; i < count; ++i) out[i] = T(half_bits_to_float(src[i]));
  }
}

// Work (multiply-adds or element visits) below which a reference op runs on one thread: about
// 5-10 ms of single-thread work. On the shared 2-core dev machine under load, a parallel region
// waits for descheduled or spinning workers: the ResNet-18 convs of a 64x128 image (no conv
// above 2^25 MACs) took 0.3-0.5 s on two threads with a 2^23 threshold and 0.1 s on one.
constexpr int64_t kMinParallelWork = int64_t(1) << 26;
inline bool worth_parallel(int64_t work) {
  return work >= kMinParallelWork;
}

// Runs body(p) for every pixel p in [0, pixels), on the OpenMP threads when the total work,
// pixels * work_per_pixel, is worth it (the default of 1 suits a light per-pixel epilogue: one
// thread unless the image is huge). Every pixel costs the same, so a static schedule. body must
// not throw (validate before the loop).
template <typename Body>
void parallel_pixels(int64_t pixels, Body&& body, int64_t work_per_pixel = 1) {
#pragma omp parallel for schedule(static) if (worth_parallel(pixels * work_per_pixel))
  for (int64_t p = 0; p < pixels; ++p) body(p);
}

}  // namespace farsee::reference
