// Reference unscale and non-finite check (kernels/grad_scaler.h): unscale_element() in order.
// One fp32 multiply per element, as the kernels: compared with them bitwise.
#include "kernels/grad_scaler.h"

namespace farsee::reference {

void grad_unscale_check(const Context&, int64_t count, float* grads, float inv_scale,
                        int32_t* found_inf, const float* inv_scale_in_memory) {
  if (inv_scale_in_memory != nullptr) inv_scale = *inv_scale_in_memory;
  bool any = false;
  for (int64_t i = 0; i < count; ++i) any = unscale_element(grads[i], inv_scale) || any;
  if (any) *found_inf = 1;
}

}  // namespace farsee::reference
