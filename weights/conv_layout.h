// PyTorch -> FarSee weight layouts. Weight files hold PyTorch's layouts (conv OIHW); the kernels
// read KRSC ([out][kh][kw][in], DESIGN.md section 3). Depthwise weights [C][1][3][3] are already
// the [C][kh][kw] layout the depthwise kernel reads: no conversion.
#pragma once

#include <vector>

#include "weights/safetensors.h"

namespace farsee::weights {

// [K][C][R][S] -> [K][R][S][C].
std::vector<float> oihw_to_krsc(const float* oihw, int K, int C, int R, int S);
// Same, taking the PyTorch shape {K, C, R, S} (throws naming `name` when it is not 4-D or does
// not match the value count).
std::vector<float> oihw_to_krsc(const std::vector<float>& oihw, const TensorShape& shape,
                                const std::string& name);

}  // namespace farsee::weights
