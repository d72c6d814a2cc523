// SegmenterOptions of the API tests: preset tiny-paper with deterministic random weights (no
// weights file), on `executor` at height x width.
#pragma once

#include <cstdint>

#include "net/api/farsee/farsee.h"

namespace farsee::test {

inline SegmenterOptions tiny_segmenter(const char* executor, int height, int width, int64_t seed) {
  SegmenterOptions o;
  o.preset = "tiny-paper";
  o.random_seed = seed;
  o.input_height = height;
  o.input_width = width;
  o.executor = executor;
  return o;
}

}  // namespace farsee::test
