// Shape inference, the zero-copy concat layout and the parameter list of both presets, plus the
// configuration (presets, JSON) and its errors.
#include "net/graph.h"

#include <gtest/gtest.h>

#include <set>

#include "kernels/core/check.h"
#include "net/config.h"

namespace farsee::net {
namespace {

const Step& step_named(const Graph& g, const std::string& name) {
  for (const Step& s : g.steps) {
    if (s.name == name) return s;
  }
  throw Error("no step " + name);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Graph, PaperShapes) {
  const Graph g = build_graph(paper_config(), 2, 512, 1024);
  EXPECT_EQ(g.input.shape, (Shape4{2, 512, 1024, 3}));
  EXPECT_EQ(step_named(g, "backbone.conv1").y.shape, (Shape4{2, 256, 512, 64}));
  EXPECT_EQ(step_named(g, "backbone.maxpool").y.shape, (Shape4{2, 128, 256, 64}));
  EXPECT_EQ(step_named(g, "backbone.layer2.1.conv2").y.shape, (Shape4{2, 64, 128, 128}));
  EXPECT_EQ(step_named(g, "backbone.layer4.1.conv2").y.shape, (Shape4{2, 16, 32, 512}));
  // F-ASPP-1: one merged 1x1 conv 512 -> 1024 into slices 0..3 of a 7-slice buffer.
  const Step& pw = step_named(g, "head.aspp1.pointwise");
  EXPECT_EQ(g.layers[pw.layer].K, 1024);
  EXPECT_EQ(g.layers[pw.layer].C, 512);
  ASSERT_EQ(g.layers[pw.layer].units.size(), 4u);
  EXPECT_EQ(g.layers[pw.layer].units[0].conv, "head.aspp1.branch1.pw.conv");
  EXPECT_EQ(g.layers[pw.layer].units[3].conv, "head.aspp1.branch0.conv");
  EXPECT_EQ(g.buffers[pw.y.buffer].shape, (Shape4{2, 16, 32, 7 * 256}));
  EXPECT_EQ(pw.y.channel_offset, 0);
  EXPECT_EQ(pw.y.shape.c, 1024);
  for (int i = 1; i <= 3; ++i) {
    const Step& dw = step_named(g, "head.aspp1.branch" + std::to_string(i) + ".dw");
    EXPECT_EQ(dw.x.buffer, pw.y.buffer);
    EXPECT_EQ(dw.x.channel_offset, (i - 1) * 256);
    EXPECT_EQ(dw.y.channel_offset, (3 + i) * 256);
    EXPECT_EQ(dw.conv.dilation_h, 6 * i);
  }
  const Step& project = step_named(g, "head.aspp1.project");
  EXPECT_EQ(project.x.buffer, pw.y.buffer);
  EXPECT_EQ(project.x.channel_offset, 3 * 256);  // [branch0 | dw1 | dw2 | dw3]
  EXPECT_EQ(project.x.shape.c, 1024);
  // Decoder concat [up1 (256), low (48)] at stride 8, two producers.
  const Step& up1 = step_named(g, "head.up1");
  const Step& low = step_named(g, "head.low");
  EXPECT_EQ(up1.shuffle, 4);
  EXPECT_EQ(g.layers[up1.layer].K, 256 * 16);
  EXPECT_EQ(up1.y.buffer, low.y.buffer);
  EXPECT_EQ(g.buffers[up1.y.buffer].shape, (Shape4{2, 64, 128, 304}));
  EXPECT_EQ(up1.y.channel_offset, 0);
  EXPECT_EQ(low.y.channel_offset, 256);
  EXPECT_EQ(low.x.shape, (Shape4{2, 64, 128, 128}));  // layer2
  EXPECT_EQ(g.layers[step_named(g, "head.aspp2.pointwise").layer].K, 512);
  // Logits at stride 2.
  EXPECT_EQ(g.logits.shape, (Shape4{2, 256, 512, 19}));
  EXPECT_EQ(step_named(g, "head.up2").shuffle, 4);
}

TEST(Graph, RtsegShapes) {
  const Graph g = build_graph(rtseg_config(), 1, 512, 1024);
  const Step& pw = step_named(g, "head.aspp1.pointwise");
  EXPECT_EQ(g.buffers[pw.y.buffer].shape.c, 7 * 256);
  // No projection: the sub-pixel conv reads the concat slice directly.
  const Step& up1 = step_named(g, "head.up1");
  EXPECT_EQ(up1.x.buffer, pw.y.buffer);
  EXPECT_EQ(up1.x.channel_offset, 768);
  EXPECT_EQ(up1.x.shape.c, 1024);
  EXPECT_EQ(up1.shuffle, 2);
  EXPECT_FALSE(up1.relu);
  EXPECT_EQ(g.buffers[up1.y.buffer].shape, (Shape4{1, 32, 64, 560}));
  EXPECT_EQ(step_named(g, "head.low").x.shape, (Shape4{1, 32, 64, 256}));  // layer3
  // F-ASPP-2 with two rates: 5 slices of 128, concat of 384.
  const Step& pw2 = step_named(g, "head.aspp2.pointwise");
  EXPECT_EQ(g.buffers[pw2.y.buffer].shape.c, 5 * 128);
  const Step& c0 = step_named(g, "head.convs.0");
  EXPECT_EQ(c0.x.channel_offset, 256);
  EXPECT_EQ(c0.x.shape.c, 384);
  EXPECT_EQ(step_named(g, "head.convs.1").conv.kernel_h, 3);
  EXPECT_EQ(g.logits.shape, (Shape4{1, 128, 256, 19}));
}

TEST(Graph, EverySizeMultipleOf32) {
  for (auto hw : std::vector<std::pair<int, int>>{{32, 32}, {64, 96}, {512, 768}, {96, 160}}) {
    for (const char* preset : {"paper", "rtseg"}) {
      const FarSeeConfig c = preset_config(preset);
      const Graph g = build_graph(c, 3, hw.first, hw.second);
      EXPECT_EQ(g.logits.shape, (Shape4{3, hw.first / c.logits_stride(),
                                        hw.second / c.logits_stride(), c.num_classes}));
      EXPECT_NO_THROW(g.buffer_lifetimes(DType::F16));
    }
  }
}

// A step never reads bytes it writes: operands in one buffer use disjoint channel ranges (the
// memory plan separates operands in different buffers).
TEST(Graph, StepOperandsNeverAlias) {
  for (const char* preset : {"paper", "rtseg"}) {
    const Graph g = build_graph(preset_config(preset), 1, 64, 128);
    for (const Step& s : g.steps) {
      for (const TensorRef* in : {&s.x, &s.residual}) {
        if (!in->valid() || in->buffer != s.y.buffer) continue;
        const bool disjoint = in->channel_offset + in->shape.c <= s.y.channel_offset ||
                              s.y.channel_offset + s.y.shape.c <= in->channel_offset;
        EXPECT_TRUE(disjoint) << preset << " step " << s.name;
      }
    }
  }
}

TEST(Graph, ShapeErrors) {
  std::string e = error_of([] { build_graph(paper_config(), 1, 500, 1024); });
  EXPECT_NE(e.find("500x1024"), std::string::npos) << e;
  EXPECT_NE(e.find("multiples of 32"), std::string::npos) << e;
  e = error_of([] { build_graph(paper_config(), 1, 512, 1000); });
  EXPECT_NE(e.find("512x1000"), std::string::npos) << e;
  e = error_of([] { build_graph(paper_config(), 1, 0, 64); });
  EXPECT_NE(e.find("multiples of 32"), std::string::npos) << e;
  e = error_of([] { build_graph(paper_config(), 0, 64, 64); });
  EXPECT_NE(e.find("batch size 0"), std::string::npos) << e;
}

TEST(Graph, ParameterNames) {
  // Paper: ResNet-18 (conv1 + bn1: 5 tensors; 8 blocks x 10; 3 downsamples x 5) = 100 tensors;
  // head: 2 F-ASPP x (4 + 3 + 1 units) x 5 = 80, up1 5, low 5, logits conv weight + bias 2.
  const auto specs = parameter_specs(paper_config());
  EXPECT_EQ(specs.size(), 100u + 80u + 12u);
  std::set<std::string> names;
  for (const auto& s : specs) EXPECT_TRUE(names.insert(s.name).second) << "duplicate " << s.name;
  for (const char* n :
       {"backbone.conv1.weight", "backbone.bn1.running_var",
        "backbone.layer2.0.downsample.0.weight", "backbone.layer2.0.downsample.1.bias",
        "head.aspp1.branch0.conv.weight", "head.aspp1.branch2.pw.bn.weight",
        "head.aspp1.branch3.dw.conv.weight", "head.aspp1.project.bn.running_mean",
        "head.up1.conv.weight", "head.up1.bn.bias", "head.low.conv.weight",
        "head.aspp2.project.conv.weight", "head.up2.conv.weight", "head.up2.conv.bias"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  for (const auto& s : specs) {
    if (s.name == "head.aspp1.branch3.dw.conv.weight") {
      EXPECT_EQ(s.shape, (std::vector<int64_t>{256, 1, 3, 3}));
    }
    if (s.name == "head.up2.conv.weight") {
      EXPECT_EQ(s.shape, (std::vector<int64_t>{304, 128, 1, 1}));
    }
    if (s.name == "head.aspp2.branch0.conv.weight") {
      EXPECT_EQ(s.shape, (std::vector<int64_t>{128, 304, 1, 1}));
    }
  }
}

TEST(Config, PresetsValidate) {
  for (const char* p : {"paper", "rtseg", "tiny-paper", "tiny-rtseg"}) {
    EXPECT_NO_THROW(preset_config(p).validate()) << p;
  }
  EXPECT_EQ(paper_config().logits_stride(), 2);
  EXPECT_EQ(rtseg_config().logits_stride(), 4);
  EXPECT_FALSE(paper_config().align_corners);
  EXPECT_TRUE(rtseg_config().align_corners);
  std::string e = error_of([] { preset_config("large"); });
  EXPECT_NE(e.find("'large'"), std::string::npos) << e;
}

TEST(Config, JsonRoundTripAndOverrides) {
  for (const char* p : {"paper", "rtseg", "tiny-paper", "tiny-rtseg"}) {
    const FarSeeConfig c = preset_config(p);
    EXPECT_TRUE(config_from_json_text(config_to_json_text(c)) == c) << p;
  }
  const FarSeeConfig c = config_from_json_text(
      R"({"preset": "rtseg", "num_classes": 7, "aspp2": {"rates": [3, 6, 9]}})");
  EXPECT_EQ(c.num_classes, 7);
  EXPECT_EQ(c.aspp2.rates, (std::vector<int>{3, 6, 9}));
  EXPECT_EQ(c.aspp2.width, 128);  // from the preset
  EXPECT_EQ(c.low_level_stage, 3);
  EXPECT_TRUE(config_from_json_text("{}") == paper_config());
}

TEST(Config, JsonErrors) {
  std::string e = error_of([] { config_from_json_text(R"({"num_clases": 3})"); });
  EXPECT_NE(e.find("unknown field 'num_clases'"), std::string::npos) << e;
  e = error_of([] { config_from_json_text(R"({"num_classes": "many"})"); });
  EXPECT_NE(e.find("num_classes"), std::string::npos) << e;
  e = error_of([] { config_from_json_text("{not json"); });
  EXPECT_NE(e.find("JSON"), std::string::npos) << e;
  // Numbers that get<int>() would cast (undefined behaviour, a fuzzer's finding) or wrap.
  e = error_of([] { config_from_json_text(R"({"stage_blocks": [2.5e37, 2, 1, 2]})"); });
  EXPECT_NE(e.find("field 'stage_blocks'[0]: expected a whole number"), std::string::npos) << e;
  e = error_of([] { config_from_json_text(R"({"num_classes": 4294967299})"); });
  EXPECT_NE(e.find("field 'num_classes': expected a whole number"), std::string::npos) << e;
  e = error_of([] { config_from_json_text(R"({"up1_factor": 2.5})"); });
  EXPECT_NE(e.find("field 'up1_factor': expected a whole number"), std::string::npos) << e;
  EXPECT_EQ(config_from_json_text(R"({"num_classes": 7.0})").num_classes, 7);
  // up1 x4 from stride 32 lands on stride 8, but layer3 has stride 16.
  e = error_of([] { config_from_json_text(R"({"low_level_stage": 3})"); });
  EXPECT_NE(e.find("up1_factor"), std::string::npos) << e;
  e = error_of([] { load_config_json("/nonexistent/farsee.json"); });
  EXPECT_NE(e.find("/nonexistent/farsee.json"), std::string::npos) << e;
}

}  // namespace
}  // namespace farsee::net
