// Kernel launches of one inference forward (issue 20: at most 30, no split-K reduce kernels),
// counted under emu as the launches a graph capture of the forward records (emu::graph_ops), so the
// count is the one a CUDA graph replays on the GPU.
//
// Measured on tiny-paper at 32x64, fp16 and tf32 (the paper topology at reduced width; the
// structure check below ties it to the paper preset at 256x512), per kernel file:
//   before (51): 27 conv + 16 split-K reduce (a separate launch per split conv; at 512x1024 on
//                the H200 plan) + 6 depthwise (3 per F-ASPP block) + 1 max-pool + 1 resize-argmax
//   then   (31): 27 conv (split-K reduced inside the conv kernel) + 2 depthwise (the 3 branches of
//                each F-ASPP block in one launch) + 1 max-pool + 1 resize-argmax
//   now    (30, fp16): the max-pool fused into the space-to-depth stem conv (ConvEpilogue::
//                max_pool); tf32 keeps the separate pool launch (31: the fused variant is fp16)
// The count does not depend on the input size any more: split-K adds no launch.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "kernels/conv_bn_act.h"
#include "kernels/emu/emu_control.h"
#include "net/farsee_net.h"
#include "net/parameters.h"
#include "tests/support/executors.h"

namespace farsee::net {
namespace {

// Launches per kernel source file ("conv_bn_act.cu", ...) of a recorded graph.
std::map<std::string, int> launches_by_file(void* graph) {
  std::map<std::string, int> count;
  for (const emu::RecordedOp& op : emu::graph_ops(graph)) {
    if (op.kind != emu::OpKind::Launch) continue;
    std::string file = op.site.substr(0, op.site.rfind(':'));
    file = file.substr(file.rfind('/') + 1);
    ++count[file];
  }
  return count;
}

struct StepCounts {
  int conv = 0, depthwise = 0, pool = 0;
};
StepCounts step_counts(const Graph& g) {
  StepCounts c;
  for (const Step& s : g.steps) {
    c.conv += s.kind == StepKind::Conv;
    c.depthwise += s.kind == StepKind::Depthwise;
    c.pool += s.kind == StepKind::MaxPool;
  }
  return c;
}

// Conv steps of the net whose plan splits K, with the net's own sizing of workspace and counters.
int split_conv_steps(const FarSeeNet& net, Precision precision) {
  const DType dtype = storage_dtype(precision);
  int split_convs = 0;
  for (const Step& s : net.graph().steps) {
    if (s.kind != StepKind::Conv) continue;
    const Layer& l = net.graph().layers[size_t(s.layer)];
    const ConvWeights w =
        pack_conv_weights(net.context(), std::vector<float>(size_t(l.K) * l.R * l.S * l.C), l.K,
                          l.R, l.S, l.C, dtype);
    std::vector<unsigned char> workspace(conv_workspace_bytes(s.conv, w, s.x.shape));
    std::vector<int> counters(conv_tile_counter_count(s.conv, w, s.x.shape));
    ConvOptions o;
    o.workspace = workspace.data();
    o.workspace_bytes = workspace.size();
    o.tile_counters = counters.data();
    o.tile_counter_count = counters.size();
    o.tf32 = precision == Precision::TF32;
    TensorView x = make_view(workspace.data(), dtype, s.x.shape);
    split_convs += plan_conv(s.conv, w, x, o).split_k > 1;
  }
  return split_convs;
}

// fp16 (tensor cores) and tf32 (fp32 storage, the tf32 kernels): the same launches but the pool.
TEST(LaunchCount, ForwardLaunchesWithoutSplitKReduce) {
  FARSEE_PREPARE_EXEC_CASE((test::ExecCase{Executor::Emu, emu::Schedule::GreedyForward}));
  const FarSeeConfig config = preset_config("tiny-paper");
  for (Precision precision : {Precision::F16, Precision::TF32}) {
    SCOPED_TRACE(precision_name(precision));
    FarSeeNet net(config, random_parameters(config, 3), Context{Executor::Emu, nullptr}, precision);
    net.prepare(1, 32, 64);
    const std::vector<float> input = test::random_floats(size_t(32) * 64 * 3, 4, -2.f, 2.f);
    net.set_input(input.data());
    net.forward(false);  // eager: every kernel's first launch happens outside the capture
    const std::vector<uint8_t> eager = net.labels();

    rt::graph_begin_capture(net.context());
    net.forward(false);
    void* graph = rt::graph_end_capture(net.context());
    std::map<std::string, int> by_file = launches_by_file(graph);
    net.set_input(input.data());             // the arena reuses the input's bytes after the stem
    rt::graph_launch(net.context(), graph);  // the captured forward replays to the same labels
    EXPECT_EQ(net.labels(), eager);
    rt::graph_destroy(graph);

    // The same topology as the paper preset at the 256x512: 27 convs, 6 depthwise
    // branches (2 F-ASPP blocks of 3), 1 max-pool.
    const StepCounts tiny = step_counts(net.graph());
    const StepCounts paper = step_counts(build_graph(preset_config("paper"), 1, 256, 512));
    EXPECT_EQ(tiny.conv, paper.conv);
    EXPECT_EQ(tiny.depthwise, paper.depthwise);
    EXPECT_EQ(tiny.pool, paper.pool);
    EXPECT_EQ(paper.conv, 27);
    EXPECT_EQ(paper.depthwise, 6);

    // Some convs of this size do split K (the small deep maps), so the count covers the
    // in-kernel split-K reduction.
    EXPECT_GE(split_conv_steps(net, precision), 4);

    int total = 0;
    for (const auto& [file, n] : by_file) total += n;
    std::string breakdown;
    for (const auto& [file, n] : by_file) breakdown += file + ": " + std::to_string(n) + "\n";
    SCOPED_TRACE(breakdown);
    EXPECT_EQ(by_file["conv_bn_act.cu"], 27);      // one launch per conv, split or not
    EXPECT_EQ(by_file["depthwise_atrous.cu"], 2);  // one per F-ASPP block
    // The max-pool (pool.cu launches through pixel_channel_kernel.h): fp16 fuses it into the stem.
    const bool fused_pool = precision == Precision::F16;
    EXPECT_EQ(by_file["pixel_channel_kernel.h"], fused_pool ? 0 : 1);
    EXPECT_EQ(by_file["resize_argmax.cu"], 1);
    // Issue 20's target: at most 30.
    EXPECT_EQ(total, fused_pool ? 30 : 31);
  }
}

}  // namespace
}  // namespace farsee::net
