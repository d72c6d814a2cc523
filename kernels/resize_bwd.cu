// (work in progress)
#include "kernels/core/launch.h"
#include "kernels/resize_bwd.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {

void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS) {
  FARSEE_REQUIRE(false, "resize_bilinear_bwd: kernel not implemented yet");
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee
