// net/sync_batchnorm: synchronised BN over 2 ranks (two threads joined by an in-process collective
// that sums in rank order, like the MPI one) equals the reference batchnorm_train_fwd / _bwd over
// the whole batch: outputs, saved and running statistics, dx, and dgamma / dbeta summed over the
// ranks. Also sum_in_rank_order and the world of one. Host only (runs under the sanitizers).
#include "net/sync_batchnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "kernels/batchnorm.h"

namespace farsee::net {
namespace {

// Two ranks in one process: each collective copies this rank's buffer in, waits for the other,
// sums in rank order, waits again (so no slot is overwritten before both have read).
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

class ThreadRank final : public Collective {
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
    sum_in_rank_order<T>({reinterpret_cast<const T*>(s_.slot[0].data()),
                          reinterpret_cast<const T*>(s_.slot[1].data())},
                         n, d);
    s_.barrier();
  }
  TwoRanks& s_;
  int rank_;
};

std::vector<float> randoms(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(g);
  return v;
}

// max |a - b| / max |b|, and the first index beyond `tol` (-1: none).
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol,
                  const char* what) {
  double err = 0, scale = 0;
  int64_t first = -1;
  for (size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::fabs(double(b[i])));
  for (size_t i = 0; i < b.size(); ++i) {
    const double e = std::fabs(double(a[i]) - double(b[i])) / scale;
    if (!(e <= tol) && first < 0) first = int64_t(i);
    if (!(e <= err)) err = e;
  }
  EXPECT_LE(err, tol) << what << ": first mismatch at " << first;
}

TEST(SyncBatchNorm, TwoRanksEqualTheReferenceOnTheWholeBatch) {
  const int C = 5, H = 3, W = 4, N = 4;  // each rank: 2 images
  const Shape4 whole{N, H, W, C}, half{N / 2, H, W, C};
  const size_t total = size_t(whole.elements()), part = total / 2;
  const std::vector<float> x = randoms(total, 1, -2.f, 3.f), res = randoms(total, 2, -1.f, 1.f),
                           dy = randoms(total, 3, -1.f, 1.f), gamma = randoms(C, 4, 0.5f, 1.5f),
                           beta = randoms(C, 5, -0.5f, 0.5f);
  // The reference over the whole batch.
  const Context ref{Executor::Reference};
  std::vector<float> y(total), mean(C), invstd(C), rm(C, 0.1f), rv(C, 0.9f), dx(total), dres(total),
      dg(C, 0.f), db(C, 0.f), ws(batchnorm_workspace_bytes(whole) / 4 + 1);
  const BatchNormTrainArgs args;
  auto view = [](const float* p, Shape4 s) {
    return make_view(const_cast<float*>(p), DType::F32, s);
  };
  batchnorm_train_fwd(ref, view(x.data(), whole), gamma.data(), beta.data(),
                      view(res.data(), whole), true, view(y.data(), whole), mean.data(),
                      invstd.data(), rm.data(), rv.data(), args, ws.data(), ws.size() * 4);
  batchnorm_train_bwd(ref, view(x.data(), whole), view(y.data(), whole), true,
                      view(dy.data(), whole), mean.data(), invstd.data(), gamma.data(),
                      view(dx.data(), whole), view(dres.data(), whole), false, dg.data(), db.data(),
                      ws.data(), ws.size() * 4);
  // Two ranks, rank r on images [2r, 2r + 2).
  TwoRanks shared;
  std::vector<float> y2(total), dx2(total), dres2(total), mean2[2], invstd2[2], rm2[2], rv2[2],
      dg2[2], db2[2];
  auto rank = [&](int r) {
    ThreadRank comm(shared, r);
    mean2[r].assign(C, 0.f), invstd2[r].assign(C, 0.f), rm2[r].assign(C, 0.1f);
    rv2[r].assign(C, 0.9f), dg2[r].assign(C, 0.f), db2[r].assign(C, 0.f);
    const size_t o = part * size_t(r);
    sync_batchnorm_train_fwd(comm, view(x.data() + o, half), gamma.data(), beta.data(),
                             view(res.data() + o, half), true, view(y2.data() + o, half),
                             mean2[r].data(), invstd2[r].data(), rm2[r].data(), rv2[r].data(),
                             args);
    sync_batchnorm_train_bwd(comm, view(x.data() + o, half), view(y2.data() + o, half), true,
                             view(dy.data() + o, half), mean2[r].data(), invstd2[r].data(),
                             gamma.data(), view(dx2.data() + o, half), view(dres2.data() + o, half),
                             false, dg2[r].data(), db2[r].data());
  };
  std::thread other(rank, 1);
  rank(0);
  other.join();
  for (int r = 0; r < 2; ++r) {  // every rank holds the same statistics
    EXPECT_EQ(mean2[r], mean2[0]);
    EXPECT_EQ(rv2[r], rv2[0]);
  }
  std::vector<float> dg_sum(C), db_sum(C);
  for (int c = 0; c < C; ++c) {
    dg_sum[c] = dg2[0][c] + dg2[1][c];
    db_sum[c] = db2[0][c] + db2[1][c];
  }
  // Both sides compute in double and round once; only the summation order differs (pixel order
  // over two halves vs one pass). Measured (2026-12-07): bitwise equal y, statistics, dx and
  // dresidual (tolerance 0); the per-rank dgamma / dbeta are rounded to fp32 before their sum:
  // 8.0e-8 and 1.0e-7 relative (tolerances 2x).
  expect_close(y2, y, 0, "y");
  expect_close(mean2[0], mean, 0, "save_mean");
  expect_close(invstd2[0], invstd, 0, "save_invstd");
  expect_close(rm2[0], rm, 0, "running_mean");
  expect_close(rv2[0], rv, 0, "running_var");
  expect_close(dx2, dx, 0, "dx");
  expect_close(dres2, dres, 0, "dresidual");
  expect_close(dg_sum, dg, 1.6e-7, "dgamma");
  expect_close(db_sum, db, 2.0e-7, "dbeta");
}

TEST(Collective, RankOrderSumAndTheWorldOfOne) {
  const float a[2] = {1e8f, 1.f}, b[2] = {-1e8f, 2.f}, c[2] = {1.f, 3.f};
  float out[2];
  sum_in_rank_order<float>({a, b, c}, 2, out);
  EXPECT_EQ(out[0], 1.f);  // (1e8 - 1e8) + 1: the order is rank order, not any other
  EXPECT_EQ(out[1], 6.f);
  const auto one = single_process_collective();
  double v[1] = {2.5};
  one->all_reduce_sum(v, 1, "x");
  EXPECT_EQ(v[0], 2.5);
  EXPECT_EQ(one->size(), 1);
  EXPECT_EQ(one->all_gather(7, "x"), std::vector<uint64_t>{7});
  EXPECT_NO_THROW(require_same_on_every_rank(*one, 3, "options"));
}

}  // namespace
}  // namespace farsee::net
