// splitmix64 (Steele, Lea and Flood 2014): fully specified 64-bit integer mixing, the same bits on
// the host, under emu and on the GPU. The data tools' seeds (tools/data/splitmix.h) and the
// augmentation op's per-pixel noise (kernels/augment.h) both use this one definition.
#pragma once

#include <cstdint>

#include "kernels/core/hd.h"

namespace farsee {

FARSEE_HD uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace farsee
