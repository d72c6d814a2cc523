#include "kernels/core/tensor.h"

#include <sstream>

namespace farsee {

std::string to_string(const Shape4& s) {
  std::ostringstream o;
  o << "[N=" << s.n << ", H=" << s.h << ", W=" << s.w << ", C=" << s.c << "]";
  return o.str();
}

void require_shape(const TensorView& v, const char* name, Shape4 expected) {
  FARSEE_REQUIRE(v.shape == expected, "tensor '" << name << "' has shape " << to_string(v.shape)
                                                 << ", expected " << to_string(expected));
  FARSEE_REQUIRE(v.data != nullptr, "tensor '" << name << "' has no data");
  FARSEE_REQUIRE(v.pixel_stride >= v.shape.c, "tensor '" << name << "' has pixel stride "
                                                         << v.pixel_stride << " < C=" << v.shape.c);
}

void require_dtype(const TensorView& v, const char* name, DType expected) {
  FARSEE_REQUIRE(v.dtype == expected, "tensor '" << name << "' has dtype " << dtype_name(v.dtype)
                                                 << ", expected " << dtype_name(expected));
}

}  // namespace farsee
