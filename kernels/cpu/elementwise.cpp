// cpu executor, elementwise: forwards to the reference implementation (kernels/reference/), which
// is a small share of the time here (per-op profile: bench/RESULTS.md, "CPU executor").
#include "kernels/elementwise.h"

namespace farsee::cpu_impl {

void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS) {
  reference::tensor_add_inplace(ctx, acc, x);
}

void fill_zero(FARSEE_FILL_ZERO_ARGS) {
  reference::fill_zero(ctx, data, bytes);
}

}  // namespace farsee::cpu_impl
