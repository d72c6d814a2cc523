// cpu executor, fused softmax cross-entropy of bilinearly upsampled logits
// (kernels/softmax_cross_entropy.h), fp32 logits (fp16: the reference); d(logits) fp32, or fp16
// rounded once from the same fp32 value (mixed precision).
// The label rows of each image are cut into bands of kBandRows rows (a function of the shape
// only). A band samples its label pixels' logits (kernels/core/bilinear.h taps, as the kernels),
// computes logsumexp, the pixel's loss and softmax - onehot, and scatters the tap-weighted
// gradient into its own fp32 buffer covering just the logit rows its taps read. Per pixel: the
// element-wise loops over the classes vectorise (a polynomial exp, exp_nonpositive, less than 1 ulp
// from the exact exp), the max and the sum run in class order. Then every logit row sums the bands
// that touch it in band order, scaled by grad_scale / S. Class weights scale a pixel's loss and
// gradient (S: the sum of the counted pixels' weights, M without weights). Loss: per-band double
// sums, added in band order. No atomics, no thread-dependent order: bitwise reproducible. Labels
// are validated and counted first by the reference's count_labels (a label >= C that is not 255
// throws).
// The per-class loops vectorise only without -ftrapping-math (its float-to-int conversion and
// compares count as possibly trapping, so GCC keeps them as branches): kernels/CMakeLists.txt
// builds this file with -fno-trapping-math; no FP exception is ever enabled here, and the results
// are the same IEEE operations either way.
#include "kernels/softmax_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/core/bilinear.h"
#include "kernels/core/half_convert.h"
#include "kernels/cpu/fallback.h"
#include "kernels/cpu/parallel.h"
#include "kernels/reference/softmax_cross_entropy.h"

namespace farsee::cpu_impl {
namespace {

constexpr int kBandRows = 16;

// exp(x) for x <= 0 (x = z - zmax), vectorisable: x = n ln2 + r, |r| <= ln2 / 2 (n rounded from
// x / ln2; ln2 in two parts so n ln2 is exact), e^r by Cephes' expf polynomial (degree 7, relative
// error ~1e-7), times 2^n built in the exponent bits. Below -87.3 (exp < 1.04 * 2^-126, the least
// normal float) the result is 0; a NaN stays NaN. Measured over every float x in [-87.3, 0] (1.1e9
// of them) against exp in double: at most 0.98 ulp from the exact value (mean 0.07), 0.84% of the
// results one ulp off the correctly rounded float, none more than 1 ulp from glibc's expf (the loss
// and gradient tolerances are ~1e-5 relative); the same bits on every thread count.
inline float exp_nonpositive(float x) {
  const bool tiny = x < -87.3f;
  const float xc = tiny ? -87.3f : x;  // keeps n >= -126 (a NaN passes through to the end)
  const float t = xc * 1.44269504088896341f - 0.5f;  // x / ln2 - 1/2 < 0: truncation rounds
  const int n = int(t);
  const float fn = float(n);
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * (r * r) + r + 1.0f;
  const float y = e * __builtin_bit_cast(float, int32_t((n + 127) << 23));
  const float z = tiny ? 0.0f : y;
  return x == x ? z : x;
}

// d[c] += a * g[c], c < n.
inline void add_scaled(float* d, float a, const float* g, int n) {
#pragma omp simd
  for (int c = 0; c < n; ++c) d[c] += a * g[c];
}

struct Band {
  int n, y0, y1;           // image, label rows [y0, y1)
  int r0, r1;              // logit rows [r0, r1] its taps read
  std::vector<float> acc;  // [(r1 - r0 + 1) * W * C]
  double loss = 0.0;
};

// Per image, its label rows cut into bands of kBandRows rows (shape only).
std::vector<Band> make_bands(int N, int label_h, const std::vector<BilinearTap>& ty) {
  std::vector<Band> bands;
  for (int n = 0; n < N; ++n) {
    for (int y0 = 0; y0 < label_h; y0 += kBandRows) {
      Band b;
      b.n = n;
      b.y0 = y0;
      b.y1 = std::min(label_h, y0 + kBandRows);
      b.r0 = ty[size_t(y0)].i0;
      b.r1 = ty[size_t(b.y1 - 1)].i1;
      bands.push_back(std::move(b));
    }
  }
  return bands;
}

// One counted label pixel (taps v, h; class `label` of weight w): samples its C logits into z,
// adds w * tap weight * (softmax - onehot) into the band's buffer at its four taps (g: the
// thread's scratch), and returns its weighted loss w * (logsumexp - z[label]). Separate simple
// loops: the element-wise ones vectorise, the two reductions (max, sum) keep their class order.
inline double pixel_loss_and_grad(const TensorView& logits, Band& b, const BilinearTap& v,
                                  const BilinearTap& h, int label, float w, float* zv, float* gv) {
  const int C = logits.c();
  const int64_t row_floats = int64_t(logits.w()) * C;
  const float* z_all = logits.ptr<const float>();
  const float* a00 = z_all + logits.offset(b.n, v.i0, h.i0, 0);
  const float* a01 = z_all + logits.offset(b.n, v.i0, h.i1, 0);
  const float* a10 = z_all + logits.offset(b.n, v.i1, h.i0, 0);
  const float* a11 = z_all + logits.offset(b.n, v.i1, h.i1, 0);
#pragma omp simd
  for (int c = 0; c < C; ++c) zv[c] = bilinear_mix(v, h, a00[c], a01[c], a10[c], a11[c]);
  float zmax = -std::numeric_limits<float>::infinity();
  for (int c = 0; c < C; ++c) zmax = std::max(zmax, zv[c]);
  const float zl = zv[label] - zmax;  // before the exp (no underflow to log 0)
#pragma omp simd
  for (int c = 0; c < C; ++c) zv[c] = exp_nonpositive(zv[c] - zmax);  // exp(z - zmax)
  float sum = 0.0f;
  for (int c = 0; c < C; ++c) sum += zv[c];
  const double loss = double(w) * (double(std::log(sum)) - double(zl));
  const float inv = 1.0f / sum;
  const float w00 = v.l0 * h.l0, w01 = v.l0 * h.l1, w10 = v.l1 * h.l0, w11 = v.l1 * h.l1;
  float* d00 = b.acc.data() + (v.i0 - b.r0) * row_floats + int64_t(h.i0) * C;
  float* d01 = b.acc.data() + (v.i0 - b.r0) * row_floats + int64_t(h.i1) * C;
  float* d10 = b.acc.data() + (v.i1 - b.r0) * row_floats + int64_t(h.i0) * C;
  float* d11 = b.acc.data() + (v.i1 - b.r0) * row_floats + int64_t(h.i1) * C;
#pragma omp simd
  for (int c = 0; c < C; ++c) gv[c] = w * (zv[c] * inv - (c == label ? 1.0f : 0.0f));
  // One tap at a time (taps at the border share a row: the same per-element order as adding the
  // four taps element by element).
  add_scaled(d00, w00, gv, C);
  add_scaled(d01, w01, gv, C);
  add_scaled(d10, w10, gv, C);
  add_scaled(d11, w11, gv, C);
  return loss;
}

// One band: its buffer zeroed, then its counted label pixels in row-major order; the band's loss
// summed in double in that order.
void run_band(const TensorView& logits, const uint8_t* labels, int label_w, int64_t label_pixels,
              const std::vector<BilinearTap>& ty, const std::vector<BilinearTap>& tx,
              const float* class_weights, Band& b, float* zv, float* gv) {
  b.acc.assign(size_t(b.r1 - b.r0 + 1) * int64_t(logits.w()) * logits.c(), 0.0f);
  double band_loss = 0.0;
  for (int y = b.y0; y < b.y1; ++y) {
    const uint8_t* lrow = labels + int64_t(b.n) * label_pixels + int64_t(y) * label_w;
    for (int x = 0; x < label_w; ++x) {
      const int label = lrow[x];
      if (label == reference::kIgnoreLabel) continue;
      const float w = class_weights ? class_weights[label] : 1.0f;
      band_loss += pixel_loss_and_grad(logits, b, ty[size_t(y)], tx[size_t(x)], label, w, zv, gv);
    }
  }
  b.loss = band_loss;
}

// d(logits): each logit row sums the bands of its image that touch it, in band order, times
// `factor` (grad_scale / S); stored fp32, or fp16 rounded once from that fp32 value.
void store_band_gradients(const std::vector<Band>& bands, float factor, const TensorView& dlogits) {
  const int N = dlogits.n(), H = dlogits.h(), W = dlogits.w(), C = dlogits.c();
  const int64_t row_floats = int64_t(W) * C;
  const int64_t bands_per_image = int64_t(bands.size()) / N;
#pragma omp parallel for schedule( \
    dynamic) if (worth_threads_elements(int64_t(bands.size()) * 6 * row_floats))
  for (int64_t row = 0; row < int64_t(N) * H; ++row) {
    const int n = int(row / H), y = int(row % H);
    const int64_t row_offset = dlogits.offset(n, y, 0, 0);
    std::vector<float> sum(size_t(row_floats), 0.0f);
    for (int64_t k = 0; k < bands_per_image; ++k) {
      const Band& b = bands[size_t(n * bands_per_image + k)];
      if (y < b.r0 || y > b.r1) continue;
      const float* src = b.acc.data() + (y - b.r0) * row_floats;
      for (int64_t i = 0; i < row_floats; ++i) sum[size_t(i)] += src[i];
    }
    for (int x = 0; x < W; ++x) {
      for (int c = 0; c < C; ++c) {
        const float g = sum[size_t(int64_t(x) * C + c)] * factor;
        const int64_t at = row_offset + int64_t(x) * dlogits.pixel_stride + c;
        if (dlogits.dtype == DType::F16) {
          dlogits.ptr<uint16_t>()[at] = float_to_half_bits(g);  // the fp32 value rounded once
        } else {
          dlogits.ptr<float>()[at] = g;
        }
      }
    }
  }
}

}  // namespace

void softmax_ce_upsample(FARSEE_SOFTMAX_CE_UPSAMPLE_ARGS) {
  if (ran_reference_unless_f32(logits.dtype, reference::softmax_ce_upsample, ctx, align_corners,
                               logits, labels, label_h, label_w, loss, dlogits, grad_scale,
                               workspace, workspace_bytes, valid_count, class_weights,
                               grad_scale_in_memory))
    return;
  const int C = logits.c(), N = logits.n(), H = logits.h(), W = logits.w();
  const int64_t label_pixels = int64_t(label_h) * label_w;
  const reference::LabelCounts counts =
      reference::count_labels(labels, N * label_pixels, C, class_weights, "softmax_ce_upsample");
  const double weight_sum = counts.weight_sum;  // S, in pixel order
  const float sy = bilinear_scale(H, label_h, align_corners);
  const float sx = bilinear_scale(W, label_w, align_corners);
  std::vector<BilinearTap> ty(static_cast<size_t>(label_h)), tx(static_cast<size_t>(label_w));
  for (int y = 0; y < label_h; ++y) ty[size_t(y)] = bilinear_tap(y, sy, H, align_corners);
  for (int x = 0; x < label_w; ++x) tx[size_t(x)] = bilinear_tap(x, sx, W, align_corners);
  std::vector<Band> bands = make_bands(N, label_h, ty);
#pragma omp parallel if (worth_threads_elements(int64_t(N) * label_pixels * C * 12))
  {
    std::vector<float> z(static_cast<size_t>(C)), g(static_cast<size_t>(C));
#pragma omp for schedule(dynamic)
    for (int64_t bi = 0; bi < int64_t(bands.size()); ++bi)
      run_band(logits, labels, label_w, label_pixels, ty, tx, class_weights, bands[size_t(bi)],
               z.data(), g.data());
  }
  if (grad_scale_in_memory) grad_scale = *grad_scale_in_memory;
  store_band_gradients(bands, weight_sum > 0 ? float(double(grad_scale) / weight_sum) : 0.0f,
                       dlogits);
  double total = 0.0;
  for (const Band& b : bands) total += b.loss;
  *loss = weight_sum > 0 ? float(total / weight_sum) : std::numeric_limits<float>::quiet_NaN();
  if (valid_count) *valid_count = counts.counted;
}

}  // namespace farsee::cpu_impl
