// Storage element types. Accumulation is always fp32; these name only what sits in memory.
// Precision: what a network, trainer or benchmark computes in (storage + conv math), and the
// TF32 rounding of conv operands (DESIGN.md section 11).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/core/hd.h"

namespace farsee {

enum class DType { F32, F16 };

inline size_t dtype_size(DType t) {
  return t == DType::F32 ? 4 : 2;
}
inline const char* dtype_name(DType t) {
  return t == DType::F32 ? "fp32" : "fp16";
}

// fp32: strict fp32 everywhere (SIMT FFMA convs). tf32: fp32 storage, conv operands rounded to
// TF32 and multiplied on tensor cores with fp32 accumulation (PyTorch's default for fp32 convs,
// allow_tf32 = True); every other op strict fp32. fp16: fp16 storage (tensor-core convs).
enum class Precision { F32, TF32, F16 };

inline DType storage_dtype(Precision p) {
  return p == Precision::F16 ? DType::F16 : DType::F32;
}
inline const char* precision_name(Precision p) {
  return p == Precision::F16 ? "fp16" : p == Precision::TF32 ? "tf32" : "fp32";
}
// The precision whose storage is `t` and whose convs are strict (fp32) or tensor-core (fp16).
inline Precision precision_of(DType t) {
  return t == DType::F16 ? Precision::F16 : Precision::F32;
}

// x rounded to TF32 (8-bit exponent, 10 explicit mantissa bits) as cvt.rna.tf32.f32 does: to
// nearest, ties away from zero (adding half a TF32 ulp, 2^12 in the fp32 bit pattern, carries
// into the exponent where it must, up to infinity), the 13 low mantissa bits cleared. Infinities
// pass; a NaN stays a (quiet) NaN. Relative error <= 2^-11.
FARSEE_HD float round_to_tf32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) {
    if ((u & 0x007fffffu) != 0) u |= 0x00400000u;  // NaN: keep a mantissa bit above the cut
  } else {
    u += 0x00001000u;
  }
  u &= 0xffffe000u;
  float r;
  memcpy(&r, &u, 4);
  return r;
}

}  // namespace farsee
