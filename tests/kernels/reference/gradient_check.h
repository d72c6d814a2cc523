// Central finite-difference gradient checks for the reference backward ops: the derivative of a
// scalar function of fp32 inputs, evaluated in double, compared with an analytic gradient.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <vector>

namespace farsee::test {

struct GradientCheck {
  double h = 1e-2;    // step (the perturbed inputs are the fp32 values nearest x +- h)
  double atol = 0.0;  // |fd - grad| <= atol + rtol * |fd|
  double rtol = 1e-4;
  int64_t stride = 1;           // check every stride-th element (large inputs)
  double* max_error = nullptr;  // worst |fd - grad| seen (for the report)
};

// f(x) -> double; grad[i] = df/dx[i] claimed; skip[i] (optional) excludes an element (kinks,
// ties). The difference quotient divides by the actual fp32 step, so rounding of x +- h to fp32
// costs nothing.
inline ::testing::AssertionResult check_gradient(
    const std::function<double(const std::vector<float>&)>& f, std::vector<float> x,
    const std::vector<float>& grad, const GradientCheck& opt, const std::vector<bool>& skip = {}) {
  if (grad.size() != x.size()) {
    return ::testing::AssertionFailure()
           << "gradient has " << grad.size() << " elements, input " << x.size();
  }
  int64_t first_bad = -1, bad = 0, worst = -1, checked = 0;
  double worst_err = 0.0, first_fd = 0.0;
  for (size_t i = 0; i < x.size(); i += size_t(opt.stride)) {
    if (!skip.empty() && skip[i]) continue;
    const float x0 = x[i];
    const float xp = float(double(x0) + opt.h), xm = float(double(x0) - opt.h);
    x[i] = xp;
    const double fp = f(x);
    x[i] = xm;
    const double fm = f(x);
    x[i] = x0;
    const double fd = (fp - fm) / (double(xp) - double(xm));
    const double err = std::fabs(fd - double(grad[i]));
    ++checked;
    if (!(err <= worst_err)) {
      worst_err = err;
      worst = int64_t(i);
    }
    if (!(err <= opt.atol + opt.rtol * std::fabs(fd))) {
      if (first_bad < 0) {
        first_bad = int64_t(i);
        first_fd = fd;
      }
      ++bad;
    }
  }
  if (opt.max_error) *opt.max_error = worst_err;
  if (checked == 0) return ::testing::AssertionFailure() << "no element checked";
  if (first_bad < 0) return ::testing::AssertionSuccess();
  std::ostringstream o;
  o << bad << " of " << checked << " gradient elements differ from the finite difference (atol "
    << opt.atol << ", rtol " << opt.rtol << "); first at " << first_bad << ": fd " << first_fd
    << ", grad " << grad[first_bad] << "; worst error " << worst_err << " at " << worst;
  return ::testing::AssertionFailure() << o.str();
}

}  // namespace farsee::test
