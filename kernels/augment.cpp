// Host side of the augmentation op (kernels/augment.h): the check of a batch's sample extents.
#include "kernels/augment.h"

namespace farsee {

void check_augment_samples(const AugmentSample* host_samples, int n, int64_t image_bytes,
                           int64_t label_bytes) {
  FARSEE_REQUIRE(host_samples != nullptr || n == 0, "augment_fwd: null sample parameters");
  for (int i = 0; i < n; ++i) {
    const AugmentSample& s = host_samples[i];
    FARSEE_REQUIRE(augment_sample_inside(s, image_bytes, label_bytes),
                   "augment_fwd: sample "
                       << i << " (" << s.src_h << "x" << s.src_w << ", image at byte "
                       << s.image_offset << ", labels at byte " << s.label_offset
                       << ") reaches outside the batch's " << image_bytes << " image bytes / "
                       << label_bytes << " label bytes");
  }
}

}  // namespace farsee
