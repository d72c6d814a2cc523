#include "kernels/reference/softmax_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/index.h"

namespace farsee::reference {

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
  int64_t counted = 0;
  for (int64_t p = 0; p < pixels; ++p) {
    FARSEE_REQUIRE(labels[p] < C || labels[p] == kIgnoreLabel, "softmax_cross_entropy: labels["
                                                                   << p << "] = " << int(labels[p])
                                                                   << " is neither a class < " << C
                                                                   << " nor the ignore label 255");
    if (labels[p] != kIgnoreLabel) ++counted;
  }
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

}  // namespace farsee::reference
