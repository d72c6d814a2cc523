// What a GPU does to the trainer that a synchronous emulator hid (issue 26), on the emulator that
// behaves like one (kernels/emu: asynchronous streams, graph capture with CUDA's rules):
// - a trainer resumed in a fresh process (momenta loaded, so its first step would be a graph
//   step) runs one whole step eagerly before it captures: every kernel's first launch (lazy
//   module loading, which drivers before 12.3 cannot do inside capture) and the one-time function
//   attributes happen outside capture; the resumed run then equals the uninterrupted one bitwise;
// - Trainer::set_batch returns only when its uploads are done: the caller may overwrite its input
//   and label buffers at once (a loader reusing pinned batches), and the step computes what it
//   computes from untouched buffers. Both tests fail on the code before the fix: the first with
//   "first launch of kernel ... inside a graph capture", the second with the emulator's check that
//   an asynchronous copy's host bytes changed before it ran.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/emu/emu_control.h"
#include "net/trainer.h"
#include "tests/net/training_fixture.h"
#include "tests/support/executors.h"
#include "tools/data/dataset.h"

namespace farsee::net {
namespace {

using train_test::bitwise_equal;
using train_test::train_data_dir;

using Setup = train_test::TinyRun;

const Setup& setup() {
  return train_test::tiny_run(32, 64);
}

std::unique_ptr<Trainer> emu_trainer() {
  Context ctx;
  ctx.executor = Executor::Emu;
  const Setup& s = setup();
  return std::make_unique<Trainer>(s.config, s.init, ctx, s.n, s.h, s.w);
}

void feed(Trainer& t, int batch) {
  const tools::Batch& b = setup().batches[size_t(batch)];
  t.set_batch(b.input.data(), b.labels.data());
}

class EmuLikeAGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    was_async_ = emu::async_enabled();
    emu::set_async(true);
    emu::set_schedule(emu::Schedule::GreedyForward);
  }
  void TearDown() override { emu::set_async(was_async_); }
  bool was_async_ = false;
};

TEST_F(EmuLikeAGpu, ResumedTrainerRunsAnEagerStepBeforeItCaptures) {
  const SgdArgs& sgd = setup().sgd;
  auto uninterrupted = emu_trainer();
  feed(*uninterrupted, 0);
  uninterrupted->step(sgd);  // eager: the momenta now exist
  auto resumed = emu_trainer();
  resumed->load_state(uninterrupted->state(), uninterrupted->momenta(),
                      uninterrupted->steps_done());
  emu::forget_launched_kernels();  // as in a fresh process that resumes from a checkpoint
  for (int k = 1; k <= 2; ++k) {
    feed(*resumed, k % 2);
    ASSERT_NO_THROW(resumed->step(sgd)) << "step " << k << " after the resume";
    feed(*uninterrupted, k % 2);
    uninterrupted->step(sgd, /*use_cuda_graph=*/false);
  }
  EXPECT_EQ(resumed->cuda_graphs_captured(), 1) << "the second step after the resume replays";
  std::string diff;
  EXPECT_TRUE(bitwise_equal(resumed->state(), uninterrupted->state(), &diff))
      << "weights differ first in " << diff;
  EXPECT_TRUE(bitwise_equal(resumed->momenta(), uninterrupted->momenta(), &diff))
      << "momenta differ first in " << diff;
}

TEST_F(EmuLikeAGpu, SetBatchBuffersMayBeReusedOnceItReturns) {
  const tools::Batch& b = setup().batches[0];
  std::vector<float> input = b.input;
  std::vector<uint8_t> labels = b.labels;
  auto reused = emu_trainer();
  reused->set_batch(input.data(), labels.data());
  std::fill(input.begin(), input.end(), std::numeric_limits<float>::quiet_NaN());
  std::fill(labels.begin(), labels.end(), uint8_t(255));  // the caller's next batch
  reused->compute_gradients();
  auto untouched = emu_trainer();
  feed(*untouched, 0);
  untouched->compute_gradients();
  const float loss = reused->loss();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(loss, untouched->loss());
}

}  // namespace
}  // namespace farsee::net
