"""PyTorch reference model of FarSee-Net (DESIGN.md sections 6 and 7): the oracle for the C++ network.

Needs only torch (Debian python3-torch); torchvision is not required: the ResNet-18 front-end is
written here with torchvision's module names, so torchvision `resnet18` state_dicts load into
`model.backbone` unchanged (minus `fc.*`).

    model = FarSeeNet("paper", num_classes=19).eval()
    logits = model(normalize_imagenet(rgb01), out_size=(1024, 2048))   # NCHW

Configuration
-------------
`FarSeeConfig` mirrors the C++ `farsee::net::FarSeeConfig` (net/config.h) field for field, and
`FarSeeConfig.to_json()` writes the same JSON keys as its `config_to_json_text`:

    preset, num_classes, stem_channels, stage_channels[4], stage_blocks[4], low_level_stage,
    aspp1 {width, rates, project_channels (0: none)}, up1_factor, up1_channels, up1_bn_relu,
    low_channels, aspp2 {...}, head_convs [{kernel, channels}], up2_factor, logits_bias,
    align_corners

Presets: "paper", "rtseg", and their reduced-width test variants "tiny-paper" / "tiny-rtseg"
(`tiny_config`): the same topology with every channel count divided by TINY_WIDTH_DIVISOR (8) and
TINY_NUM_CLASSES (5) classes. The committed network fixtures (tests/fixtures/net/) use the tiny
variants, because full-width ResNet-18 weights (~45 MB fp32) are too big to commit.

Topology
--------
front-end: torchvision ResNet-18 (7x7/2 stem + BN + ReLU, 3x3/2 max pool, layer1..layer4 of
BasicBlocks, no dilation). high-level = layer4 (stride 32); low-level = layer<low_level_stage>
(paper: layer2, stride 8; rtseg: layer3, stride 16).
back-end (`head`):
  aspp1   F-ASPP on high: branch0 = 1x1 unit; branch_i = pw (1x1 unit) -> dw (3x3 depthwise unit,
          dilation = padding = rate_i); concat [branch0, branch1, ...]; optional 1x1 projection.
  up1     sub-pixel conv: 1x1 conv to up1_channels * t^2 (t = up1_factor) [+ BN + ReLU on those
          t^2-times-wider channels, paper], then PixelShuffle(t).
  low     1x1 unit on the low-level map.
  concat  [up1 output, low]
  aspp2   F-ASPP on the concat (same structure).
  convs   optional conv units after aspp2 (rtseg: 1x1 then 3x3, padding 1).
  up2     sub-pixel logits conv: 1x1 conv to num_classes * t^2 (+ bias if logits_bias), no BN/ReLU,
          PixelShuffle(t).
output: bilinear resize (F.interpolate, align_corners per preset) to out_size (default: the input
size). A "unit" is conv (no bias) + BatchNorm2d (eps 1e-5, momentum 0.1) + ReLU.

Tensor names (state_dict; full list with shapes in tools/pytorch/reference/NAMES.md)
------------------------------------------------------------------------------
front-end, prefix `backbone.`: torchvision names: conv1.weight, bn1.{weight,bias,running_mean,
running_var,num_batches_tracked}, layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2}.*,
layer{2,3,4}.0.downsample.{0 (conv), 1 (BN)}.*.
back-end, prefix `head.`; a unit U has U.conv.weight and U.bn.{weight,bias,running_mean,running_var}
(+ num_batches_tracked, which weight files omit):
  paper:  head.aspp1.branch0, head.aspp1.branch{1,2,3}.pw, head.aspp1.branch{1,2,3}.dw,
          head.aspp1.project, head.up1 (unit: conv 256->4096 + BN(4096)), head.low,
          head.aspp2.branch0, head.aspp2.branch{1,2,3}.{pw,dw}, head.aspp2.project,
          head.up2.conv.{weight,bias}
  rtseg:  head.aspp1.branch0, head.aspp1.branch{1,2,3}.{pw,dw} (no project),
          head.up1.conv.weight (conv only: no BN, no bias), head.low,
          head.aspp2.branch0, head.aspp2.branch{1,2}.{pw,dw} (no project),
          head.convs.0 (1x1 unit 384->512), head.convs.1 (3x3 unit 512->512),
          head.up2.conv.weight (no bias)
Weight files store PyTorch layouts (conv OIHW, depthwise [C,1,3,3]); the C++ loader converts.

rtseg and the public realtime-semantic-segmentation-pytorch FarSeeNet (models/farseenet.py):
tools/pytorch/convert_weights.py maps its names (frontend_network.* -> backbone.*, backend_network.conv_high
-> head.aspp1, sub_pixel_high.0 -> head.up1.conv, conv_low_init -> head.low, conv_low -> head.aspp2,
conv_low_last -> head.convs, sub_pixel_low.0 -> head.up2.conv); the arithmetic is identical (its
DWConvBNAct pads (3-1)//2*dilation = dilation, its ConvBNAct 3x3 pads 1, it resizes with
align_corners=True to the input size).

Input normalisation is not part of forward: call `normalize_imagenet` on RGB in [0, 1].
"""

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

TINY_WIDTH_DIVISOR = 8
TINY_NUM_CLASSES = 5


# ---------------------------------------------------------------------------------------------
# Configuration (mirrors net/config.h)
# ---------------------------------------------------------------------------------------------

@dataclass
class AsppConfig:
    width: int = 256                      # channels of every branch
    rates: List[int] = field(default_factory=lambda: [6, 12, 18])  # dilations of branches 1..k
    project_channels: int = 256           # 1x1 projection of the concat; 0: none

    def concat_channels(self):
        return self.width * (len(self.rates) + 1)

    def output_channels(self):
        return self.project_channels if self.project_channels > 0 else self.concat_channels()


@dataclass
class HeadConvConfig:
    kernel: int = 1
    channels: int = 0


@dataclass
class FarSeeConfig:
    preset: str = "paper"
    num_classes: int = 19
    stem_channels: int = 64
    stage_channels: List[int] = field(default_factory=lambda: [64, 128, 256, 512])
    stage_blocks: List[int] = field(default_factory=lambda: [2, 2, 2, 2])
    low_level_stage: int = 2
    aspp1: AsppConfig = field(default_factory=lambda: AsppConfig(256, [6, 12, 18], 256))
    up1_factor: int = 4
    up1_channels: int = 256
    up1_bn_relu: bool = True
    low_channels: int = 48
    aspp2: AsppConfig = field(default_factory=lambda: AsppConfig(128, [6, 12, 18], 128))
    head_convs: List[HeadConvConfig] = field(default_factory=list)
    up2_factor: int = 4
    logits_bias: bool = True
    align_corners: bool = False

    def low_level_stride(self):
        return 2 << self.low_level_stage

    def logits_stride(self):
        return self.low_level_stride() // self.up2_factor

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_dict(d):
        d = copy.deepcopy(d)
        c = preset_config(d.pop("preset", "paper"))
        for key, value in d.items():
            if not hasattr(c, key):
                raise ValueError(f"FarSeeConfig: unknown field '{key}'")
            if key in ("aspp1", "aspp2"):
                value = AsppConfig(**{**dataclasses.asdict(getattr(c, key)), **value})
            elif key == "head_convs":
                value = [HeadConvConfig(**h) for h in value]
            setattr(c, key, value)
        c.validate()
        return c

    def validate(self):
        if 32 != self.low_level_stride() * self.up1_factor:
            raise ValueError(f"up1_factor {self.up1_factor} does not bring stride 32 to the "
                             f"low-level stride {self.low_level_stride()}")
        if self.low_level_stride() % self.up2_factor:
            raise ValueError(f"up2_factor {self.up2_factor} does not divide the low-level stride")
        if not 1 <= self.low_level_stage <= 3:
            raise ValueError(f"low_level_stage {self.low_level_stage} must be 1, 2 or 3")


def paper_config(num_classes=19):
    return FarSeeConfig(preset="paper", num_classes=num_classes)


def rtseg_config(num_classes=19):
    return FarSeeConfig(
        preset="rtseg", num_classes=num_classes, low_level_stage=3,
        aspp1=AsppConfig(256, [6, 12, 18], 0), up1_factor=2, up1_channels=512,
        up1_bn_relu=False, low_channels=48, aspp2=AsppConfig(128, [6, 12], 0),
        head_convs=[HeadConvConfig(1, 512), HeadConvConfig(3, 512)], up2_factor=4,
        logits_bias=False, align_corners=True)


def tiny_config(base_preset):
    """Reduced-width test variant: same topology, channels / TINY_WIDTH_DIVISOR, 5 classes."""
    bases = {"paper": paper_config, "rtseg": rtseg_config}
    if base_preset not in bases:
        raise ValueError(f"tiny_config: base preset '{base_preset}' is not one of paper, rtseg")
    c = bases[base_preset](TINY_NUM_CLASSES)
    c.preset = "tiny-" + base_preset

    def div(v):
        if v % TINY_WIDTH_DIVISOR:
            raise ValueError(f"{v} channels not divisible by {TINY_WIDTH_DIVISOR}")
        return v // TINY_WIDTH_DIVISOR

    c.stem_channels = div(c.stem_channels)
    c.stage_channels = [div(v) for v in c.stage_channels]
    for a in (c.aspp1, c.aspp2):
        a.width = div(a.width)
        a.project_channels = div(a.project_channels)
    c.up1_channels = div(c.up1_channels)
    c.low_channels = div(c.low_channels)
    for h in c.head_convs:
        h.channels = div(h.channels)
    return c


PRESETS = ("paper", "rtseg", "tiny-paper", "tiny-rtseg")


def preset_config(name, num_classes=None):
    if name == "paper":
        c = paper_config()
    elif name == "rtseg":
        c = rtseg_config()
    elif name in ("tiny-paper", "tiny-rtseg"):
        c = tiny_config(name[len("tiny-"):])
    else:
        raise ValueError(f"preset '{name}' is not one of {', '.join(PRESETS)}")
    if num_classes is not None:
        c.num_classes = num_classes
    return c


# ---------------------------------------------------------------------------------------------
# Front-end: ResNet-18 with torchvision's module names
# ---------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:  # torchvision's condition (expansion 1)
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class ResNet18(nn.Module):
    """torchvision.models.resnet18 without avgpool/fc; widths from the config."""

    def __init__(self, stem_channels=64, stage_channels=(64, 128, 256, 512),
                 stage_blocks=(2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = stem_channels
        for i, (out_ch, blocks) in enumerate(zip(stage_channels, stage_blocks)):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(in_ch, out_ch, 2 if (i > 0 and b == 0) else 1))
                in_ch = out_ch
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))

    def forward(self, x):
        """Returns [layer1, layer2, layer3, layer4] outputs (strides 4, 8, 16, 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            outs.append(x)
        return outs


# ---------------------------------------------------------------------------------------------
# Back-end
# ---------------------------------------------------------------------------------------------

class Unit(nn.Module):
    """conv (no bias) + BN + ReLU: tensors `conv.weight`, `bn.*`."""

    def __init__(self, in_ch, out_ch, kernel=1, dilation=1, groups=1):
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, 1, pad, dilation=dilation, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class FactorizedBranch(nn.Module):
    """1x1 unit then 3x3 depthwise atrous unit (the F-ASPP factorisation of a 3x3 atrous conv)."""

    def __init__(self, in_ch, width, rate):
        super().__init__()
        self.pw = Unit(in_ch, width, 1)
        self.dw = Unit(width, width, 3, dilation=rate, groups=width)

    def forward(self, x):
        return self.dw(self.pw(x))


class FASPP(nn.Module):
    """branch0, branch1..k (attribute names, not a ModuleList, so names read branch0, branch1, ...)."""

    def __init__(self, in_ch, cfg: AsppConfig):
        super().__init__()
        self.num_rates = len(cfg.rates)
        self.branch0 = Unit(in_ch, cfg.width, 1)
        for i, rate in enumerate(cfg.rates, start=1):
            setattr(self, f"branch{i}", FactorizedBranch(in_ch, cfg.width, rate))
        self.project = (Unit(cfg.concat_channels(), cfg.project_channels, 1)
                        if cfg.project_channels > 0 else None)

    def forward(self, x):
        branches = [getattr(self, f"branch{i}")(x) for i in range(self.num_rates + 1)]
        y = torch.cat(branches, dim=1)
        return self.project(y) if self.project is not None else y


class SubPixelConv(nn.Module):
    """1x1 conv to out_ch * t^2 [+ BN + ReLU] [+ bias], PixelShuffle(t)."""

    def __init__(self, in_ch, out_ch, factor, bn_relu, bias):
        super().__init__()
        wide = out_ch * factor * factor
        self.conv = nn.Conv2d(in_ch, wide, 1, bias=bias)
        self.bn = nn.BatchNorm2d(wide, eps=BN_EPS, momentum=BN_MOMENTUM) if bn_relu else None
        self.shuffle = nn.PixelShuffle(factor)

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = F.relu(self.bn(x))
        return self.shuffle(x)


class FarSeeHead(nn.Module):
    def __init__(self, cfg: FarSeeConfig):
        super().__init__()
        high_ch = cfg.stage_channels[3]
        low_ch = cfg.stage_channels[cfg.low_level_stage - 1]
        self.aspp1 = FASPP(high_ch, cfg.aspp1)
        self.up1 = SubPixelConv(cfg.aspp1.output_channels(), cfg.up1_channels, cfg.up1_factor,
                                bn_relu=cfg.up1_bn_relu, bias=False)
        self.low = Unit(low_ch, cfg.low_channels, 1)
        self.aspp2 = FASPP(cfg.up1_channels + cfg.low_channels, cfg.aspp2)
        ch = cfg.aspp2.output_channels()
        convs = []
        for h in cfg.head_convs:
            convs.append(Unit(ch, h.channels, h.kernel))
            ch = h.channels
        self.convs = nn.ModuleList(convs) if convs else None
        self.up2 = SubPixelConv(ch, cfg.num_classes, cfg.up2_factor, bn_relu=False,
                                bias=cfg.logits_bias)


class FarSeeNet(nn.Module):
    """FarSeeNet(preset, num_classes): preset is a name of PRESETS or a FarSeeConfig; num_classes
    None keeps the preset's (19 for paper/rtseg, 5 for the tiny variants)."""

    def __init__(self, preset: Union[str, FarSeeConfig] = "paper",
                 num_classes: Optional[int] = None):
        super().__init__()
        cfg = copy.deepcopy(preset) if isinstance(preset, FarSeeConfig) else preset_config(preset)
        if num_classes is not None:
            cfg.num_classes = num_classes
        cfg.validate()
        self.config = cfg
        self.backbone = ResNet18(cfg.stem_channels, cfg.stage_channels, cfg.stage_blocks)
        self.head = FarSeeHead(cfg)

    def forward(self, x, out_size: Optional[Sequence[int]] = None):
        """x: normalised NCHW input; returns logits NCHW at out_size (default: input size)."""
        return self.forward_intermediates(x, out_size)["logits"]

    def forward_intermediates(self, x, out_size=None):
        """forward, also returning the named intermediate tensors (for fixtures and debugging)."""
        cfg = self.config
        head = self.head
        out = {}
        stages = self.backbone(x)
        for i, s in enumerate(stages, start=1):
            out[f"backbone.layer{i}"] = s
        low_level = stages[cfg.low_level_stage - 1]
        y = head.aspp1(stages[3])
        out["head.aspp1"] = y
        y = head.up1(y)
        out["head.up1"] = y
        low = head.low(low_level)
        out["head.low"] = low
        y = torch.cat([y, low], dim=1)  # decoder concat: [up1 output, low]
        out["head.decoder_concat"] = y
        y = head.aspp2(y)
        out["head.aspp2"] = y
        if head.convs is not None:
            for i, conv in enumerate(head.convs):
                y = conv(y)
                out[f"head.convs.{i}"] = y
        y = head.up2(y)
        out["head.up2"] = y  # logits at stride logits_stride, before the resize
        size = tuple(out_size) if out_size is not None else tuple(x.shape[-2:])
        out["logits"] = F.interpolate(y, size=size, mode="bilinear",
                                      align_corners=cfg.align_corners)
        return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def normalize_imagenet(rgb01: torch.Tensor) -> torch.Tensor:
    """(rgb - mean) / std per channel on NCHW RGB in [0, 1] (torchvision's ImageNet transform)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    return (rgb01 - mean) / std


def weight_state_dict(model: nn.Module):
    """The state_dict as weight files hold it: no num_batches_tracked."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith(".num_batches_tracked")}


@torch.no_grad()
def randomize_parameters(model: nn.Module, seed: int):
    """Deterministic random weights with non-trivial BN statistics (for demos and fixtures):
    conv weights He-normal over fan-in (std sqrt(2 / fan_in)), conv biases N(0, 0.1);
    BN gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2).
    Tensors are filled in state_dict order from one torch.Generator seeded with `seed`."""
    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    for name, t in model.state_dict(keep_vars=True).items():
        owner, _, leaf = name.rpartition(".")
        m = modules[owner]
        if leaf == "num_batches_tracked":
            continue
        if isinstance(m, nn.Conv2d):
            if leaf == "weight":
                fan_in = t.shape[1] * t.shape[2] * t.shape[3]
                t.data.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
            else:
                t.data.normal_(0.0, 0.1, generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            if leaf == "weight":
                t.data.uniform_(0.5, 1.5, generator=g)
            elif leaf == "bias":
                t.data.normal_(0.0, 0.1, generator=g)
            elif leaf == "running_mean":
                t.data.normal_(0.0, 0.1, generator=g)
            elif leaf == "running_var":
                t.data.uniform_(0.5, 2.0, generator=g)
        else:
            raise AssertionError(f"randomize_parameters: unexpected tensor {name}")
    return model


def parameter_specs(cfg_or_preset) -> List[Tuple[str, Tuple[int, ...]]]:
    """(name, shape) of every tensor a weight file holds, in state_dict order."""
    cfg = cfg_or_preset if isinstance(cfg_or_preset, FarSeeConfig) else preset_config(cfg_or_preset)
    return [(k, tuple(v.shape)) for k, v in weight_state_dict(FarSeeNet(cfg)).items()]


def names_markdown() -> str:
    """The text of tools/pytorch/reference/NAMES.md."""
    lines = ["# FarSee-Net weight tensor names",
             "",
             "Generated by `/usr/bin/python3 tools/pytorch/reference/farsee_reference.py --names > "
             "tools/pytorch/reference/NAMES.md` from the reference model (`weight_state_dict`: the "
             "state_dict without `num_batches_tracked`). Shapes are PyTorch's (conv OIHW, "
             "depthwise [C, 1, 3, 3], BN [C]); num_classes = 19 for the full presets, 5 for the "
             "tiny ones. Files store fp32 unless stated otherwise.",
             ""]
    lines += ["Unit naming: a conv+BN(+ReLU) unit `U` is `U.conv.weight` + "
              "`U.bn.{weight,bias,running_mean,running_var}`; the sub-pixel convs are `head.up1` "
              "(paper: a unit whose BN has up1_channels*t^2 channels, applied before the shuffle; "
              "rtseg: `head.up1.conv.weight` only) and `head.up2.conv.{weight[,bias]}`.",
              "",
              "`rtseg` vs realtime-semantic-segmentation-pytorch (`tools/pytorch/convert_weights.py "
              "--from rtseg`, table `RTSEG_PUBLIC_NAMES`): `frontend_network.X` -> `backbone.X`; "
              "`backend_network.conv_high.0.{0,1}` -> `head.aspp1.branch0.{conv,bn}`; "
              "`conv_high.i.0.{0,1}` / `conv_high.i.1.{0,1}` -> `head.aspp1.branch<i>.pw` / `.dw` "
              "`.{conv,bn}`; `sub_pixel_high.0` -> `head.up1.conv`; `conv_low_init.{0,1}` -> "
              "`head.low.{conv,bn}`; `conv_low.*` -> `head.aspp2.*` (as conv_high); "
              "`conv_low_last.j.{0,1}` -> `head.convs.<j>.{conv,bn}`; `sub_pixel_low.0` -> "
              "`head.up2.conv`.",
              ""]
    for preset in PRESETS:
        specs = parameter_specs(preset)
        count = sum(int(torch.tensor(s).prod()) if s else 1 for _, s in specs)
        lines += [f"## `{preset}`: {len(specs)} tensors, {count} values", "", "```"]
        for name, shape in specs:
            lines.append(f"{name} {list(shape)}")
        lines += ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", action="store_true", help="print NAMES.md")
    p.add_argument("--config", metavar="PRESET", help="print the preset's config JSON")
    a = p.parse_args()
    if a.names:
        print(names_markdown(), end="")
    elif a.config:
        print(preset_config(a.config).to_json())
    else:
        p.print_help()
