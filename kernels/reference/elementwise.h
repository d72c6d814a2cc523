// Reference elementwise ops over NHWC views (fp32 or fp16 storage each; channel slices allowed;
// y may alias an input exactly, for in-place use). Computed in fp32 and rounded to y's dtype.
//   relu_fwd: y = max(x, 0), NaN stays NaN (as torch.relu)
//   add_fwd:  y = a + b (the residual add)
//   relu_bwd: dx = y > 0 ? dy : 0 (y the ReLU's output; a select, as PyTorch's
//             threshold_backward: NaN dy under a closed ReLU gives 0)
// The public training helper of kernels/elementwise.h (fill_zero) has its reference version in
// elementwise.cpp too.
#pragma once

#include "kernels/core/tensor.h"

namespace farsee::reference {

void relu_fwd(const TensorView& x, const TensorView& y);
void add_fwd(const TensorView& a, const TensorView& b, const TensorView& y);
void relu_bwd(const TensorView& y, const TensorView& dy, const TensorView& dx);

}  // namespace farsee::reference
