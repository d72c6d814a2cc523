// Reference conv_bn_act: reference::conv2d_fwd into a dense fp32 temporary (double accumulation,
// rounded once to fp32), then the epilogue in double (scale * acc + bias + residual, ReLU), rounded
// once to y's dtype, written plain/into the slice, or pixel-shuffled (PyTorch PixelShuffle order:
// conv channel k = c*t*t + i*t + j of pixel (n, h, w) goes to y(n, h*t + i, w*t + j, c)).
// Deliberately independent of the kernels' index and epilogue code (kernels/reference/index.h).
// Training: conv_bwd_data / conv_bwd_weight are reference::conv2d_bwd_data / conv2d_bwd_weight
// (double sums, shuffle mapping read in place) on the KRSC weights.
// plan.tf32: both operands of every conv rounded to TF32 first (tf32_rounded_copy).
#include "kernels/conv_bn_act.h"

#include <cmath>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/conv2d.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS) {
  (void)ctx;
  TensorView weights = make_view(w.buffer.data(), w.dtype, Shape4{w.K, w.R, w.S, w.C});
  TensorView src = x;
  std::vector<float> x_tf32, w_tf32;
  if (plan.tf32) {
    src = tf32_rounded_copy(x, x_tf32);
    weights = tf32_rounded_copy(weights, w_tf32);
  }
  const Shape4 out = conv2d_output_shape(conv, x.shape, w.K);
  std::vector<float> acc(size_t(out.elements()));
  conv2d_fwd(conv, src, weights, nullptr, make_view(acc.data(), DType::F32, out));

  const int t = epilogue.shuffle_factor;
  const TensorView& res = epilogue.residual;
  parallel_pixels(out.pixels(), [&](int64_t p) {
    const PixelCoord o = pixel_coord(p, out);
    for (int k = 0; k < out.c; ++k) {
      double v = double(acc[size_t(p) * out.c + k]);
      if (epilogue.scale != nullptr) v *= double(epilogue.scale[k]);
      if (epilogue.bias != nullptr) v += double(epilogue.bias[k]);
      if (res.data != nullptr) v += double(load(res, pixel_offset(res, p) + k));
      if (epilogue.relu && v < 0.0) v = 0.0;
      const int c = k / (t * t), i = (k / t) % t, j = k % t;
      set(y, o.n, o.y * t + i, o.x * t + j, c, float(v));
    }
  });
}

// Training. Reference weights are KRSC in the storage dtype for both uses.
void refresh_conv_weights(const Context& ctx, const float* master_krsc, ConvWeights& w) {
  (void)ctx;
  const int64_t count = int64_t(w.K) * w.R * w.S * w.C;
  for (int64_t i = 0; i < count; ++i) write_element(w.buffer.data(), w.dtype, i, master_krsc[i]);
}

void conv_bwd_data(FARSEE_CONV_BWD_DATA_IMPL_ARGS) {
  (void)ctx;
  TensorView weights = make_view(w.buffer.data(), w.dtype, Shape4{w.K, w.R, w.S, w.C});
  TensorView src = dy;
  std::vector<float> dy_tf32, w_tf32;
  if (plan.tf32) {
    src = tf32_rounded_copy(dy, dy_tf32);
    weights = tf32_rounded_copy(weights, w_tf32);
  }
  conv2d_bwd_data(conv, src, weights, dx, shuffle_factor, accumulate);
}

void conv_bwd_weight(FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS) {
  (void)ctx;
  const int t = shuffle_factor, K = dy.c() * t * t;
  if (!plan.tf32) {
    conv2d_bwd_weight(conv, x, dy, K, dw, db, t);
    return;
  }
  std::vector<float> x_tf32, dy_tf32;
  conv2d_bwd_weight(conv, tf32_rounded_copy(x, x_tf32), tf32_rounded_copy(dy, dy_tf32), K, dw,
                    nullptr, t);
  if (db == nullptr) return;
  // db is a plain sum of dy (no tensor-core product): the unrounded dy, in double.
  const int oh = conv.out_h(x.h()), ow = conv.out_w(x.w());
  for (int k = 0; k < K; ++k) {
    double sum = 0.0;
    for (int n = 0; n < x.n(); ++n) {
      for (int oy = 0; oy < oh; ++oy) {
        for (int ox = 0; ox < ow; ++ox)
          sum += load(dy, conv_output_grad_offset(dy, t, n, oy, ox, k));
      }
    }
    db[k] = float(double(db[k]) + sum);
  }
}

}  // namespace farsee::reference
