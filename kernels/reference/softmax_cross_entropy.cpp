#include "kernels/reference/softmax_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/index.h"
#include "kernels/reference/resize.h"
#include "kernels/softmax_cross_entropy.h"

namespace farsee::reference {

LabelCounts count_labels(const uint8_t* labels, int64_t count, int C, const float* class_weights,
                         const char* what) {
  LabelCounts out;
  for (int64_t p = 0; p < count; ++p) {
    FARSEE_REQUIRE(labels[p] < C || labels[p] == kIgnoreLabel,
                   what << ": labels[" << p << "] = " << int(labels[p]) << " is neither a class < "
                        << C << " nor the ignore label 255");
    if (labels[p] == kIgnoreLabel) continue;
    ++out.counted;
    out.weight_sum += class_weights ? double(class_weights[labels[p]]) : 1.0;
  }
  return out;
}

float softmax_cross_entropy(const TensorView& logits, const uint8_t* labels,
                            const TensorView& grad) {
  require_shape(logits, "softmax_cross_entropy: logits", logits.shape);
  require_dtype(logits, "softmax_cross_entropy: logits", DType::F32);
  FARSEE_REQUIRE(logits.c() >= 1, "softmax_cross_entropy: logits have no channels");
  FARSEE_REQUIRE(labels != nullptr, "softmax_cross_entropy: labels is null");
  const bool want_grad = grad.data != nullptr;
  if (want_grad) {
    require_shape(grad, "softmax_cross_entropy: grad", logits.shape);
    require_dtype(grad, "softmax_cross_entropy: grad", DType::F32);
  }
  const int C = logits.c();
  const int64_t pixels = logits.shape.pixels();
  const int64_t counted = count_labels(labels, pixels, C, nullptr, "softmax_cross_entropy").counted;
  // Per-pixel losses first, summed in pixel order afterwards: deterministic for any thread count.
  std::vector<double> pixel_loss(size_t(pixels), 0.0);
  const double inv_count = counted > 0 ? 1.0 / double(counted) : 0.0;
  const float* z_all = logits.ptr<float>();
  parallel_pixels(
      pixels,
      [&](int64_t p) {
        const float* z = z_all + pixel_offset(logits, p);
        float* g = want_grad ? grad.ptr<float>() + pixel_offset(grad, p) : nullptr;
        if (labels[p] == kIgnoreLabel) {
          if (g) std::fill(g, g + C, 0.0f);
          return;
        }
        double zmax = -std::numeric_limits<double>::infinity();
        for (int c = 0; c < C; ++c) zmax = std::max(zmax, double(z[c]));
        double sum = 0.0;
        for (int c = 0; c < C; ++c) sum += std::exp(double(z[c]) - zmax);
        const double log_sum = std::log(sum);
        pixel_loss[size_t(p)] = log_sum + zmax - double(z[labels[p]]);
        if (g) {
          for (int c = 0; c < C; ++c) {
            const double prob = std::exp(double(z[c]) - zmax - log_sum);
            g[c] = float((prob - (c == labels[p] ? 1.0 : 0.0)) * inv_count);
          }
        }
      },
      3 * C);
  if (counted == 0) return std::numeric_limits<float>::quiet_NaN();
  double total = 0.0;
  for (double l : pixel_loss) total += l;
  return float(total / double(counted));
}

void softmax_ce_upsample(const Context&, bool align_corners, const TensorView& logits,
                         const uint8_t* labels, int label_h, int label_w, float* loss,
                         const TensorView& dlogits, float grad_scale, void*, size_t,
                         int64_t* valid_count, const float* class_weights,
                         const float* grad_scale_in_memory) {
  const int C = logits.c();
  const int N = logits.n();
  const int64_t label_pixels = int64_t(label_h) * label_w;
  const auto weight = [&](int label) { return class_weights ? double(class_weights[label]) : 1.0; };
  const LabelCounts counts =
      count_labels(labels, N * label_pixels, C, class_weights, "softmax_ce_upsample");
  const int64_t counted = counts.counted;
  const double weight_sum = counts.weight_sum;  // S: the weighted mean's denominator
  const std::vector<LinearTap> ty = linear_taps(logits.h(), label_h, align_corners);
  const std::vector<LinearTap> tx = linear_taps(logits.w(), label_w, align_corners);
  const int64_t image = int64_t(logits.h()) * logits.w() * C;
  std::vector<double> acc(size_t(N) * size_t(image), 0.0);
  std::vector<double> pixel_loss(size_t(N * label_pixels), 0.0);
  parallel_pixels(
      N,
      [&](int64_t n) {
        double* a = acc.data() + n * image;
        const size_t cs = static_cast<size_t>(C);
        std::vector<double> r00(cs), r01(cs), r10(cs), r11(cs);
        std::vector<double> z(cs);
        for (int oy = 0; oy < label_h; ++oy) {
          const LinearTap& v = ty[oy];
          for (int ox = 0; ox < label_w; ++ox) {
            const int64_t q = n * label_pixels + int64_t(oy) * label_w + ox;
            const int label = labels[q];
            if (label == kIgnoreLabel) continue;
            const LinearTap& h = tx[ox];
            load_row(logits, logits.offset(int(n), v.i0, h.i0, 0), C, r00.data());
            load_row(logits, logits.offset(int(n), v.i0, h.i1, 0), C, r01.data());
            load_row(logits, logits.offset(int(n), v.i1, h.i0, 0), C, r10.data());
            load_row(logits, logits.offset(int(n), v.i1, h.i1, 0), C, r11.data());
            double zmax = -std::numeric_limits<double>::infinity();
            for (int c = 0; c < C; ++c) {
              z[c] = double(v.l0) * (double(h.l0) * r00[c] + double(h.l1) * r01[c]) +
                     double(v.l1) * (double(h.l0) * r10[c] + double(h.l1) * r11[c]);
              zmax = std::max(zmax, z[c]);
            }
            double sum = 0.0;
            for (int c = 0; c < C; ++c) sum += std::exp(z[c] - zmax);
            const double lse = std::log(sum) + zmax;
            const double w = weight(label);
            pixel_loss[size_t(q)] = w * (lse - z[label]);
            const int64_t o00 = (int64_t(v.i0) * logits.w() + h.i0) * C;
            const int64_t o01 = (int64_t(v.i0) * logits.w() + h.i1) * C;
            const int64_t o10 = (int64_t(v.i1) * logits.w() + h.i0) * C;
            const int64_t o11 = (int64_t(v.i1) * logits.w() + h.i1) * C;
            const double w00 = double(v.l0) * h.l0, w01 = double(v.l0) * h.l1;
            const double w10 = double(v.l1) * h.l0, w11 = double(v.l1) * h.l1;
            for (int c = 0; c < C; ++c) {
              const double g = w * (std::exp(z[c] - lse) - (c == label ? 1.0 : 0.0));
              a[o00 + c] += w00 * g;
              a[o01 + c] += w01 * g;
              a[o10 + c] += w10 * g;
              a[o11 + c] += w11 * g;
            }
          }
        }
      },
      label_pixels * C * 12);
  if (grad_scale_in_memory) grad_scale = *grad_scale_in_memory;
  const double factor = weight_sum > 0 ? double(grad_scale) / weight_sum : 0.0;
  parallel_pixels(logits.shape.pixels(), [&](int64_t q) {  // fp32, then once to dlogits' dtype
    const int64_t o = pixel_offset(dlogits, q);
    for (int c = 0; c < C; ++c) store(dlogits, o + c, float(acc[size_t(q) * C + c] * factor));
  });
  double total = 0.0;
  for (double l : pixel_loss) total += l;
  *loss = weight_sum > 0 ? float(total / weight_sum) : std::numeric_limits<float>::quiet_NaN();
  if (valid_count) *valid_count = counted;
}

}  // namespace farsee::reference
