// net/sync_batchnorm: synchronised BN over 2 ranks (two threads joined by an in-process collective
// that sums in rank order, like the MPI one) equals the reference batchnorm_train_fwd / _bwd over
// the whole batch: outputs, saved and running statistics, dx, and dgamma / dbeta summed over the
// ranks. The same on emu through the BN kernels' hook (CollectiveBatchNormSync: what cuda runs)
// against the emu kernels on the whole batch, fp32 and fp16. Also sum_in_rank_order and the world
// of one.
#include "net/sync_batchnorm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

#include "kernels/batchnorm.h"
#include "kernels/core/half_convert.h"
#include "kernels/core/runtime.h"
#include "tests/support/executors.h"
#include "tests/support/thread_ranks.h"

namespace farsee::net {
namespace {

using test::ThreadRank;
using test::TwoRanks;

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
  std::vector<float> y2(total), dx2(total), dres2(total), mean2[2], invstd2[2], rm2[2], rv2[2],
      dg2[2], db2[2];
  test::run_two_ranks([&](Collective& comm) {
    const int r = comm.rank();
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
  });
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

// ---- the kernel executors' hook (kernels/batchnorm.h BatchNormSync) on emu ----

// Storage of one activation tensor on emu, filled from floats (rounded for fp16).
rt::Buffer on_emu(const std::vector<float>& v, size_t begin, size_t count, DType dt) {
  std::vector<uint8_t> host(count * dtype_size(dt));
  for (size_t i = 0; i < count; ++i) write_element(host.data(), dt, int64_t(i), v[begin + i]);
  rt::Buffer b(Executor::Emu, host.size());
  rt::copy_to_device(Context{Executor::Emu}, b.data(), host.data(), host.size());
  rt::synchronize(Context{Executor::Emu});  // `host` dies here
  return b;
}
std::vector<float> from_emu(const rt::Buffer& b, DType dt, size_t count) {
  std::vector<uint8_t> host(count * dtype_size(dt));
  rt::copy_to_host(Context{Executor::Emu}, host.data(), b.data(), host.size());
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = read_element(host.data(), dt, int64_t(i));
  return out;
}

struct BnInputs {
  std::vector<float> x, res, dy, gamma, beta;
};
struct BnOutputs {
  std::vector<float> y, dx, dres, mean, invstd, rm, rv, dg, db;
};

// Forward then backward over images [first, first + shape.n) of `in` on emu, with `sync` (null:
// this batch alone).
BnOutputs emu_batchnorm(const BnInputs& in, Shape4 shape, int first, DType dt,
                        BatchNormSync* sync) {
  const Context ctx{Executor::Emu};
  const size_t n = size_t(shape.elements()),
               o = size_t(first) * size_t(shape.h * shape.w * shape.c);
  const int C = shape.c;
  rt::Buffer x = on_emu(in.x, o, n, dt), res = on_emu(in.res, o, n, dt),
             dy = on_emu(in.dy, o, n, dt);
  rt::Buffer y(Executor::Emu, n * dtype_size(dt)), dx(Executor::Emu, n * dtype_size(dt)),
      dres(Executor::Emu, n * dtype_size(dt));
  rt::Buffer gamma = on_emu(in.gamma, 0, size_t(C), DType::F32),
             beta = on_emu(in.beta, 0, size_t(C), DType::F32);
  // mean, invstd, running mean (0.1), running var (0.9), dgamma, dbeta (0)
  std::vector<float> stats_init(6 * size_t(C), 0.f);
  std::fill(stats_init.begin() + 2 * C, stats_init.begin() + 3 * C, 0.1f);
  std::fill(stats_init.begin() + 3 * C, stats_init.begin() + 4 * C, 0.9f);
  rt::Buffer stats = on_emu(stats_init, 0, stats_init.size(), DType::F32);
  float* st = stats.as<float>();
  rt::Buffer ws(Executor::Emu, batchnorm_workspace_bytes(shape));
  BatchNormTrainArgs args;
  args.sync = sync;
  auto view = [&](const rt::Buffer& b) { return make_view(b.data(), dt, shape); };
  batchnorm_train_fwd(ctx, view(x), gamma.as<float>(), beta.as<float>(), view(res), true, view(y),
                      st, st + C, st + 2 * C, st + 3 * C, args, ws.data(), ws.bytes());
  batchnorm_train_bwd(ctx, view(x), view(y), true, view(dy), st, st + C, gamma.as<float>(),
                      view(dx), view(dres), false, st + 4 * C, st + 5 * C, ws.data(), ws.bytes(),
                      sync);
  const std::vector<float> s = from_emu(stats, DType::F32, 6 * size_t(C));
  auto part = [&](int k) { return std::vector<float>(s.begin() + k * C, s.begin() + (k + 1) * C); };
  return BnOutputs{from_emu(y, dt, n),
                   from_emu(dx, dt, n),
                   from_emu(dres, dt, n),
                   part(0),
                   part(1),
                   part(2),
                   part(3),
                   part(4),
                   part(5)};
}

class SyncBatchNormHook : public ::testing::TestWithParam<std::tuple<DType, int>> {};

// Two ranks on emu, each with half the batch and the hook over the in-process collective, equal
// the emu kernels on the whole batch (what cuda runs, with its host round trip per BN call).
TEST_P(SyncBatchNormHook, TwoRanksOnEmuEqualTheWholeBatch) {
  const auto [dt, C] = GetParam();  // C = 5: one channel a thread; 16: 16-byte packs
  const int H = 3, W = 5, N = 4;
  const Shape4 whole{N, H, W, C}, half{N / 2, H, W, C};
  const size_t total = size_t(whole.elements());
  BnInputs in{randoms(total, 11, 1.f, 6.f), randoms(total, 12, -1.f, 1.f),
              randoms(total, 13, -1.f, 1.f), randoms(size_t(C), 14, 0.5f, 1.5f),
              randoms(size_t(C), 15, -0.5f, 0.5f)};
  const BnOutputs ref = emu_batchnorm(in, whole, 0, dt, nullptr);
  BnOutputs rank_out[2];
  test::run_two_ranks([&](Collective& comm) {
    CollectiveBatchNormSync sync(comm);
    rank_out[comm.rank()] = emu_batchnorm(in, half, comm.rank() * N / 2, dt, &sync);
  });
  EXPECT_EQ(rank_out[0].mean, rank_out[1].mean);  // every rank holds the same statistics
  EXPECT_EQ(rank_out[0].rv, rank_out[1].rv);
  auto joined = [&](std::vector<float> BnOutputs::*field) {
    std::vector<float> v = rank_out[0].*field;
    v.insert(v.end(), (rank_out[1].*field).begin(), (rank_out[1].*field).end());
    return v;
  };
  std::vector<float> dg(static_cast<size_t>(C)), db(static_cast<size_t>(C));
  for (int c = 0; c < C; ++c) {
    dg[size_t(c)] = rank_out[0].dg[size_t(c)] + rank_out[1].dg[size_t(c)];
    db[size_t(c)] = rank_out[0].db[size_t(c)] + rank_out[1].db[size_t(c)];
  }
  // The statistics differ only in the merge (fp32 Welford chunks over the whole batch vs each
  // rank's fp32 Welford merged in double and rounded once). Measured (2026-12-07), max relative
  // error over every output and case: 3.13e-7 (fp32 dgamma, C = 5); fp16: 1.67e-7 in the fp32
  // statistics and gradients, the fp16 y and dx bitwise equal. Tolerance 2x.
  const double tol = 6.3e-7;
  expect_close(joined(&BnOutputs::y), ref.y, tol, "y");
  expect_close(rank_out[0].mean, ref.mean, tol, "save_mean");
  expect_close(rank_out[0].invstd, ref.invstd, tol, "save_invstd");
  expect_close(rank_out[0].rm, ref.rm, tol, "running_mean");
  expect_close(rank_out[0].rv, ref.rv, tol, "running_var");
  expect_close(joined(&BnOutputs::dx), ref.dx, tol, "dx");
  expect_close(joined(&BnOutputs::dres), ref.dres, tol, "dresidual");
  expect_close(dg, ref.dg, tol, "dgamma");
  expect_close(db, ref.db, tol, "dbeta");
}

INSTANTIATE_TEST_SUITE_P(Emu, SyncBatchNormHook,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16),
                                            ::testing::Values(5, 16)));

TEST(SyncBatchNormHook, HostExecutorsRefuseTheHook) {
  TwoRanks shared;
  ThreadRank comm(shared, 0);
  CollectiveBatchNormSync sync(comm);
  std::vector<float> x(8, 1.f), y(8), st(4 * 2), ws(64);
  BatchNormTrainArgs args;
  args.sync = &sync;
  const Shape4 s{1, 2, 2, 2};
  try {
    batchnorm_train_fwd(Context{Executor::Cpu}, make_view(x.data(), DType::F32, s), nullptr,
                        nullptr, TensorView{}, false, make_view(y.data(), DType::F32, s), st.data(),
                        st.data() + 2, st.data() + 4, st.data() + 6, args, ws.data(),
                        ws.size() * 4);
    FAIL() << "the cpu executor took a BatchNormSync";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("net/sync_batchnorm.h"), std::string::npos) << e.what();
  }
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
