#include "net/preprocess.h"

#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/tensor.h"
#include "kernels/reference/resize.h"
#include "net/farsee_net.h"

namespace farsee::net {

void rgb8_to_unit(const uint8_t* rgb8, int h, int w, float* out, int out_h, int out_w) {
  FARSEE_REQUIRE(h > 0 && w > 0 && out_h > 0 && out_w > 0,
                 "rgb8_to_unit: sizes " << h << "x" << w << " -> " << out_h << "x" << out_w
                                        << " must be positive");
  const size_t values = size_t(h) * w * 3;
  if (h == out_h && w == out_w) {
    for (size_t i = 0; i < values; ++i) out[i] = float(rgb8[i]) / 255.f;
    return;
  }
  // Converted at the source size first: the resize interpolates the [0, 1] values.
  std::vector<float> rgb(values);
  for (size_t i = 0; i < values; ++i) rgb[i] = float(rgb8[i]) / 255.f;
  reference::resize_bilinear_fwd(/*align_corners=*/false,
                                 make_view(rgb.data(), DType::F32, Shape4{1, h, w, 3}),
                                 make_view(out, DType::F32, Shape4{1, out_h, out_w, 3}));
}

void preprocess_rgb8(const uint8_t* rgb8, int h, int w, float* input, int out_h, int out_w) {
  rgb8_to_unit(rgb8, h, w, input, out_h, out_w);
  normalise_rgb(input, int64_t(out_h) * out_w);
}

}  // namespace farsee::net
