// FarSee-Net configuration (DESIGN.md section 6): the two presets and the reduced-width test
// variant, all describing the same topology
//
//   ResNet-18 front-end -> F-ASPP-1 on the high-level map -> sub-pixel conv (x up1_factor)
//   -> concat [up1 output, 1x1 low path on the low-level map] -> F-ASPP-2 -> optional head convs
//   -> sub-pixel logits conv (x up2_factor) -> bilinear resize to the output size.
//
// An F-ASPP block is branch 0 (1x1 conv) plus, per atrous rate, a 1x1 conv followed by a 3x3
// depthwise conv at that rate; the branches are concatenated in order 0, 1, ..., k and optionally
// projected by a 1x1 conv. Every conv except the sub-pixel ones is followed by BN + ReLU.
//
// Readable from JSON: {"preset": "paper"|"rtseg"|"tiny-paper"|"tiny-rtseg", ...field overrides}.
#pragma once

#include <array>
#include <string>
#include <vector>

namespace farsee::net {

struct AsppConfig {
  int width = 256;                    // channels of every branch
  std::vector<int> rates{6, 12, 18};  // dilation of branches 1..k (branch 0 is a plain 1x1)
  int project_channels = 256;         // 1x1 projection of the concat (BN+ReLU); 0: no projection
  int concat_channels() const { return width * int(rates.size() + 1); }
  int output_channels() const {
    return project_channels > 0 ? project_channels : concat_channels();
  }
};

// A conv + BN + ReLU after F-ASPP-2 (preset rtseg: 1x1 then 3x3).
struct HeadConvConfig {
  int kernel = 1;
  int channels = 0;
  bool operator==(const HeadConvConfig& o) const {
    return kernel == o.kernel && channels == o.channels;
  }
};

struct FarSeeConfig {
  std::string preset = "paper";
  int num_classes = 19;
  // ResNet-18 front-end.
  int stem_channels = 64;
  std::array<int, 4> stage_channels{64, 128, 256, 512};
  std::array<int, 4> stage_blocks{2, 2, 2, 2};
  int low_level_stage = 2;  // 1-based ResNet layer feeding the low path (2: stride 8, 3: stride 16)
  // Back-end.
  AsppConfig aspp1{256, {6, 12, 18}, 256};
  int up1_factor = 4;
  int up1_channels = 256;   // channels after the pixel shuffle
  bool up1_bn_relu = true;  // BN+ReLU on the sub-pixel conv (paper) or plain conv (rtseg)
  int low_channels = 48;
  AsppConfig aspp2{128, {6, 12, 18}, 128};
  std::vector<HeadConvConfig> head_convs;  // after F-ASPP-2 (rtseg: {1, 512}, {3, 512})
  int up2_factor = 4;
  bool logits_bias = true;
  bool align_corners = false;  // of the final bilinear resize

  // Derived geometry.
  int high_level_stride() const { return 32; }
  int low_level_stride() const { return 2 << low_level_stage; }  // layer1: 4, layer2: 8, ...
  int low_level_channels() const { return stage_channels[low_level_stage - 1]; }
  int decoder_channels() const { return up1_channels + low_channels; }
  int logits_stride() const { return low_level_stride() / up2_factor; }

  // Throws farsee::Error naming the first inconsistent field.
  void validate() const;
  bool operator==(const FarSeeConfig& o) const;
};

// Preset "paper" (default): low level = layer2, F-ASPP widths 256 / 128 with projections,
// sub-pixel x4 twice, logits at stride 2, bilinear with align_corners=false.
FarSeeConfig paper_config(int num_classes = 19);
// Preset "rtseg": compatible with the FarSeeNet of realtime-semantic-segmentation-pytorch.
FarSeeConfig rtseg_config(int num_classes = 19);
// The reduced-width test variant of a preset used by the network fixtures (tests/fixtures/net/):
// same topology, every channel count of the base preset divided by `width_divisor`, fewer classes.
FarSeeConfig tiny_config(const std::string& base_preset);
// "paper", "rtseg", "tiny-paper" or "tiny-rtseg"; throws naming the argument otherwise.
FarSeeConfig preset_config(const std::string& name);

FarSeeConfig config_from_json_text(const std::string& json_text);
FarSeeConfig load_config_json(const std::string& path);
std::string config_to_json_text(const FarSeeConfig& c);

}  // namespace farsee::net
