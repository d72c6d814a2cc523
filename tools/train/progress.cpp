#include "tools/train/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace farsee::tools {

std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = long(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

Progress::Progress(int every) : every_(every), tty_(::isatty(::fileno(stdout)) != 0) {}

Progress::~Progress() {
  close();
}

void Progress::step(int64_t done, bool last, const std::string& text) {
  if (!last && done % every_ != 0) return;
  if (tty_) {
    std::printf("\r%s\033[K", text.c_str());
    open_ = true;
  } else {
    std::printf("%s\n", text.c_str());
  }
  std::fflush(stdout);
}

void Progress::line(const std::string& text) {
  close();
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void Progress::close() {
  if (open_) std::printf("\n");
  open_ = false;
  std::fflush(stdout);
}

double StepRate::add(int64_t step, double seconds) {
  if (step > start_ || total_ - start_ == 1) {
    seconds_ += seconds;
    ++timed_;
  }
  return timed_ ? seconds_ / double(timed_) : seconds;
}

std::string progress_line(const StepStatus& s) {
  const std::string scale = s.fp16 ? format(" scale %g skipped %lld", double(s.scale),
                                            static_cast<long long>(s.skipped_steps))
                                   : "";
  return format("step %lld/%lld epoch %.2f loss %.7f lr %.6g%s img/s %.2f ETA %s",
                static_cast<long long>(s.done), static_cast<long long>(s.total), s.epoch,
                double(s.loss), double(s.lr), scale.c_str(), s.images_per_s,
                format_duration(s.seconds_per_step * double(s.total - s.done)).c_str());
}

}  // namespace farsee::tools
