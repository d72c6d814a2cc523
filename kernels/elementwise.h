// Generic helpers of the training graph:
//   fill_zero(data, bytes): zeroes `bytes` bytes of executor memory (parameter-gradient arenas,
//     accumulators); all-zero bits are +0 in fp32 and fp16.
#pragma once

#include <cstddef>

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

#define FARSEE_FILL_ZERO_ARGS const Context &ctx, void *data, size_t bytes

FARSEE_DECLARE_OP(fill_zero, FARSEE_FILL_ZERO_ARGS);
inline void fill_zero(FARSEE_FILL_ZERO_ARGS) {
  if (bytes == 0) return;
  FARSEE_REQUIRE(data != nullptr, "fill_zero: data is null (" << bytes << " bytes)");
  FARSEE_DISPATCH(ctx, fill_zero, ctx, data, bytes);
}

}  // namespace farsee
