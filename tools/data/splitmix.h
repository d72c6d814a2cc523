// splitmix64 (Steele, Lea and Flood 2014), the seed mixer of the data tools (shuffling,
// augmentation draws, synthetic scenes): fully specified integer arithmetic, so a seed gives the
// same data on every machine. One definition (kernels/core/splitmix.h), shared with the
// augmentation op's noise.
#pragma once

#include "kernels/core/splitmix.h"

namespace farsee::tools {

using ::farsee::splitmix64;

}  // namespace farsee::tools
