// The training graph (net/train_graph.h): structure of the forward/backward step list, gradient
// accumulation at fan-out points, and the memory plan over forward and backward.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>

#include "net/train_graph.h"

namespace farsee::net {
namespace {

int count_ops(const TrainGraph& g, TrainOp op) {
  int n = 0;
  for (const TrainStep& s : g.steps) n += s.op == op ? 1 : 0;
  return n;
}

TEST(TrainingGraph, EveryForwardStepHasItsBackwardInReverseOrder) {
  for (const char* preset : {"tiny-paper", "tiny-rtseg", "paper", "rtseg"}) {
    SCOPED_TRACE(preset);
    const TrainGraph g = build_train_graph(preset_config(preset), 2, 64, 128, 64, 128);
    ASSERT_GT(g.loss_step, 0);
    const int forward = g.loss_step;
    ASSERT_EQ(int(g.steps.size()), 2 * forward + 1);
    for (int i = 0; i < forward; ++i) {
      const TrainStep& b = g.steps[size_t(g.loss_step + 1 + i)];
      EXPECT_EQ(b.forward_step, forward - 1 - i) << b.name;
    }
    // BN explicit: one BatchNorm per layer with BN, none folded.
    int bn_layers = 0;
    for (size_t l = 0; l < g.inference.layers.size(); ++l) bn_layers += g.layer_has_bn(int(l));
    EXPECT_EQ(count_ops(g, TrainOp::BatchNorm), bn_layers);
    EXPECT_EQ(count_ops(g, TrainOp::BatchNormBackward), bn_layers);
    EXPECT_EQ(count_ops(g, TrainOp::Conv), count_ops(g, TrainOp::ConvBackward));
    // The first conv reads the network input: no data gradient.
    int no_dx = 0;
    for (const TrainStep& s : g.steps) {
      if (s.op == TrainOp::ConvBackward && !s.dx.valid()) {
        ++no_dx;
        EXPECT_EQ(s.x.buffer, g.input.buffer);
      }
    }
    EXPECT_EQ(no_dx, 1);
  }
}

// Fan-out points: the block input of an identity basic block gets its gradient from the
// residual (written) and from conv1 (accumulated); the low-level map (paper: layer2's output) from
// the low path (written first in backward order) and the next stage (accumulated).
TEST(TrainingGraph, FanOutGradientsAccumulate) {
  const TrainGraph g = build_train_graph(preset_config("paper"), 1, 64, 128, 64, 128);
  std::map<std::string, const TrainStep*> by_name;
  for (const TrainStep& s : g.steps) by_name[s.name] = &s;
  const TrainStep* bn2 = by_name.at("backbone.layer1.1.conv2.bn.bwd");
  ASSERT_TRUE(bn2->dresidual.valid());
  EXPECT_FALSE(bn2->accumulate_dresidual);
  const TrainStep* conv1 = by_name.at("backbone.layer1.1.conv1.bwd");
  EXPECT_EQ(conv1->dx.buffer, bn2->dresidual.buffer);
  EXPECT_TRUE(conv1->accumulate_dx);

  const TrainStep* low = by_name.at("head.low.bwd");
  EXPECT_FALSE(low->accumulate_dx);
  const TrainStep* next = by_name.at("backbone.layer3.0.conv1.bwd");
  const TrainStep* down = by_name.at("backbone.layer3.0.downsample.bwd");
  EXPECT_EQ(next->dx.buffer, low->dx.buffer);
  EXPECT_EQ(down->dx.buffer, low->dx.buffer);
  EXPECT_TRUE(next->accumulate_dx);
  EXPECT_TRUE(down->accumulate_dx);

  // F-ASPP: the projection writes d(branch0 | dw slices); each depthwise writes its pw slice; the
  // pointwise BN then reads d(pw slices | branch0) complete.
  const TrainStep* proj = by_name.at("head.aspp1.project.bwd");
  const TrainStep* dw1 = by_name.at("head.aspp1.branch1.dw.bwd");
  EXPECT_FALSE(proj->accumulate_dx);
  EXPECT_FALSE(dw1->accumulate_dx);
  EXPECT_EQ(dw1->dx.buffer, proj->dx.buffer);

  // Paper's up1: conv -> BN (4096 channels) -> pixel shuffle into the decoder concat.
  EXPECT_EQ(count_ops(g, TrainOp::PixelShuffle), 1);
  EXPECT_EQ(by_name.at("head.up1.bn")->x.shape.c, 256 * 16);
}

TEST(TrainingGraph, MemoryPlanIsValidAndReusesBuffers) {
  for (const char* preset : {"tiny-paper", "paper", "rtseg"}) {
    SCOPED_TRACE(preset);
    const TrainGraph g = build_train_graph(preset_config(preset), 2, 64, 128, 128, 256);
    const MemoryPlan plan = plan_memory(g.buffer_lifetimes(DType::F32));
    verify_memory_plan(plan);
    int64_t sum = 0;
    for (const auto& b : plan.buffers) sum += b.bytes;
    EXPECT_LT(plan.arena_bytes, sum);
    EXPECT_GE(plan.arena_bytes, plan.peak_live_bytes());
    // Within 15% of the max-live lower bound.
    EXPECT_LE(double(plan.arena_bytes), 1.15 * double(plan.peak_live_bytes()));
  }
}

// Activations stay live exactly until their last backward reader: the stem's raw conv output is
// read by its BN backward, which is the last backward step before the stem conv's own backward.
TEST(TrainingGraph, ActivationsLiveUntilTheirLastBackwardReader) {
  const TrainGraph g = build_train_graph(preset_config("tiny-paper"), 1, 64, 128, 64, 128);
  const auto life = g.buffer_lifetimes(DType::F32);
  int stem_raw = -1;
  for (size_t i = 0; i < g.buffers.size(); ++i) {
    if (g.buffers[i].name == "backbone.conv1.raw") stem_raw = int(i);
  }
  ASSERT_GE(stem_raw, 0);
  const int last = life[size_t(stem_raw)].last_step;
  EXPECT_EQ(g.steps[size_t(last)].name, "backbone.conv1.bn.bwd");
  // Gradient buffers live only during the backward.
  for (size_t i = 0; i < g.buffers.size(); ++i) {
    if (g.is_gradient[i]) EXPECT_GE(life[i].first_step, g.loss_step) << g.buffers[i].name;
  }
}

// The report: the training plan of the paper preset at 512x1024, batch 8 (computed from
// the plan; nothing allocated).
TEST(TrainingGraph, PaperPresetPeakAt512x1024Batch8) {
  const TrainMemoryReport r = training_memory(preset_config("paper"), 8, 512, 1024, 512, 1024);
  std::printf(
      "paper 512x1024 batch 8 (fp32): activation arena %.1f MiB (max-live bound %.1f MiB, "
      "no reuse %.1f MiB), parameters %.1f MiB x3 (weights, grads, momenta), BN state %.2f MiB, "
      "total %.1f MiB\n",
      r.activation_arena_bytes / 1048576.0, r.activation_peak_live_bytes / 1048576.0,
      r.no_reuse_bytes / 1048576.0, r.parameter_bytes / 1048576.0, r.bn_state_bytes / 1048576.0,
      r.total_bytes() / 1048576.0);
  EXPECT_LT(r.activation_arena_bytes, r.no_reuse_bytes);
  EXPECT_GT(r.parameter_bytes, int64_t(4) * 11000000);  // ResNet-18 alone has ~11M parameters
}

}  // namespace
}  // namespace farsee::net
