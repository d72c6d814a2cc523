// cpu executor, elementwise: fill_zero is a memset in 256 KiB chunks over the threads
// (kernels/cpu/parallel.h: zeroing the 12.7M gradients of a training step).
#include "kernels/elementwise.h"

#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {

void fill_zero(FARSEE_FILL_ZERO_ARGS) {
  (void)ctx;
  zero_bytes(data, bytes);
}

}  // namespace farsee::cpu_impl
