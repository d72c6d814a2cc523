// The ResNet stem (7x7, stride 2, pad 3 conv on 3 channels) as space-to-depth, for the kernels
// with 16-byte loads (emu, cuda). A 7x7 stride-2 conv on 3 channels equals a 4x4 stride-1 conv on
// 2x2 pixel blocks of 12 channels: with the blocks taken one pixel up-left,
//   s[n, Y, X, a*6 + b*3 + c] = x[n, 2Y - 1 + a, 2X - 1 + b, c]        (0 outside x)
//   w'[k, u, v, a*6 + b*3 + c] = w[k, 2u + a, 2v + b, c]               (0 for taps 7)
//   conv7x7/s2/p3(x, w)[oy, ox] = conv4x4/s1/p1(s, w')[oy, ox]
// since x row 2*oy - 3 + r with r = 2u + a is s row oy - 1 + u. The 7x7 kernel is padded to 8x8
// (taps 7 are zero), s has ceil(H/2) + 1 rows and columns (the output's count plus one), so the
// symmetric pad 1 gives exactly the stem's output. fp16 pads the 12 channels to 16 (32-byte
// pixels: two 16-byte cp.async chunks instead of 2-byte gathers); fp32 (SIMT, element loads)
// keeps 12. The input is rearranged on the host as it is uploaded (FarSeeNet::set_input), the
// weights once at load. The reference and cpu executors, and training, keep the plain 7x7 conv.
#pragma once

#include <vector>

#include "kernels/core/conv_shape.h"
#include "kernels/core/dtype.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"

namespace farsee::net {

// Whether inference on `executor` runs the stem as space-to-depth (emu, cuda).
bool stem_space_to_depth(Executor executor);
// Channels per block pixel: 16 (fp16), 12 (fp32).
int stem_s2d_channels(DType dtype);
// The rearranged input's shape for the stem input shape x ([N, H, W, 3]).
Shape4 stem_s2d_shape(Shape4 x, int channels);
// The 4x4, stride 1, pad 1 conv that replaces the stem; throws unless `stem` is 7x7/s2/p3.
ConvShape stem_s2d_conv(const ConvShape& stem);
// x NHWC fp32 [N, H, W, 3] -> out, stem_s2d_shape(x, channels) elements (written entirely).
void stem_s2d_input(const float* x, Shape4 shape, int channels, float* out);
// KRSC fp32 [K][7][7][3] -> [K][4][4][channels].
std::vector<float> stem_s2d_weights(const std::vector<float>& krsc, int K, int channels);

}  // namespace farsee::net
