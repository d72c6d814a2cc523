// Two data-parallel ranks in one process, for tests: two threads joined by an in-process
// net::Collective that sums in rank order, like the MPI one (tools/train/distributed.h). Each
// collective copies this rank's buffer in, waits for the other, sums in rank order and waits
// again (so no slot is overwritten before both have read).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "net/distributed.h"

namespace farsee::test {

struct TwoRanks {
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0, generation = 0;
  std::vector<char> slot[2];
  void barrier() {
    std::unique_lock<std::mutex> lock(m);
    const int g = generation;
    if (++arrived == 2) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != g; });
    }
  }
};

class ThreadRank final : public net::Collective {
 public:
  ThreadRank(TwoRanks& s, int rank) : s_(s), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  int local_rank() const override { return rank_; }
  void all_reduce_sum(float* d, int64_t n, const char*) override { reduce(d, n); }
  void all_reduce_sum(double* d, int64_t n, const char*) override { reduce(d, n); }
  void all_reduce_sum(int64_t* d, int64_t n, const char*) override { reduce(d, n); }
  void broadcast(void*, int64_t, int, const char*) override {}
  std::vector<uint64_t> all_gather(uint64_t v, const char*) override { return {v, v}; }

 private:
  template <typename T>
  void reduce(T* d, int64_t n) {
    s_.slot[rank_].assign(reinterpret_cast<char*>(d), reinterpret_cast<char*>(d + n));
    s_.barrier();
    net::sum_in_rank_order<T>({reinterpret_cast<const T*>(s_.slot[0].data()),
                               reinterpret_cast<const T*>(s_.slot[1].data())},
                              n, d);
    s_.barrier();
  }
  TwoRanks& s_;
  int rank_;
};

}  // namespace farsee::test
