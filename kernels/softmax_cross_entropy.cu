// (work in progress)
#include "kernels/core/launch.h"
#include "kernels/softmax_cross_entropy.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {

void softmax_ce_upsample(FARSEE_SOFTMAX_CE_UPSAMPLE_ARGS) {
  FARSEE_REQUIRE(false, "softmax_ce_upsample: kernel not implemented yet");
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
