// farsee-train's progress output: the per-step line (redrawn in place on a terminal, plain lines
// otherwise), lines of their own (validation, signals), and the step rate and ETA behind it.
#pragma once

#include <cstdint>
#include <string>

namespace farsee::tools {

// printf into a std::string (at most 511 characters).
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// "h:mm:ss" of a non-negative duration; "?" otherwise.
std::string format_duration(double seconds);

class Progress {
 public:
  // Shows every `every`-th step (and the last).
  explicit Progress(int every);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // The progress line after `done` steps (`last`: the final step, always shown).
  void step(int64_t done, bool last, const std::string& text);
  // A line of its own (after the progress line, which is redrawn below it).
  void line(const std::string& text);
  // Ends a progress line left open on the terminal.
  void close();

 private:
  int every_;
  bool tty_, open_ = false;
};

// Mean seconds per step of the steps timed so far. The first step of a process pays one-time
// costs: it is left out of the mean when other steps follow.
class StepRate {
 public:
  StepRate(int64_t start, int64_t total) : start_(start), total_(total) {}
  // Records 0-based step `step`, which took `seconds`; returns the mean seconds per step.
  double add(int64_t step, double seconds);

 private:
  int64_t start_, total_;
  double seconds_ = 0;
  int64_t timed_ = 0;
};

// The progress line of one step: "step 3/10 epoch 0.60 loss 2.9444439 lr 0.01 img/s 12.50 ETA
// 0:00:05"; fp16 runs add the loss scale and the skipped steps after the lr.
struct StepStatus {
  int64_t done = 0, total = 0;
  double epoch = 0;
  float loss = 0, lr = 0;
  bool fp16 = false;
  float scale = 1;
  int64_t skipped_steps = 0;
  double images_per_s = 0, seconds_per_step = 0;
};
std::string progress_line(const StepStatus& s);

}  // namespace farsee::tools
