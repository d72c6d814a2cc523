#include "tools/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "kernels/core/check.h"

namespace farsee::tools {

double learning_rate(const LrSchedule& s, int64_t step, int64_t total, int64_t epoch) {
  if (step < s.warmup_steps) return s.lr * double(step + 1) / double(s.warmup_steps);
  const double t = double(step - s.warmup_steps);
  const double T = double(std::max<int64_t>(total - s.warmup_steps, 1));
  if (s.kind == "poly") return s.lr * std::pow(std::max(0.0, 1.0 - t / T), 0.9);
  if (s.kind == "cosine") return s.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(t / T, 1.0)));
  if (s.kind == "step") {
    FARSEE_REQUIRE(s.step_size > 0, "--lr-schedule step needs --lr-step-size N");
    return s.lr * std::pow(s.gamma, double(step / s.step_size));
  }
  if (s.kind == "paper") return s.lr * std::pow(0.9, double(epoch / 50));
  FARSEE_REQUIRE(s.kind == "constant", "unknown learning-rate schedule '" << s.kind << "'");
  return s.lr;
}

}  // namespace farsee::tools
