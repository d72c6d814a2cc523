// Elementwise training helpers (kernels/elementwise.h).
//
// fill_zero: the runtime's memset (cudaMemsetAsync on the stream; memset under emu), no kernel.
#include "kernels/core/runtime.h"
#include "kernels/elementwise.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {

void fill_zero(const Context& ctx, void* data, size_t bytes) {
  rt::memset(ctx, data, 0, bytes);
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
