// Data parallelism's communicator (DESIGN.md section 10.2): what the trainer asks of the other
// ranks. net/ knows only this interface; the MPI implementation lives with the program
// (tools/train/distributed.h), so the library, its tests and a plain farsee-train need no MPI.
//
// Every reduction is deterministic: the result is a function of the ranks' inputs only, never of
// timing or message sizes, and bitwise the same on every rank. all_reduce_sum adds the ranks'
// values in rank order (((x0 + x1) + x2) + ...), one element at a time (sum_in_rank_order), as a
// reduce-scatter by rank order then an all-gather; so N ranks of the same run reproduce bitwise.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace farsee::net {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks on its machine (the GPU it would use).
  virtual int local_rank() const = 0;
  // In place, over `count` elements of every rank (the same count everywhere): the sum in rank
  // order. `what` names the reduction in a hang or error report.
  virtual void all_reduce_sum(float* data, int64_t count, const char* what) = 0;
  virtual void all_reduce_sum(double* data, int64_t count, const char* what) = 0;
  virtual void all_reduce_sum(int64_t* data, int64_t count, const char* what) = 0;
  // Rank `root`'s bytes into every rank's `data`.
  virtual void broadcast(void* data, int64_t bytes, int root, const char* what) = 0;
  // Every rank's value, in rank order.
  virtual std::vector<uint64_t> all_gather(uint64_t value, const char* what) = 0;
};

// A world of one: every collective is the identity (no copies, no MPI).
std::unique_ptr<Collective> single_process_collective();

// dst[i] = ((parts[0][i] + parts[1][i]) + ...) for i < count: the rank-order sum every
// implementation uses (T = float, double, int64_t).
template <typename T>
void sum_in_rank_order(const std::vector<const T*>& parts, int64_t count, T* dst) {
  for (int64_t i = 0; i < count; ++i) {
    T s = parts[0][i];
    for (size_t r = 1; r < parts.size(); ++r) s += parts[r][i];
    dst[i] = s;
  }
}

// Every rank's `value` equals rank 0's, else an error (thrown on every rank, so all of them stop)
// naming `what` and the ranks that differ: the start-up check of options and data.
void require_same_on_every_rank(Collective& comm, uint64_t value, const std::string& what);

}  // namespace farsee::net
