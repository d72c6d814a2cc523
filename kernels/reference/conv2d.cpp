#include "kernels/reference/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/gemm.h"
#include "kernels/reference/index.h"

namespace farsee::reference {
namespace {

// Per-group GEMM sizes of a validated convolution.
struct ConvDims {
  ConvShape conv;
  Shape4 x, y;
  int groups, c_per_group, k_per_group;
  int patch_per_group;  // R * S * Cg: one group's reduction length
  int patch_row;        // groups * patch_per_group = R * S * C
};

ConvDims validate(const ConvShape& conv, const TensorView& x, const TensorView& w,
                  const TensorView& y) {
  FARSEE_REQUIRE(conv.kernel_h >= 1 && conv.kernel_w >= 1 && conv.stride_h >= 1 &&
                     conv.stride_w >= 1 && conv.pad_h >= 0 && conv.pad_w >= 0 &&
                     conv.dilation_h >= 1 && conv.dilation_w >= 1 && conv.groups >= 1,
                 "conv2d_fwd: invalid geometry: kernel "
                     << conv.kernel_h << "x" << conv.kernel_w << ", stride " << conv.stride_h << "x"
                     << conv.stride_w << ", pad " << conv.pad_h << "x" << conv.pad_w
                     << ", dilation " << conv.dilation_h << "x" << conv.dilation_w << ", groups "
                     << conv.groups);
  require_shape(x, "conv2d_fwd: x", x.shape);  // data and pixel stride
  FARSEE_REQUIRE(x.c() % conv.groups == 0,
                 "conv2d_fwd: x has C=" << x.c() << ", not divisible by groups=" << conv.groups);
  const int K = w.n();
  FARSEE_REQUIRE(
      K >= 1 && K % conv.groups == 0,
      "conv2d_fwd: w has K=" << K << ", not a positive multiple of groups=" << conv.groups);
  require_shape(w, "conv2d_fwd: w (KRSC)",
                Shape4{K, conv.kernel_h, conv.kernel_w, x.c() / conv.groups});
  const Shape4 out = conv2d_output_shape(conv, x.shape, K);
  FARSEE_REQUIRE(out.h >= 1 && out.w >= 1,
                 "conv2d_fwd: x " << to_string(x.shape) << " is smaller than the dilated kernel "
                                  << "(output " << out.h << "x" << out.w << ")");
  require_shape(y, "conv2d_fwd: y", out);
  ConvDims d;
  d.conv = conv;
  d.x = x.shape;
  d.y = out;
  d.groups = conv.groups;
  d.c_per_group = x.c() / conv.groups;
  d.k_per_group = K / conv.groups;
  d.patch_per_group = conv.kernel_h * conv.kernel_w * d.c_per_group;
  d.patch_row = d.groups * d.patch_per_group;
  return d;
}

// The receptive field of output pixel p as one row, laid out [g][r][s][c] (zeros for padding), so
// group g's reduction is the contiguous range [g * patch_per_group, (g + 1) * patch_per_group)
// and matches the KRSC weight rows of that group. The only place conv index math lives.
void gather_patch(const ConvDims& d, const TensorView& x, int64_t p, double* patch) {
  const ConvShape& c = d.conv;
  const PixelCoord o = pixel_coord(p, d.y);
  for (int g = 0; g < d.groups; ++g) {
    for (int r = 0; r < c.kernel_h; ++r) {
      const int iy = window_coord(o.y, r, c.stride_h, c.pad_h, c.dilation_h);
      for (int s = 0; s < c.kernel_w; ++s) {
        const int ix = window_coord(o.x, s, c.stride_w, c.pad_w, c.dilation_w);
        double* dst =
            patch + int64_t(g) * d.patch_per_group + (int64_t(r) * c.kernel_w + s) * d.c_per_group;
        if (in_range(iy, d.x.h) && in_range(ix, d.x.w)) {
          load_row(x, x.offset(o.n, iy, ix, g * d.c_per_group), d.c_per_group, dst);
        } else {
          std::fill(dst, dst + d.c_per_group, 0.0);
        }
      }
    }
  }
}

// Weights as dense double rows [K][R*S*Cg].
std::vector<double> weights_as_double(const ConvDims& d, const TensorView& w) {
  std::vector<double> wd(size_t(w.n()) * d.patch_per_group);
  for (int k = 0; k < w.n(); ++k) {
    for (int r = 0; r < w.h(); ++r) {
      for (int s = 0; s < w.w(); ++s) {
        load_row(w, w.offset(k, r, s, 0), w.c(),
                 wd.data() + int64_t(k) * d.patch_per_group + (int64_t(r) * w.w() + s) * w.c());
      }
    }
  }
  return wd;
}

// y at pixel p from its K double accumulators.
void store_pixel(const TensorView& y, int64_t p, const double* acc, const float* bias) {
  const int64_t base = pixel_offset(y, p);
  for (int k = 0; k < y.c(); ++k) {
    const double v = acc[k] + (bias ? double(bias[k]) : 0.0);
    store(y, base + k, float(v));
  }
}

void conv_direct(const ConvDims& d, const TensorView& x, const std::vector<double>& wd,
                 const float* bias, const TensorView& y) {
  const int64_t pixels = d.y.pixels();
#pragma omp parallel if (worth_parallel(pixels * d.y.c * d.patch_per_group))
  {
    std::vector<double> patch(size_t(d.patch_row));
    std::vector<double> acc(size_t(d.y.c));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < pixels; ++p) {
      gather_patch(d, x, p, patch.data());
      for (int k = 0; k < d.y.c; ++k) {
        const int g = k / d.k_per_group;
        const double* a = patch.data() + int64_t(g) * d.patch_per_group;
        const double* b = wd.data() + int64_t(k) * d.patch_per_group;
        double sum = 0.0;
        for (int i = 0; i < d.patch_per_group; ++i) sum += a[i] * b[i];
        acc[k] = sum;
      }
      store_pixel(y, p, acc.data(), bias);
    }
  }
}

void conv_gemm(const ConvDims& d, const TensorView& x, const std::vector<double>& wd,
               const float* bias, const TensorView& y) {
  const int64_t pixels = d.y.pixels();
  const int K = d.y.c;
  // Each OpenMP thread takes whole chunks of output pixels: im2col, one GEMM per group, store.
  // A chunk's im2col buffer stays under ~8 MB (1 Mi doubles) for any image size; when the work
  // is worth a second thread at all, there are ~4 chunks per thread, handed out dynamically, so
  // a thread descheduled on a busy machine does not hold the others up.
  const bool parallel = worth_parallel(pixels * K * d.patch_per_group);
  const int threads = parallel ? omp_get_max_threads() : 1;
  const int64_t max_rows = std::max<int64_t>(16, (int64_t(1) << 20) / d.patch_row);
  const int64_t chunk = std::min<int64_t>(max_rows, (pixels + 4 * threads - 1) / (4 * threads));
  const int64_t chunks = (pixels + chunk - 1) / chunk;
#pragma omp parallel if (parallel)
  {
    std::vector<double> patches(size_t(chunk) * d.patch_row);
    std::vector<double> out(size_t(chunk) * K);
#pragma omp for schedule(dynamic)
    for (int64_t ci = 0; ci < chunks; ++ci) {
      const int64_t first = ci * chunk;
      const int rows = int(std::min(chunk, pixels - first));
      for (int i = 0; i < rows; ++i) {
        gather_patch(d, x, first + i, patches.data() + int64_t(i) * d.patch_row);
      }
      // out[i][g*Kg + k] = sum_j patches[i][g*PG + j] * wd[g*Kg + k][j]  (PG = patch_per_group).
      for (int g = 0; g < d.groups; ++g) {
        gemm_abt(rows, d.k_per_group, d.patch_per_group,
                 patches.data() + int64_t(g) * d.patch_per_group, d.patch_row,
                 wd.data() + int64_t(g) * d.k_per_group * d.patch_per_group, d.patch_per_group,
                 out.data() + int64_t(g) * d.k_per_group, K);
      }
      for (int i = 0; i < rows; ++i) store_pixel(y, first + i, out.data() + int64_t(i) * K, bias);
    }
  }
}

}  // namespace

Shape4 conv2d_output_shape(const ConvShape& conv, Shape4 x, int out_channels) {
  return Shape4{x.n, conv.out_h(x.h), conv.out_w(x.w), out_channels};
}

void conv2d_fwd(Conv2dAlgo algo, const ConvShape& conv, const TensorView& x, const TensorView& w,
                const float* bias, const TensorView& y) {
  const ConvDims d = validate(conv, x, w, y);
  if (d.y.pixels() == 0) return;
  const std::vector<double> wd = weights_as_double(d, w);
  // A dgemm per group pays off once a group has a few output channels; depthwise (1 per group)
  // is a short dot product per channel and goes direct.
  constexpr int kMinGemmChannelsPerGroup = 8;
  if (algo == Conv2dAlgo::Auto) {
    algo = d.k_per_group >= kMinGemmChannelsPerGroup ? Conv2dAlgo::Gemm : Conv2dAlgo::Direct;
  }
  if (algo == Conv2dAlgo::Gemm) {
    conv_gemm(d, x, wd, bias, y);
  } else {
    conv_direct(d, x, wd, bias, y);
  }
}

void conv2d_fwd(const ConvShape& conv, const TensorView& x, const TensorView& w, const float* bias,
                const TensorView& y) {
  conv2d_fwd(Conv2dAlgo::Auto, conv, x, w, bias, y);
}

}  // namespace farsee::reference
