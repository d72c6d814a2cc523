// Reference resize + argmax (kernels/resize_argmax.h), composed from the reference ops: bilinear
// resize of one image's logits into an fp32 temporary [out_h, out_w, C], then argmax over
// channels. (Materialises one image's full-resolution logits, which the fused kernels avoid.)
#include "kernels/resize_argmax.h"

#include <vector>

#include "kernels/reference/resize.h"

namespace farsee::reference {

void resize_argmax_fwd(const Context&, bool align_corners, const TensorView& logits, int out_h,
                       int out_w, uint8_t* labels) {
  const Shape4 image{1, out_h, out_w, logits.c()};
  std::vector<float> resized(size_t(image.elements()));
  const TensorView resized_view = make_view(resized.data(), DType::F32, image);
  for (int n = 0; n < logits.n(); ++n) {
    TensorView one = logits;
    one.shape.n = 1;
    one.data = static_cast<char*>(logits.data) +
               logits.offset(n, 0, 0, 0) * int64_t(dtype_size(logits.dtype));
    resize_bilinear_fwd(align_corners, one, resized_view);
    argmax_channels(resized_view, labels + int64_t(n) * out_h * out_w);
  }
}

}  // namespace farsee::reference
