// Host stand-ins for the CUDA toolkit headers the kernels need (cuda_fp16.h, cuda_bf16.h,
// vector_types.h), for machines without a CUDA toolkit: there the emu and reference executors are
// still built and tested. Arithmetic goes through fp32 with round-to-nearest-even on every store,
// which is what CUDA's host fallbacks do; conversions use kernels/core/half_convert.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/half_convert.h"

// ---- vector types ----
struct uint3 {
  unsigned x, y, z;
};
struct int2 {
  int x, y;
};
struct int4 {
  int x, y, z, w;
};
struct uint2 {
  unsigned x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
inline float2 make_float2(float x, float y) {
  return float2{x, y};
}
inline float4 make_float4(float x, float y, float z, float w) {
  return float4{x, y, z, w};
}
inline int4 make_int4(int x, int y, int z, int w) {
  return int4{x, y, z, w};
}
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return uint4{x, y, z, w};
}
inline uint2 make_uint2(unsigned x, unsigned y) {
  return uint2{x, y};
}

// ---- fp16 ----
struct __half_raw {
  unsigned short x;
};
struct alignas(2) __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(farsee::float_to_half_bits(f)) {}
  __half(double f) : __half(float(f)) {}
  __half(int i) : __half(float(i)) {}
  __half(__half_raw r) : __x(r.x) {}
  operator float() const { return farsee::half_bits_to_float(__x); }
  operator __half_raw() const { return __half_raw{__x}; }
};
struct alignas(4) __half2 {
  __half x, y;
};
inline __half __float2half(float f) {
  return __half(f);
}
inline __half __float2half_rn(float f) {
  return __half(f);
}
inline float __half2float(__half h) {
  return float(h);
}
inline __half2 __floats2half2_rn(float a, float b) {
  return __half2{__half(a), __half(b)};
}
inline __half2 __float2half2_rn(float a) {
  return __half2{__half(a), __half(a)};
}
inline __half2 __float22half2_rn(float2 f) {
  return __floats2half2_rn(f.x, f.y);
}
inline float2 __half22float2(__half2 h) {
  return float2{float(h.x), float(h.y)};
}
inline __half2 __halves2half2(__half a, __half b) {
  return __half2{a, b};
}
inline __half __low2half(__half2 h) {
  return h.x;
}
inline __half __high2half(__half2 h) {
  return h.y;
}
inline float __low2float(__half2 h) {
  return float(h.x);
}
inline float __high2float(__half2 h) {
  return float(h.y);
}
inline unsigned short __half_as_ushort(__half h) {
  return h.__x;
}
inline __half __ushort_as_half(unsigned short u) {
  return __half(__half_raw{u});
}
inline __half __hadd(__half a, __half b) {
  return __half(float(a) + float(b));
}
inline __half __hsub(__half a, __half b) {
  return __half(float(a) - float(b));
}
inline __half __hmul(__half a, __half b) {
  return __half(float(a) * float(b));
}
inline __half __hdiv(__half a, __half b) {
  return __half(float(a) / float(b));
}
inline __half __hneg(__half a) {
  return __half(-float(a));
}
inline __half __habs(__half a) {
  return __half(std::fabs(float(a)));
}
inline bool __hisnan(__half a) {
  return std::isnan(float(a));
}
inline __half __hmax(__half a, __half b) {
  return float(a) >= float(b) || __hisnan(b) ? a : b;
}
inline __half __hmin(__half a, __half b) {
  return float(a) <= float(b) || __hisnan(b) ? a : b;
}
inline bool __hgt(__half a, __half b) {
  return float(a) > float(b);
}
inline bool __hlt(__half a, __half b) {
  return float(a) < float(b);
}
inline bool __hge(__half a, __half b) {
  return float(a) >= float(b);
}
inline bool __hle(__half a, __half b) {
  return float(a) <= float(b);
}
inline bool __heq(__half a, __half b) {
  return float(a) == float(b);
}
inline __half2 __hadd2(__half2 a, __half2 b) {
  return {__hadd(a.x, b.x), __hadd(a.y, b.y)};
}
inline __half2 __hmul2(__half2 a, __half2 b) {
  return {__hmul(a.x, b.x), __hmul(a.y, b.y)};
}
inline __half2 __hmax2(__half2 a, __half2 b) {
  return {__hmax(a.x, b.x), __hmax(a.y, b.y)};
}
inline __half operator+(__half a, __half b) {
  return __hadd(a, b);
}
inline __half operator-(__half a, __half b) {
  return __hsub(a, b);
}
inline __half operator*(__half a, __half b) {
  return __hmul(a, b);
}
inline __half operator/(__half a, __half b) {
  return __hdiv(a, b);
}
inline __half operator-(__half a) {
  return __hneg(a);
}
inline bool operator>(__half a, __half b) {
  return __hgt(a, b);
}
inline bool operator<(__half a, __half b) {
  return __hlt(a, b);
}
inline bool operator>=(__half a, __half b) {
  return __hge(a, b);
}
inline bool operator<=(__half a, __half b) {
  return __hle(a, b);
}
inline bool operator==(__half a, __half b) {
  return __heq(a, b);
}
inline bool operator!=(__half a, __half b) {
  return !__heq(a, b);
}

// ---- bf16 ----
struct alignas(2) __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(farsee::float_to_bf16_bits(f)) {}
  operator float() const { return farsee::bf16_bits_to_float(__x); }
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
inline __nv_bfloat16 __float2bfloat16(float f) {
  return __nv_bfloat16(f);
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  return __nv_bfloat16(f);
}
inline float __bfloat162float(__nv_bfloat16 b) {
  return float(b);
}
