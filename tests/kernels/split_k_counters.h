// Split-K tile counters for the conv tests (ConvOptions.tile_counters): zero-filled once, as an
// owner must; after the launches every counter must be zero again (the last CTA of each tile
// resets its own), which all_zero() checks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv_bn_act.h"
#include "kernels/core/runtime.h"
#include "tests/support/executors.h"

namespace farsee::test {

struct SplitKCounters {
  rt::Buffer buffer;
  size_t count = 0;

  // Enough for any tile of a GEMM with M rows and N columns (the smallest tile is 64 x 64).
  SplitKCounters(const Context& c, int64_t M, int N)
      : buffer(c.executor,
               sizeof(int) * size_t(std::max<int64_t>(1, (M + 63) / 64 * ((N + 63) / 64)))),
        count(buffer.bytes() / sizeof(int)) {
    rt::memset(c, buffer.data(), 0, buffer.bytes());
  }
  void attach(ConvOptions& o) const {
    o.tile_counters = buffer.as<int>();
    o.tile_counter_count = count;
  }
  void attach_to(ConvWgradOptions& o) const {
    o.tile_counters = buffer.as<int>();
    o.tile_counter_count = count;
  }
  bool all_zero(const Context& c) const {
    const std::vector<int> v = to_host<int>(c, buffer, count);
    return std::all_of(v.begin(), v.end(), [](int x) { return x == 0; });
  }
};

}  // namespace farsee::test
