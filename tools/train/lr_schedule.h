// farsee-train's learning-rate schedules (--lr-schedule, --warmup-steps, --lr-step-size,
// --lr-gamma).
#pragma once

#include <cstdint>
#include <string>

namespace farsee::tools {

// For 0-based step `step` of `total` in 0-based epoch `epoch`: warm-up lr * (step + 1) /
// warmup_steps for step < warmup_steps, then with t = step - warmup, T = total - warmup: constant
// lr; poly lr * (1 - t/T)^0.9; cosine lr * (1 + cos(pi t/T)) / 2; step lr *
// gamma^floor(step / step_size); paper lr * 0.9^floor(epoch / 50).
struct LrSchedule {
  std::string kind = "poly";
  double lr = 0.01;
  int warmup_steps = 0;
  int step_size = 0;
  double gamma = 0.1;
};
double learning_rate(const LrSchedule& s, int64_t step, int64_t total, int64_t epoch);

}  // namespace farsee::tools
