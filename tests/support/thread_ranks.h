// Two data-parallel ranks in one process, for tests: two threads joined by an in-process
// net::Collective that sums in rank order, like the MPI one (tools/train/distributed.h). Each
// collective copies this rank's buffer in, waits for the other, sums in rank order and waits
// again (so no slot is overwritten before both have read). run_two_ranks runs a function as both.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/emu/emu_control.h"
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

// Runs rank(comm) as ranks 0 and 1 at once (rank 1 on a second thread), joined by a ThreadRank
// pair. emu's asynchronous stream queues are not safe with two host threads queueing at once
// (measured under FARSEE_EMU_ASYNC=1, ctest's setting: wrong results or heap corruption in about 1
// run in 3), so the ranks run with emu's queueing off (each operation at once); the mode is
// restored afterwards.
inline void run_two_ranks(const std::function<void(net::Collective&)>& rank) {
  struct EmuSyncScope {
    bool was_async = emu::async_enabled();
    EmuSyncScope() { emu::set_async(false); }
    ~EmuSyncScope() { emu::set_async(was_async); }
  } sync_scope;
  TwoRanks shared;
  auto run = [&](int r) {
    ThreadRank comm(shared, r);
    rank(comm);
  };
  std::thread other(run, 1);
  run(0);
  other.join();
}

}  // namespace farsee::test
