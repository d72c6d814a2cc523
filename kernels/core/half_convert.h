// Host-side fp16/bf16 <-> fp32 conversion on raw bits (round to nearest even, like __float2half_rn
// and __float2bfloat16_rn). Used by weight loading, tests and the reference executor, which never
// see the CUDA half types.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/core/dtype.h"

namespace farsee {

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400u));
      bits = sign | uint32_t(127 - 15 - e) << 23 | ((mant & 0x3ffu) << 13);
    }
  } else {
    bits = sign | (exp + 112) << 23 | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                                  // subnormal or zero in fp16
    if (abs < 0x33000000u) return sign;                     // < 2^-25: rounds to 0
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const int shift = int(126 - e);  // puts the fp16 subnormal's last bit at bit 0
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    uint32_t q = m >> shift;
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return uint16_t(sign | q);
  }
  uint32_t q = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

inline float bf16_bits_to_float(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}

// Rounds an fp32 value through fp16 (what storing it as fp16 does).
inline float round_to_half(float f) {
  return half_bits_to_float(float_to_half_bits(f));
}

// Element i of host storage of type `dtype`, as float; and its write (fp16 rounds to nearest
// even). The one place host code turns fp32/fp16 storage into floats and back.
inline float read_element(const void* data, DType dtype, int64_t i) {
  if (dtype == DType::F32) return static_cast<const float*>(data)[i];
  return half_bits_to_float(static_cast<const uint16_t*>(data)[i]);
}
inline void write_element(void* data, DType dtype, int64_t i, float value) {
  if (dtype == DType::F32) {
    static_cast<float*>(data)[i] = value;
  } else {
    static_cast<uint16_t*>(data)[i] = float_to_half_bits(value);
  }
}

}  // namespace farsee
