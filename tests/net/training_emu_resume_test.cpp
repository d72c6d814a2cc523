// The one training combination no other test ran under the emulator that behaves like a GPU
// (asynchronous streams, poisoned memory, graph capture with CUDA's rules; issue 26 deliver 6):
// fp16, resumed, graph. (Fp16Checkpoint.ResumeIsBitwiseIdentical/emu resumes for one step only,
// the eager warm-up; the fp32 resumed run is EmuLikeAGpu.ResumedTrainerRunsAnEagerStepBeforeIt
// Captures.) A mixed-precision trainer resumed in a fresh process (weights, momenta and the loss
// scaler loaded, every kernel unloaded) runs its eager warm-up step, then a captured graph step,
// and ends bitwise equal to the uninterrupted eager run, its scaler included.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "kernels/emu/emu_control.h"
#include "net/trainer.h"
#include "tests/net/training_fixture.h"
#include "tools/data/dataset.h"

namespace farsee::net {
namespace {

using train_test::bitwise_equal;

const train_test::TinyRun& setup() {
  return train_test::tiny_run(32, 64);
}

// fp16 at the initial scale 256: at 32x64, 2^16 overflows this net's fp16 gradients (see
// training_fp16_test.cpp), and a skipped step would make the graph step an eager one.
std::unique_ptr<Trainer> fp16_trainer() {
  const train_test::TinyRun& s = setup();
  MixedPrecision p;
  p.activations = DType::F16;
  p.init_scale = 256.0f;
  p.growth_interval = 1;  // the scale changes after every step: replays read it from memory
  Context ctx;
  ctx.executor = Executor::Emu;
  return std::make_unique<Trainer>(s.config, s.init, ctx, s.n, s.h, s.w, 0, 0, p);
}

void feed(Trainer& t, int batch) {
  const tools::Batch& b = setup().batches[size_t(batch)];
  t.set_batch(b.input.data(), b.labels.data());
}

class EmuResumedFp16 : public ::testing::Test {
 protected:
  void SetUp() override {
    was_async_ = emu::async_enabled();
    emu::set_async(true);
    emu::set_poison(true);
    emu::set_schedule(emu::Schedule::GreedyForward);
  }
  void TearDown() override { emu::set_async(was_async_); }
  bool was_async_ = false;
};

TEST_F(EmuResumedFp16, WarmUpThenGraphStepEqualsTheUninterruptedRun) {
  const SgdArgs& sgd = setup().sgd;
  auto uninterrupted = fp16_trainer();
  feed(*uninterrupted, 0);
  uninterrupted->step(sgd, /*use_cuda_graph=*/false);
  auto resumed = fp16_trainer();
  resumed->load_state(uninterrupted->state(), uninterrupted->momenta(),
                      uninterrupted->steps_done());
  resumed->load_loss_scale(uninterrupted->loss_scale());
  emu::forget_launched_kernels();  // as in a fresh process
  for (int k = 1; k <= 2; ++k) {
    feed(*resumed, k % 2);
    float loss = 0.0f;
    ASSERT_NO_THROW(loss = resumed->step(sgd)) << "step " << k << " after the resume";
    feed(*uninterrupted, k % 2);
    EXPECT_EQ(loss, uninterrupted->step(sgd, /*use_cuda_graph=*/false)) << "step " << k;
  }
  ASSERT_EQ(resumed->loss_scale().skipped_steps, 0) << "a skipped step is never a graph step";
  EXPECT_EQ(resumed->cuda_graphs_captured(), 1) << "the second step after the resume is a graph";
  EXPECT_EQ(resumed->loss_scale().scale, uninterrupted->loss_scale().scale);
  EXPECT_EQ(resumed->loss_scale().scale, 256.0f * 8) << "the scale grew after every step";
  std::string diff;
  EXPECT_TRUE(bitwise_equal(resumed->state(), uninterrupted->state(), &diff))
      << "weights differ first in " << diff;
  EXPECT_TRUE(bitwise_equal(resumed->momenta(), uninterrupted->momenta(), &diff))
      << "momenta differ first in " << diff;
}

}  // namespace
}  // namespace farsee::net
