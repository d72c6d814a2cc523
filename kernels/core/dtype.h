// Storage element types. Accumulation is always fp32; these name only what sits in memory.
#pragma once

#include <cstddef>
#include <string>

namespace farsee {

enum class DType { F32, F16 };

inline size_t dtype_size(DType t) {
  return t == DType::F32 ? 4 : 2;
}
inline const char* dtype_name(DType t) {
  return t == DType::F32 ? "fp32" : "fp16";
}

}  // namespace farsee
