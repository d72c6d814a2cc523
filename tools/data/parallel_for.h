// parallel_for(count, jobs, body): body(i, thread) for every i in [0, count) on `jobs` threads
// (thread 0 is the caller), items handed out in order from a shared counter; the first exception
// stops the hand-out and is rethrown to the caller once every thread has finished. For the
// programs' per-file work (scene generation, the colour baseline); results must not depend on
// which thread ran an item.
#pragma once

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace farsee::tools {

template <typename F>
void parallel_for(int count, int jobs, F&& body) {
  std::atomic<int> next{0};
  std::mutex mutex;
  std::exception_ptr error;
  const auto work = [&](int thread) {
    for (int i = next++; i < count; i = next++) {
      try {
        body(i, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next = count;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < std::min(jobs, count); ++t) threads.emplace_back(work, t);
  work(0);
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace farsee::tools
