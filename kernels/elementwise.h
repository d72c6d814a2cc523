// Generic helpers of the training graph:
//   fill_zero(data, bytes): zeroes `bytes` bytes of executor memory (parameter-gradient arenas,
//     accumulators); all-zero bits are +0 in fp32 and fp16.
#pragma once

#include <cstddef>

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

#define FARSEE_FILL_ZERO_ARGS const Context &ctx, void *data, size_t bytes

namespace reference {
void fill_zero(FARSEE_FILL_ZERO_ARGS);
}  // namespace reference
namespace cpu_impl {
void fill_zero(FARSEE_FILL_ZERO_ARGS);
}  // namespace cpu_impl
namespace emu_impl {
FARSEE_EMU_ENTRY void fill_zero(FARSEE_FILL_ZERO_ARGS);
}  // namespace emu_impl
namespace cuda_impl {
void fill_zero(FARSEE_FILL_ZERO_ARGS);
}  // namespace cuda_impl

inline void fill_zero(FARSEE_FILL_ZERO_ARGS) {
  if (bytes == 0) return;
  FARSEE_REQUIRE(data != nullptr, "fill_zero: data is null (" << bytes << " bytes)");
  FARSEE_DISPATCH(ctx, fill_zero, ctx, data, bytes);
}

}  // namespace farsee
