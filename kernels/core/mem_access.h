// Named global/shared memory accessors for kernels (DESIGN.md section 4): ld(p) reads *p, st(p, v)
// writes *p = v. Under nvcc they are the plain dereference; under emu they also report the access
// to the performance counters (kernels/emu/emu_counters.h: width, address; shared or global is
// told by the address), which cost one flag test while counting is off. Kernels use them for
// the memory accesses the counters should see (the conv loaders and epilogues, the memory-bound
// ops); vec.h's packed loads/stores and ptx.h's cp.async/ldmatrix report themselves.
#pragma once

#include "kernels/core/hd.h"

namespace farsee {

template <typename T>
FARSEE_HD T ld(const T* p) {
#if defined(FARSEE_EMU)
  ::emu::count_access(p, int(sizeof(T)), false);
#endif
  return *p;
}

template <typename T>
FARSEE_HD void st(T* p, const T& v) {
#if defined(FARSEE_EMU)
  ::emu::count_access(p, int(sizeof(T)), true);
#endif
  *p = v;
}

}  // namespace farsee
