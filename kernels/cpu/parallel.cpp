// machine_busy (kernels/cpu/parallel.h): whether other processes compete for the cores, from the
// instantaneous runnable count R of /proc/loadavg's "R/T" field (a ~30-byte read, at most every
// 50 ms; the threads of this process count too: two busy OpenMP threads on a 2-core machine read
// 2-3). Decides only whether an op's fixed work items run on the OpenMP threads, never the items.
#include "kernels/cpu/parallel.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

namespace farsee::cpu_impl {

namespace {

// The runnable count R of /proc/loadavg's "R/T" field; -1 if unreadable.
int runnable_now() {
  const int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[128];
  const ssize_t n = ::read(fd, text, sizeof(text) - 1);
  ::close(fd);
  if (n <= 0) return -1;
  text[n] = 0;
  // "0.52 0.58 0.59 3/402 12345": the fourth field.
  const char* p = text;
  for (int field = 0; field < 3; ++field) {
    while (*p != 0 && *p != ' ') ++p;
    while (*p == ' ') ++p;
  }
  char* end = nullptr;
  const long r = std::strtol(p, &end, 10);
  return end != p && *end == '/' ? int(r) : -1;
}

}  // namespace

bool machine_busy() {
  static const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  static std::atomic<int64_t> next_sample_ns{0};
  static std::atomic<bool> busy{false};
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  if (now < next_sample_ns.load(std::memory_order_relaxed)) {
    return busy.load(std::memory_order_relaxed);
  }
  next_sample_ns.store(now + 50'000'000, std::memory_order_relaxed);
  const int r = runnable_now();
  const bool b = r >= 0 && cores > 0 && r > cores + 1;
  busy.store(b, std::memory_order_relaxed);
  return b;
}

}  // namespace farsee::cpu_impl
