#include "kernels/reference/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <string>
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

// ---- backward ----

int64_t conv_output_grad_offset(const TensorView& dy, int shuffle_factor, int n, int oy, int ox,
                                int k) {
  const int t = shuffle_factor;
  const int c = k / (t * t), i = (k / t) % t, j = k % t;
  return dy.offset(n, oy * t + i, ox * t + j, c);
}

namespace {

// Checks a backward call: geometry, groups = 1, x's shape, and dy's (shuffled) shape; returns the
// conv output shape [N, OH, OW, K].
Shape4 validate_backward(const char* op, const ConvShape& conv, Shape4 x, const TensorView& dy,
                         int K, int shuffle_factor) {
  FARSEE_REQUIRE(conv.kernel_h >= 1 && conv.kernel_w >= 1 && conv.stride_h >= 1 &&
                     conv.stride_w >= 1 && conv.pad_h >= 0 && conv.pad_w >= 0 &&
                     conv.dilation_h >= 1 && conv.dilation_w >= 1 && conv.groups == 1,
                 op << ": invalid geometry (kernel " << conv.kernel_h << "x" << conv.kernel_w
                    << ", stride " << conv.stride_h << "x" << conv.stride_w << ", pad "
                    << conv.pad_h << "x" << conv.pad_w << ", dilation " << conv.dilation_h << "x"
                    << conv.dilation_w << ", groups " << conv.groups << "; groups must be 1)");
  const int t = shuffle_factor;
  FARSEE_REQUIRE(t >= 1 && K >= 1 && K % (t * t) == 0,
                 op << ": K = " << K << " not a positive multiple of shuffle_factor^2 = " << t * t);
  const Shape4 out = conv2d_output_shape(conv, x, K);
  FARSEE_REQUIRE(out.h >= 1 && out.w >= 1,
                 op << ": x " << to_string(x) << " is smaller than the dilated kernel");
  require_shape(dy, (std::string(op) + ": dy").c_str(),
                Shape4{out.n, out.h * t, out.w * t, K / (t * t)});
  return out;
}

// dy as dense double rows [N*OH*OW][K] in conv-output order (un-shuffled).
std::vector<double> output_grad_as_double(const TensorView& dy, Shape4 out, int t) {
  std::vector<double> d(size_t(out.elements()));
  for (int64_t p = 0; p < out.pixels(); ++p) {
    const PixelCoord o = pixel_coord(p, out);
    for (int k = 0; k < out.c; ++k) {
      d[size_t(p) * out.c + k] = double(load(dy, conv_output_grad_offset(dy, t, o.n, o.y, o.x, k)));
    }
  }
  return d;
}

}  // namespace

void conv2d_bwd_data(const ConvShape& conv, const TensorView& dy, const TensorView& w,
                     const TensorView& dx, int shuffle_factor, bool accumulate) {
  const char* op = "conv2d_bwd_data";
  require_shape(dx, "conv2d_bwd_data: dx", dx.shape);
  const int K = w.n(), C = dx.c();
  require_shape(w, "conv2d_bwd_data: w (KRSC)", Shape4{K, conv.kernel_h, conv.kernel_w, C});
  const Shape4 out = validate_backward(op, conv, dx.shape, dy, K, shuffle_factor);
  const std::vector<double> g = output_grad_as_double(dy, out, shuffle_factor);
  const int R = conv.kernel_h, S = conv.kernel_w;
  // Weights as [R][S][K][C] doubles: the inner loop runs over contiguous input channels.
  std::vector<double> wd(size_t(R) * S * K * C);
  std::vector<double> row(static_cast<size_t>(C));
  for (int k = 0; k < K; ++k) {
    for (int r = 0; r < R; ++r) {
      for (int s = 0; s < S; ++s) {
        load_row(w, w.offset(k, r, s, 0), C, row.data());
        std::copy(row.begin(), row.end(), wd.begin() + ((int64_t(r) * S + s) * K + k) * C);
      }
    }
  }
  const Shape4 xs = dx.shape;
  parallel_pixels(
      xs.pixels(),
      [&](int64_t p) {
        const PixelCoord q = pixel_coord(p, xs);
        std::vector<double> acc(size_t(C), 0.0);
        for (int r = 0; r < R; ++r) {
          // Output row oy whose tap r reads input row q.y: oy*sh - ph + r*dh = q.y.
          const int ty = q.y + conv.pad_h - r * conv.dilation_h;
          if (ty < 0 || ty % conv.stride_h != 0 || ty / conv.stride_h >= out.h) continue;
          const int oy = ty / conv.stride_h;
          for (int s = 0; s < S; ++s) {
            const int tx = q.x + conv.pad_w - s * conv.dilation_w;
            if (tx < 0 || tx % conv.stride_w != 0 || tx / conv.stride_w >= out.w) continue;
            const int ox = tx / conv.stride_w;
            const double* gr = g.data() + ((int64_t(q.n) * out.h + oy) * out.w + ox) * K;
            for (int k = 0; k < K; ++k) {
              const double v = gr[k];
              if (v == 0.0) continue;
              const double* wr = wd.data() + ((int64_t(r) * S + s) * K + k) * C;
              for (int c = 0; c < C; ++c) acc[c] += v * wr[c];
            }
          }
        }
        const int64_t base = pixel_offset(dx, p);
        for (int c = 0; c < C; ++c) {
          const double v = acc[c] + (accumulate ? double(load(dx, base + c)) : 0.0);
          store(dx, base + c, float(v));
        }
      },
      int64_t(R) * S * K * C);
}

void conv2d_bwd_weight(const ConvShape& conv, const TensorView& x, const TensorView& dy, int K,
                       float* dw, float* db, int shuffle_factor) {
  const char* op = "conv2d_bwd_weight";
  require_shape(x, "conv2d_bwd_weight: x", x.shape);
  FARSEE_REQUIRE(dw != nullptr, op << ": dw is null");
  const Shape4 out = validate_backward(op, conv, x.shape, dy, K, shuffle_factor);
  const std::vector<double> g = output_grad_as_double(dy, out, shuffle_factor);
  ConvDims d;
  d.conv = conv;
  d.x = x.shape;
  d.y = out;
  d.groups = 1;
  d.c_per_group = x.c();
  d.k_per_group = K;
  d.patch_per_group = conv.kernel_h * conv.kernel_w * x.c();
  d.patch_row = d.patch_per_group;
  const int RSC = d.patch_row;
  const int64_t pixels = out.pixels();
  // dw[k][j] = sum_p g[p][k] * patch[p][j] = gemm_abt over transposed chunks: gT [K][rows],
  // patchT [RSC][rows]. Chunks in pixel order, one thread (reproducible).
  const int64_t chunk = std::max<int64_t>(16, std::min<int64_t>(1024, (int64_t(1) << 20) / RSC));
  std::vector<double> patch(static_cast<size_t>(RSC)), gT(size_t(K) * chunk),
      pT(size_t(RSC) * chunk);
  std::vector<double> part(size_t(K) * RSC), sum(size_t(K) * RSC, 0.0), bsum(size_t(K), 0.0);
  for (int64_t first = 0; first < pixels; first += chunk) {
    const int rows = int(std::min(chunk, pixels - first));
    for (int i = 0; i < rows; ++i) {
      gather_patch(d, x, first + i, patch.data());
      for (int j = 0; j < RSC; ++j) pT[size_t(j) * rows + i] = patch[j];
      for (int k = 0; k < K; ++k) {
        const double v = g[size_t(first + i) * K + k];
        gT[size_t(k) * rows + i] = v;
        bsum[k] += v;
      }
    }
    gemm_abt(K, RSC, rows, gT.data(), rows, pT.data(), rows, part.data(), RSC);
    for (size_t e = 0; e < sum.size(); ++e) sum[e] += part[e];
  }
  for (size_t e = 0; e < sum.size(); ++e) dw[e] = float(double(dw[e]) + sum[e]);
  if (db != nullptr) {
    for (int k = 0; k < K; ++k) db[k] = float(double(db[k]) + bsum[k]);
  }
}

TensorView tf32_rounded_copy(const TensorView& v, std::vector<float>& storage) {
  const Shape4 shape = v.shape;
  storage.assign(size_t(shape.elements()), 0.0f);
  size_t i = 0;
  for (int n = 0; n < shape.n; ++n) {
    for (int y = 0; y < shape.h; ++y) {
      for (int x = 0; x < shape.w; ++x) {
        for (int c = 0; c < shape.c; ++c) storage[i++] = round_to_tf32(at(v, n, y, x, c));
      }
    }
  }
  return make_view(storage.data(), DType::F32, shape);
}

}  // namespace farsee::reference
