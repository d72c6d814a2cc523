// cpu executor, elementwise: fill_zero is a memset in 256 KiB chunks over the threads
// (kernels/cpu/parallel.h: zeroing the 12.7M gradients of a training step); tensor_add_inplace
// forwards to the reference implementation (not on the net's paths).
#include "kernels/elementwise.h"

#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS) {
  reference::tensor_add_inplace(ctx, acc, x);
}

void fill_zero(FARSEE_FILL_ZERO_ARGS) {
  (void)ctx;
  zero_bytes(data, bytes);
}

}  // namespace farsee::cpu_impl
