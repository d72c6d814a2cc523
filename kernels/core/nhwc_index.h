// NHWC index math shared by the kernels: a device-side view of a (possibly channel-sliced) NHWC
// tensor, pixel index <-> (n, y, x), window origins of strided/dilated sliding windows, the choice
// of a vector width on the host, and the (channel group x pixel) thread mapping used by the
// per-pixel kernels (depthwise_atrous, pool).
//
// Layout reminder (kernels/core/tensor.h): element (n, y, x, c) of a view lives at
//   data + ((n * H + y) * W + x) * pixel_stride + c
// where pixel_stride >= C (a channel slice of a wider concat buffer has pixel_stride > C and an
// offset data pointer).
#pragma once

#include <vector_types.h>  // dim3 (CUDA toolkit, or kernels/emu/no_toolkit)

#include <cstdint>

#include "kernels/core/check.h"
#include "kernels/core/hd.h"
#include "kernels/core/tensor.h"
#include "kernels/core/vec.h"

namespace farsee {

// Trivially copyable NHWC view for kernel arguments (TensorView's methods are host-only).
template <typename T>
struct Nhwc {
  T* data;
  int n, h, w, c;
  int64_t pixel_stride;  // elements between consecutive pixels

  FARSEE_HD int64_t pixels() const { return int64_t(n) * h * w; }
  // Channel 0 of pixel p = (n * H + y) * W + x.
  FARSEE_HD T* pixel(int64_t p) const { return data + p * pixel_stride; }
  FARSEE_HD T* pixel(int n_, int y, int x) const {
    return data + ((int64_t(n_) * h + y) * w + x) * pixel_stride;
  }
};

// Host: a kernel argument from a TensorView whose dtype matches T.
template <typename T>
Nhwc<T> nhwc(const TensorView& v) {
  return Nhwc<T>{static_cast<T*>(v.data), v.shape.n, v.shape.h, v.shape.w, v.shape.c,
                 v.pixel_stride};
}

// Pixel indices are 32-bit inside kernels (cheap division); element offsets are 64-bit.
// Launchers call require_int_pixels() so the pixel count of every view fits.
struct PixelCoord {
  int n, y, x;
};
FARSEE_HD PixelCoord pixel_coord(int p, int h, int w) {
  const int row = p / w;
  return PixelCoord{row / h, row % h, p - row * w};
}
inline void require_int_pixels(int64_t pixels, const char* what) {
  FARSEE_REQUIRE(pixels < (int64_t(1) << 31),
                 what << ": " << pixels << " pixels; kernels index pixels with 32-bit integers");
}

// First input coordinate of the window of output coordinate `out` (tap r reads
// first + r * dilation; negative or >= size means padding).
FARSEE_HD int window_first(int out, int stride, int pad) {
  return out * stride - pad;
}

// The inverse (dilation 1, `window` taps): the output coordinates whose window holds input
// coordinate `in` are first_window_containing .. last_window_containing (before clipping the last
// to the output size; in >= 0, pad >= 0).
FARSEE_HD int first_window_containing(int in, int window, int stride, int pad) {
  const int num = in + pad - window + 1;
  return num <= 0 ? 0 : (num + stride - 1) / stride;
}
FARSEE_HD int last_window_containing(int in, int stride, int pad) {
  return (in + pad) / stride;
}

// Host: true when every view can be accessed in Packs of `width` elements: channel count, pixel
// stride and base address all multiples of the pack.
inline bool packs_fit(const TensorView& v, int width) {
  const uintptr_t bytes = uintptr_t(width) * dtype_size(v.dtype);
  return v.shape.c % width == 0 && v.pixel_stride % width == 0 &&
         reinterpret_cast<uintptr_t>(v.data) % bytes == 0;
}

// Elements per 16-byte vector for a storage dtype (4 floats, 8 halves).
inline int vector16_width(DType t) {
  return int(16 / dtype_size(t));
}

// The storage type T and pack width V a kernel is instantiated for.
template <typename T, int V>
struct StorageVector {
  using type = T;
  static constexpr int width = V;
};

// Host: calls f(StorageVector<T, V>{}) for the dtype, with V = 16 bytes of T when `vector16`,
// else V = 1. The one place where the per-pixel kernels' (dtype, width) variants are chosen:
// exactly four instantiations per kernel.
template <typename F>
void with_storage_vector(DType dtype, bool vector16, F&& f) {
  if (dtype == DType::F32) {
    if (vector16) {
      f(StorageVector<float, 4>{});
    } else {
      f(StorageVector<float, 1>{});
    }
  } else {
    if (vector16) {
      f(StorageVector<__half, 8>{});
    } else {
      f(StorageVector<__half, 1>{});
    }
  }
}

// Thread mapping of the per-pixel NHWC kernels. Block = (channel groups) x (pixels): threadIdx.x
// walks groups of V consecutive channels, so the lanes of a warp touch consecutive channels (and,
// when one pixel has fewer groups than a warp, consecutive pixels): NHWC accesses coalesce for
// any C. blockIdx.x splits the channel groups when a pixel has more than 256 of them; the pixels
// are walked by a grid-stride loop over blockIdx.y, so a thread keeps its channel group (and
// whatever per-channel data it holds in registers, e.g. depthwise weights) for all its pixels.
// A thread takes `pixels_per_thread` pixels when the grid still has enough blocks to fill a large
// GPU (kFillBlocks, about two waves of 256-thread blocks on an H100); smaller problems get one
// pixel per thread, as many blocks as that takes.
struct PixelChannelLaunch {
  dim3 grid;
  dim3 block;
};
inline PixelChannelLaunch pixel_channel_launch(int64_t pixels, int channel_groups,
                                               int pixels_per_thread) {
  constexpr int kThreads = 256;
  constexpr int64_t kFillBlocks = 256;
  constexpr int64_t kMaxGridY = 65535;  // CUDA limit; the grid-stride loop covers the rest
  const int group_blocks = (channel_groups + kThreads - 1) / kThreads;
  const int block_x = (channel_groups + group_blocks - 1) / group_blocks;
  const int block_y = block_x >= kThreads ? 1 : kThreads / block_x;
  auto rows_for = [&](int64_t per_thread) {
    const int64_t per_block = int64_t(block_y) * per_thread;
    return (pixels + per_block - 1) / per_block;
  };
  int64_t grid_y = rows_for(pixels_per_thread);
  if (grid_y * group_blocks < kFillBlocks) grid_y = rows_for(1);
  if (grid_y > kMaxGridY) grid_y = kMaxGridY;
  if (grid_y < 1) grid_y = 1;
  return PixelChannelLaunch{dim3(unsigned(group_blocks), unsigned(grid_y)),
                            dim3(unsigned(block_x), unsigned(block_y))};
}

}  // namespace farsee
