// Element access for the reference executor: reads and writes fp32 or fp16 tensor storage as
// float, so every reference op handles both storage types with one loop (fp16 stores round to
// nearest even, as the kernels do).
#pragma once

#include <cstdint>

#include "kernels/core/half_convert.h"
#include "kernels/core/tensor.h"

namespace farsee::reference {

inline float load(const TensorView& v, int64_t offset) {
  return read_element(v.data, v.dtype, offset);
}

inline void store(const TensorView& v, int64_t offset, float value) {
  write_element(v.data, v.dtype, offset, value);
}

inline float at(const TensorView& v, int n, int y, int x, int c) {
  return load(v, v.offset(n, y, x, c));
}
inline void set(const TensorView& v, int n, int y, int x, int c, float value) {
  store(v, v.offset(n, y, x, c), value);
}

}  // namespace farsee::reference
