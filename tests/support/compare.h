// Comparison helpers for kernel tests: every failure reports the first mismatching index, the
// worst error and its index; NaN or Inf in the result (e.g. an unwritten, poisoned element) is a
// failure, never a pass.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <vector>

namespace farsee::test {

// |got - want| <= atol + rtol * |want| elementwise.
inline ::testing::AssertionResult all_close(const std::vector<float>& got,
                                            const std::vector<float>& want, double atol,
                                            double rtol = 0.0) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << "size mismatch: got " << got.size() << " elements, want " << want.size();
  }
  int64_t first_bad = -1, worst = -1, bad_count = 0;
  double max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], w = want[i];
    double err = std::fabs(g - w);
    bool bad = !std::isfinite(g) || !(err <= atol + rtol * std::fabs(w));
    if (!std::isfinite(g)) err = INFINITY;
    if (err > max_err || (worst < 0 && bad)) {
      max_err = err;
      worst = int64_t(i);
    }
    if (bad) {
      ++bad_count;
      if (first_bad < 0) first_bad = int64_t(i);
    }
  }
  if (first_bad < 0) return ::testing::AssertionSuccess();
  std::ostringstream o;
  o << bad_count << " of " << got.size() << " elements differ (atol " << atol << ", rtol " << rtol
    << "); first at index " << first_bad << ": got " << got[first_bad] << ", want "
    << want[first_bad] << "; max error " << max_err << " at index " << worst << " (got "
    << got[worst] << ", want " << want[worst] << ")";
  return ::testing::AssertionFailure() << o.str();
}

template <typename T>
::testing::AssertionResult all_equal(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << "size mismatch: got " << got.size() << ", want " << want.size();
  }
  int64_t first_bad = -1, bad_count = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(got[i] == want[i])) {  // NaN != NaN: fails
      ++bad_count;
      if (first_bad < 0) first_bad = int64_t(i);
    }
  }
  if (first_bad < 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad_count << " of " << got.size() << " elements differ; first at index " << first_bad
         << ": got " << +got[first_bad] << ", want " << +want[first_bad];
}

}  // namespace farsee::test
