// The cpu executor is fast code for fp32 storage only. Every cpu op given another storage dtype
// (fp16) runs the reference implementation instead: the same host memory and weight layouts, so
// the result is the reference's (correct, not fast).
#pragma once

#include <utility>

#include "kernels/core/dtype.h"

namespace farsee::cpu_impl {

// Not fp32: runs reference_op(args...) and returns true; fp32: returns false, nothing run. Use at
// the top of a cpu op: if (ran_reference_unless_f32(x.dtype, reference::op, ctx, ...)) return;
template <typename... Params, typename... Args>
[[nodiscard]] bool ran_reference_unless_f32(DType storage, void (*reference_op)(Params...),
                                            Args&&... args) {
  if (storage == DType::F32) return false;
  reference_op(std::forward<Args>(args)...);
  return true;
}

}  // namespace farsee::cpu_impl
