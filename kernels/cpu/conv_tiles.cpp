#include "kernels/cpu/conv_tiles.h"

#include <algorithm>
#include <cstring>

namespace farsee::cpu_impl {

namespace {

// n floats from src to dst: the short runs of few-channel inputs (the 3-channel stem: 21 floats per
// kernel row) in fixed-size pieces the compiler inlines as vector moves (a libc memcpy call per run
// cost more than the copy, and GCC turns a plain copy loop back into one), memcpy otherwise.
inline void copy_floats(float* dst, const float* src, int64_t n) {
  if (n >= 64) {
    std::memcpy(dst, src, sizeof(float) * size_t(n));
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) std::memcpy(dst + i, src + i, 8 * sizeof(float));
  if (i + 4 <= n) {
    std::memcpy(dst + i, src + i, 4 * sizeof(float));
    i += 4;
  }
  if (i + 2 <= n) {
    std::memcpy(dst + i, src + i, 2 * sizeof(float));
    i += 2;
  }
  if (i < n) dst[i] = src[i];
}

inline void zero_floats(float* dst, int64_t n) {
  if (n >= 64) {
    std::memset(dst, 0, sizeof(float) * size_t(n));
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) std::memset(dst + i, 0, 8 * sizeof(float));
  for (; i < n; ++i) dst[i] = 0.0f;
}

}  // namespace

void gather_patches(const ConvShape& conv, const TensorView& x, int oh, int ow, int64_t p0,
                    int rows, int tap0, int tap1, float* dst, int64_t ld) {
  const int C = x.c(), S = conv.kernel_w;
  const float* xs = x.ptr<const float>();
  // Consecutive taps s of one kernel row read consecutive input pixels when the kernel is not
  // dilated along x and x is dense: one copy of the whole in-range run.
  const bool runs = conv.dilation_w == 1 && x.pixel_stride == C;
  for (int i = 0; i < rows; ++i) {
    const OutPixel o = out_pixel(p0 + i, oh, ow);
    float* row = dst + int64_t(i) * ld;
    int tap = tap0;
    while (tap < tap1) {
      const int r = tap / S, s = tap % S;
      const int iy = window_in(o.y, r, conv.stride_h, conv.pad_h, conv.dilation_h);
      const int s_end = std::min(S, s + (tap1 - tap));  // taps of this kernel row in range
      float* d = row + int64_t(tap - tap0) * C;
      if (iy < 0 || iy >= x.h()) {
        zero_floats(d, int64_t(s_end - s) * C);
      } else if (runs) {
        const int ix0 = window_in(o.x, s, conv.stride_w, conv.pad_w, 1);
        const int count = s_end - s;
        const int lo = std::min(count, std::max(0, -ix0));          // taps left of the image
        const int hi = std::max(lo, std::min(count, x.w() - ix0));  // first tap right of it
        zero_floats(d, int64_t(lo) * C);
        if (hi > lo)
          copy_floats(d + int64_t(lo) * C, xs + x.offset(o.n, iy, ix0 + lo, 0),
                      int64_t(hi - lo) * C);
        zero_floats(d + int64_t(hi) * C, int64_t(count - hi) * C);
      } else {
        for (int ss = s; ss < s_end; ++ss) {
          const int ix = window_in(o.x, ss, conv.stride_w, conv.pad_w, conv.dilation_w);
          float* dd = d + int64_t(ss - s) * C;
          if (ix >= 0 && ix < x.w()) {
            copy_floats(dd, xs + x.offset(o.n, iy, ix, 0), C);
          } else {
            zero_floats(dd, C);
          }
        }
      }
      tap += s_end - s;
    }
  }
}

void load_output_grad_row(const TensorView& dy, int t, int n, int oy, int ox, int k0, int count,
                          float* dst) {
  const float* g = dy.ptr<const float>();
  if (t == 1) {
    std::memcpy(dst, g + dy.offset(n, oy, ox, k0), sizeof(float) * size_t(count));
    return;
  }
  const int tt = t * t, c0 = k0 / tt, channels = count / tt;
  for (int i = 0; i < t; ++i) {
    for (int j = 0; j < t; ++j) {
      const float* src = g + dy.offset(n, oy * t + i, ox * t + j, c0);
      float* d = dst + i * t + j;
      for (int c = 0; c < channels; ++c) d[int64_t(c) * tt] = src[c];
    }
  }
}

namespace {

// The epilogue on one pixel's K accumulators of channels [k0, k0 + K), in place, one branch-free
// pass per term (each loop vectorises; the row stays in L1).
inline void epilogue_in_place(const ConvEpilogue& e, int k0, float* acc, const float* res, int K) {
  if (e.scale != nullptr) {
    const float* sc = e.scale + k0;
#pragma omp simd
    for (int k = 0; k < K; ++k) acc[k] *= sc[k];
  }
  if (e.bias != nullptr) {
    const float* bi = e.bias + k0;
#pragma omp simd
    for (int k = 0; k < K; ++k) acc[k] += bi[k];
  }
  if (res != nullptr) {
#pragma omp simd
    for (int k = 0; k < K; ++k) acc[k] += res[k];
  }
  if (e.relu) {
    // std::max(v, 0.0f) as an unconditional select: the reference-able form (v < 0 ? 0 : v, a NaN
    // or -0 passes) that vectorises; std::max's reference return compiled to a branch per element
    // (mispredicted on half of the pre-activations: ~15% of a 256x512 forward).
#pragma omp simd
    for (int k = 0; k < K; ++k) {
      const float v = acc[k];
      acc[k] = v < 0.0f ? 0.0f : v;
    }
  }
}

}  // namespace

void store_output_row(const ConvEpilogue& e, const TensorView& y, int n, int oy, int ox, float* acc,
                      int k0, int count) {
  const float* res = e.residual.data != nullptr
                         ? e.residual.ptr<const float>() + e.residual.offset(n, oy, ox, k0)
                         : nullptr;
  epilogue_in_place(e, k0, acc, res, count);
  float* ys = y.ptr<float>();
  const int t = e.shuffle_factor;
  if (t == 1) {
    std::memcpy(ys + y.offset(n, oy, ox, k0), acc, sizeof(float) * size_t(count));
    return;
  }
  // Conv channel k = c*t*t + i*t + j goes to channel c of output pixel (oy*t + i, ox*t + j).
  const int tt = t * t, c0 = k0 / tt, channels = count / tt;
  for (int i = 0; i < t; ++i) {
    for (int j = 0; j < t; ++j) {
      float* d = ys + y.offset(n, oy * t + i, ox * t + j, c0);
      const float* src = acc + i * t + j;
      for (int c = 0; c < channels; ++c) d[c] = src[int64_t(c) * tt];
    }
  }
}

bool has_epilogue(const ConvEpilogue& e) {
  return e.scale != nullptr || e.bias != nullptr || e.residual.data != nullptr || e.relu;
}

void epilogue_stored_row(const ConvEpilogue& e, int n, int oy, int ox, float* row, int k0,
                         int count) {
  const float* res = e.residual.data != nullptr
                         ? e.residual.ptr<const float>() + e.residual.offset(n, oy, ox, k0)
                         : nullptr;
  epilogue_in_place(e, k0, row, res, count);
}

}  // namespace farsee::cpu_impl
