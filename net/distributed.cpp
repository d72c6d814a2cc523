#include "net/distributed.h"

#include <sstream>

#include "kernels/core/check.h"

namespace farsee::net {
namespace {

class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  void all_reduce_sum(float*, int64_t, const char*) override {}
  void all_reduce_sum(double*, int64_t, const char*) override {}
  void all_reduce_sum(int64_t*, int64_t, const char*) override {}
  void broadcast(void*, int64_t, int, const char*) override {}
  std::vector<uint64_t> all_gather(uint64_t value, const char*) override { return {value}; }
};

}  // namespace

std::unique_ptr<Collective> single_process_collective() {
  return std::make_unique<SingleProcess>();
}

void require_same_on_every_rank(Collective& comm, uint64_t value, const std::string& what) {
  const std::vector<uint64_t> all = comm.all_gather(value, what.c_str());
  std::ostringstream differ;
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] != all[0]) differ << (differ.tellp() > 0 ? ", " : "") << r;
  }
  FARSEE_REQUIRE(differ.tellp() == 0, "rank " << comm.rank() << ": the " << what << " of rank(s) "
                                              << differ.str()
                                              << " differ from rank 0's: start every rank with "
                                                 "the same options, data and binary");
}

}  // namespace farsee::net
