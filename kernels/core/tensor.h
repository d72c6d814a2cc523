// NHWC tensor views.
//
// A TensorView does not own memory. `data` points at element (n=0, h=0, w=0, c=0) of the view; the
// channels of one pixel are contiguous and consecutive pixels are `pixel_stride` elements apart
// (pixel_stride >= c). A channel slice of a wider buffer is therefore just a view with an offset
// data pointer and the buffer's pixel stride: producers write into slices of a shared buffer and a
// concat never copies. Pixel index p = (n * h + y) * w + x.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/core/check.h"
#include "kernels/core/dtype.h"

namespace farsee {

struct Shape4 {
  int n = 0, h = 0, w = 0, c = 0;
  int64_t pixels() const { return int64_t(n) * h * w; }
  int64_t elements() const { return pixels() * c; }
  bool operator==(const Shape4& o) const { return n == o.n && h == o.h && w == o.w && c == o.c; }
  bool operator!=(const Shape4& o) const { return !(*this == o); }
};

std::string to_string(const Shape4& s);

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape4 shape;
  int64_t pixel_stride = 0;  // elements between consecutive pixels

  int n() const { return shape.n; }
  int h() const { return shape.h; }
  int w() const { return shape.w; }
  int c() const { return shape.c; }
  bool contiguous() const { return pixel_stride == shape.c; }
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  // Element offset of (n, y, x, ch) from data.
  int64_t offset(int n_, int y, int x, int ch) const {
    return ((int64_t(n_) * shape.h + y) * shape.w + x) * pixel_stride + ch;
  }
};

// A dense NHWC view over `data`.
inline TensorView make_view(void* data, DType dtype, Shape4 shape) {
  return TensorView{data, dtype, shape, shape.c};
}

// Channels [offset, offset + count) of `v` (the concat-for-free mechanism).
inline TensorView channel_slice(const TensorView& v, int offset, int count) {
  FARSEE_REQUIRE(offset >= 0 && count > 0 && offset + count <= v.shape.c,
                 "channel_slice [" << offset << ", " << offset + count
                                   << ") out of range for a view of " << v.shape.c << " channels");
  TensorView s = v;
  s.data = static_cast<char*>(v.data) + int64_t(offset) * int64_t(dtype_size(v.dtype));
  s.shape.c = count;
  return s;
}

// Argument check used by every op: names the tensor and both shapes on mismatch.
void require_shape(const TensorView& v, const char* name, Shape4 expected);
void require_dtype(const TensorView& v, const char* name, DType expected);

}  // namespace farsee
