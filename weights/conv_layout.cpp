#include "weights/conv_layout.h"

#include "kernels/core/check.h"

namespace farsee::weights {

std::vector<float> oihw_to_krsc(const float* oihw, int K, int C, int R, int S) {
  FARSEE_REQUIRE(K >= 0 && C >= 0 && R >= 0 && S >= 0, "oihw_to_krsc: negative dimension in ["
                                                           << K << ", " << C << ", " << R << ", "
                                                           << S << "]");
  std::vector<float> krsc(size_t(K) * C * R * S);
  for (int k = 0; k < K; ++k) {
    for (int c = 0; c < C; ++c) {
      for (int r = 0; r < R; ++r) {
        for (int s = 0; s < S; ++s) {
          krsc[((size_t(k) * R + r) * S + s) * C + c] = oihw[((size_t(k) * C + c) * R + r) * S + s];
        }
      }
    }
  }
  return krsc;
}

std::vector<float> oihw_to_krsc(const std::vector<float>& oihw, const TensorShape& shape,
                                const std::string& name) {
  FARSEE_REQUIRE(shape.size() == 4, "oihw_to_krsc: tensor '" << name << "' has shape "
                                                             << shape_text(shape)
                                                             << ", expected 4-D OIHW");
  FARSEE_REQUIRE(int64_t(oihw.size()) == shape_numel(shape),
                 "oihw_to_krsc: tensor '" << name << "' holds " << oihw.size()
                                          << " values for shape " << shape_text(shape));
  return oihw_to_krsc(oihw.data(), int(shape[0]), int(shape[1]), int(shape[2]), int(shape[3]));
}

}  // namespace farsee::weights
