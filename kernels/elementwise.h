// Generic elementwise helpers of the training graph:
//   tensor_add_inplace(acc, x): acc += x over NHWC views (gradient accumulation where a tensor
//     feeds several consumers). Same shape and storage dtype (fp32 or fp16), channel slices
//     allowed; computed in fp32 and rounded once to the storage dtype. acc must not partially
//     overlap x.
//   fill_zero(data, bytes): zeroes `bytes` bytes of executor memory (parameter-gradient arenas,
//     accumulators); all-zero bits are +0 in fp32 and fp16.
#pragma once

#include <cstddef>

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

#define FARSEE_TENSOR_ADD_INPLACE_ARGS \
  const Context &ctx, const TensorView &acc, const TensorView &x
#define FARSEE_FILL_ZERO_ARGS const Context &ctx, void *data, size_t bytes

namespace reference {
void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS);
}  // namespace reference
namespace cpu_impl {
void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS);
}  // namespace cpu_impl
namespace emu_impl {
FARSEE_EMU_ENTRY void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS);
}  // namespace emu_impl
namespace cuda_impl {
void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS);
}  // namespace cuda_impl

inline void tensor_add_inplace(FARSEE_TENSOR_ADD_INPLACE_ARGS) {
  FARSEE_REQUIRE(acc.data != nullptr && x.data != nullptr, "tensor_add_inplace: null view");
  require_dtype(x, "tensor_add_inplace: x", acc.dtype);
  require_shape(x, "tensor_add_inplace: x", acc.shape);
  if (acc.shape.elements() == 0) return;
  FARSEE_DISPATCH(ctx, tensor_add_inplace, ctx, acc, x);
}

FARSEE_DECLARE_OP(fill_zero, FARSEE_FILL_ZERO_ARGS);
inline void fill_zero(FARSEE_FILL_ZERO_ARGS) {
  if (bytes == 0) return;
  FARSEE_REQUIRE(data != nullptr, "fill_zero: data is null (" << bytes << " bytes)");
  FARSEE_DISPATCH(ctx, fill_zero, ctx, data, bytes);
}

}  // namespace farsee
