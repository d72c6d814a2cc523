// Numbers from untrusted JSON (configs, checkpoints, weights metadata; DESIGN.md section 8.1).
// nlohmann's get<int>() / get<float>() convert without a check: a double such as 1e40 cast to int
// (or 1e300 to float) is undefined behaviour, and a wide integer wraps silently. These accept only
// a value that fits, and name `what` otherwise.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "kernels/core/check.h"

namespace farsee::net {

// What a bad value looked like, cut short (a fuzzer's number can be thousands of digits).
inline std::string json_excerpt(const nlohmann::json& v) {
  const std::string text = v.dump();
  return text.size() <= 40 ? text : text.substr(0, 40) + "...";
}

// A whole number in Int's range: an integer, or a float with no fractional part that fits.
template <typename Int>
Int json_integer(const nlohmann::json& v, const std::string& what) {
  static_assert(std::is_integral_v<Int> && !std::is_same_v<Int, bool>);
  constexpr auto lo = std::numeric_limits<Int>::min();
  constexpr auto hi = std::numeric_limits<Int>::max();
  bool fits = false;
  Int value = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    fits = u <= uint64_t(hi);
    if (fits) value = Int(u);
  } else if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    fits = s >= int64_t(lo) && (s < 0 || uint64_t(s) <= uint64_t(hi));
    if (fits) value = Int(s);
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    // [lo, hi + 1) as doubles: both bounds are exact powers of two (or 0) for every Int.
    fits = std::trunc(d) == d && d >= double(lo) && d < 2.0 * (double(hi / 2) + 1);
    if (fits) value = Int(d);
  }
  FARSEE_REQUIRE(fits, what << ": expected a whole number in [" << +lo << ", " << +hi << "], got "
                            << json_excerpt(v));
  return value;
}

// A finite number representable as Float (no overflow to infinity).
template <typename Float>
Float json_real(const nlohmann::json& v, const std::string& what) {
  static_assert(std::is_floating_point_v<Float>);
  const bool number = v.is_number();
  const double d = number ? v.get<double>() : 0.0;
  FARSEE_REQUIRE(
      number && std::isfinite(d) && std::fabs(d) <= double(std::numeric_limits<Float>::max()),
      what << ": expected a finite number, got " << json_excerpt(v));
  return Float(d);
}

}  // namespace farsee::net
