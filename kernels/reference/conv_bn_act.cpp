// Reference conv_bn_act: reference::conv2d_fwd into a dense fp32 temporary (double accumulation,
// rounded once to fp32), then the epilogue in double (scale * acc + bias + residual, ReLU), rounded
// once to y's dtype, written plain/into the slice, or pixel-shuffled (PyTorch PixelShuffle order:
// conv channel k = c*t*t + i*t + j of pixel (n, h, w) goes to y(n, h*t + i, w*t + j, c)).
// Deliberately independent of the kernels' index and epilogue code (kernels/reference/index.h).
// Training: conv_bwd_data / conv_bwd_weight are reference::conv2d_bwd_data / conv2d_bwd_weight
// (double sums, shuffle mapping read in place) on the KRSC weights.
#include "kernels/conv_bn_act.h"

#include <cmath>
#include <vector>

#include "kernels/reference/access.h"
#include "kernels/reference/conv2d.h"
#include "kernels/reference/index.h"

namespace farsee::reference {

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS) {
  (void)ctx;
  (void)plan;  // the reference has one algorithm
  const TensorView weights = make_view(w.buffer.data(), w.dtype, Shape4{w.K, w.R, w.S, w.C});
  const Shape4 out = conv2d_output_shape(conv, x.shape, w.K);
  std::vector<float> acc(size_t(out.elements()));
  conv2d_fwd(conv, x, weights, nullptr, make_view(acc.data(), DType::F32, out));

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
  (void)plan;
  const TensorView weights = make_view(w.buffer.data(), w.dtype, Shape4{w.K, w.R, w.S, w.C});
  conv2d_bwd_data(conv, dy, weights, dx, shuffle_factor, accumulate);
}

void conv_bwd_weight(FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS) {
  (void)ctx;
  (void)plan;
  conv2d_bwd_weight(conv, x, dy, dy.c() * shuffle_factor * shuffle_factor, dw, db, shuffle_factor);
}

}  // namespace farsee::reference
