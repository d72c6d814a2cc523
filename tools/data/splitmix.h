// splitmix64 (Steele, Lea and Flood 2014), the seed mixer of the data tools (shuffling,
// augmentation draws, synthetic scenes): fully specified integer arithmetic, so a seed gives the
// same data on every machine.
#pragma once

#include <cstdint>

namespace farsee::tools {

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace farsee::tools
