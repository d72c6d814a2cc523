// Storage element <-> fp32 conversion and packed vector loads/stores, for kernels (CUDA and emu).
//
// Storage types are float and __half (kernels/core/dtype.h); arithmetic is always fp32.
//   to_float(x)              storage element -> fp32 (exact)
//   from_float<T>(v)         fp32 -> storage element (fp16: round to nearest even, as the
//   reference) Pack<T, V>               V consecutive elements, aligned to their size, so one
//   load/store of a
//                            Pack is one vector memory instruction (16 bytes: Pack<float, 4>,
//                            Pack<__half, 8>). V = 1 is the scalar fallback.
//   load_as_float<V>(p, out) V elements at p (aligned to V * sizeof(T)) -> fp32 registers
//   store_from_float<V>(p, v) fp32 registers -> V elements at p (same alignment)
// Under emu both report one access of V * sizeof(T) bytes to the performance counters
// (kernels/emu/emu_counters.h). The caller guarantees the alignment: host code picks V with
// vector_width() in kernels/core/nhwc_index.h, which checks channel count, pixel stride and base
// address.
#pragma once

#include <cuda_fp16.h>

#include "kernels/core/hd.h"

namespace farsee {

FARSEE_HD float to_float(float v) {
  return v;
}
FARSEE_HD float to_float(__half v) {
  return __half2float(v);
}

template <typename T>
struct StorageCast;
template <>
struct StorageCast<float> {
  static FARSEE_HD float from_float(float v) { return v; }
};
template <>
struct StorageCast<__half> {
  static FARSEE_HD __half from_float(float v) { return __float2half_rn(v); }
};
template <typename T>
FARSEE_HD T from_float(float v) {
  return StorageCast<T>::from_float(v);
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
FARSEE_HD void load_as_float(const T* p, float (&out)[V]) {
#if defined(FARSEE_EMU)
  ::emu::count_access_call(p, int(sizeof(Pack<T, V>)), false);  // emu.h: a call, not a branch
#endif
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#ifdef __CUDACC__  // host code includes this header too, and g++ has no `#pragma unroll`
#pragma unroll
#endif
  for (int i = 0; i < V; ++i) out[i] = to_float(pack.v[i]);
}

template <int V, typename T>
FARSEE_HD void store_from_float(T* p, const float (&values)[V]) {
  Pack<T, V> pack;
#ifdef __CUDACC__
#pragma unroll
#endif
  for (int i = 0; i < V; ++i) pack.v[i] = from_float<T>(values[i]);
#if defined(FARSEE_EMU)
  ::emu::count_access_call(p, int(sizeof(Pack<T, V>)), true);
#endif
  *reinterpret_cast<Pack<T, V>*>(p) = pack;
}

}  // namespace farsee
