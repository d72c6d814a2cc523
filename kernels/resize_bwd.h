// Bilinear resize backward: the exact transpose of PyTorch's F.interpolate(mode='bilinear',
// size=(H_out, W_out), align_corners = true or false) forward. For every output pixel (oy, ox) the
// forward reads the four taps (i0y|i1y, i0x|i1x) with weights ly * lx; the backward gives each tap
// dy * ly * lx. Gather form, no atomics: each dx element sums over the output pixels whose taps
// include it (a contiguous range of rows times a contiguous range of columns: the taps are
// monotone in the output coordinate). dx is written.
// The reference uses the reference forward's taps (kernels/reference/resize.cpp), the kernels the
// kernels' taps (kernels/core/bilinear.h): each is the transpose of its own forward.
// dy: [N, H_out, W_out, C], dx: [N, H_in, W_in, C]; fp32 or fp16 each, channel slices allowed.
#pragma once

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

#define FARSEE_RESIZE_BILINEAR_BWD_ARGS \
  const Context &ctx, bool align_corners, const TensorView &dy, const TensorView &dx
namespace reference {
void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS);
}
namespace cpu_impl {
void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS);
}
namespace emu_impl {
FARSEE_EMU_ENTRY void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS);
}
namespace cuda_impl {
void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS);
}

inline void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS) {
  FARSEE_REQUIRE(dy.data != nullptr && dx.data != nullptr, "resize_bilinear_bwd: null tensor");
  FARSEE_REQUIRE(dx.n() >= 1 && dx.h() >= 1 && dx.w() >= 1 && dx.c() >= 1,
                 "resize_bilinear_bwd: dx has empty shape " << to_string(dx.shape));
  FARSEE_REQUIRE(dy.h() >= 1 && dy.w() >= 1,
                 "resize_bilinear_bwd: dy has empty size " << dy.h() << "x" << dy.w());
  require_shape(dx, "resize_bilinear_bwd: dx", dx.shape);
  require_shape(dy, "resize_bilinear_bwd: dy", Shape4{dx.n(), dy.h(), dy.w(), dx.c()});
  FARSEE_DISPATCH(ctx, resize_bilinear_bwd, ctx, align_corners, dy, dx);
}

}  // namespace farsee
