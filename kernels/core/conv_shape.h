// Convolution geometry shared by the reference conv, the fused kernels and the net's shape
// inference (PyTorch semantics: out = (in + 2*pad - dilation*(k-1) - 1) / stride + 1).
#pragma once

#include "kernels/core/hd.h"

namespace farsee {

struct ConvShape {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;

  FARSEE_HD int out_h(int in_h) const {
    return (in_h + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
  }
  FARSEE_HD int out_w(int in_w) const {
    return (in_w + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
  }
};

// k x k, stride s, "same"-style padding (k/2 * dilation), dilation d.
inline ConvShape square_conv(int k, int stride = 1, int dilation = 1, int groups = 1) {
  ConvShape c;
  c.kernel_h = c.kernel_w = k;
  c.stride_h = c.stride_w = stride;
  c.pad_h = c.pad_w = (k / 2) * dilation;
  c.dilation_h = c.dilation_w = dilation;
  c.groups = groups;
  return c;
}

FARSEE_HD int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

}  // namespace farsee
