#!/usr/bin/env python3
"""Weight conversion to FarSee safetensors files (DESIGN.md section 7).

  --from torchvision  torchvision resnet18 state_dict (.pth, e.g. resnet18-f37072fd.pth) ->
                      `backbone.*` only (fc.* and num_batches_tracked dropped): the ImageNet
                      front-end initialisation for farsee-train.
  --from rtseg        a checkpoint of the FarSeeNet of realtime-semantic-segmentation-pytorch
                      (zh320; its trainer saves {'state_dict': ..., 'cur_epoch': ..., ...}) ->
                      our `rtseg` names (table RTSEG_PUBLIC_NAMES below).
  --from reference    a state_dict of tools/pytorch/reference FarSeeNet (or {'state_dict': ...}) -> as is,
                      checked against --preset.
  --random            randomly initialised weights for --preset (He-normal convs, non-trivial BN
                      statistics: running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2),
                      gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1)), seeded by --seed: for demos.

Examples:
  /usr/bin/python3 tools/pytorch/convert_weights.py --from torchvision resnet18-f37072fd.pth -o backbone.safetensors
  /usr/bin/python3 tools/pytorch/convert_weights.py --from rtseg best.pth -o farsee_rtseg.safetensors
  /usr/bin/python3 tools/pytorch/convert_weights.py --from reference model.pth --preset paper -o paper.safetensors
  /usr/bin/python3 tools/pytorch/convert_weights.py --random --preset paper --seed 1 -o random_paper.safetensors

Every full model written is checked by loading it into the reference model (strict: every tensor
present with its shape, nothing extra). Files hold PyTorch layouts (conv OIHW) in F32 unless
--dtype says otherwise. Written atomically. Metadata (net/api/weights_metadata.h, what farsee-infer,
farsee-eval and the APIs take as their defaults): source, and for a full model preset, num_classes,
config (the whole network configuration, JSON), class_names (--class-names, else the 19 Cityscapes
classes for a 19-class network) and input_size (--input-size HxW: the size it was trained at).
"""

import argparse
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import safetensors_io  # noqa: E402
from reference.farsee_reference import (PRESETS, FarSeeNet, ResNet18,  # noqa: E402
                                        preset_config, randomize_parameters, weight_state_dict)

# realtime-semantic-segmentation-pytorch (models/farseenet.py, class FASPP; models/modules.py)
# -> our rtseg names. Checked against the project's source: ConvBNAct and DWConvBNAct are
# nn.Sequential(conv, BatchNorm2d, Activation) so index 0 is the conv and 1 the BN; conv_high[0] and
# conv_low[0] are ConvBNAct; conv_high[i>0] / conv_low[i>0] are Sequential(ConvBNAct 1x1,
# DWConvBNAct 3x3); sub_pixel_* are Sequential(conv1x1 (no bias), PixelShuffle); conv_low_last is
# Sequential(ConvBNAct 1x1, ConvBNAct 3x3); the front-end copies torchvision's conv1..layer4.
# Not verified against a real checkpoint file (none was available): the names come from the
# module structure. A relu act_type is assumed (others, e.g. prelu, add tensors we do not map:
# they are reported as unmapped and the conversion fails).
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
RTSEG_PUBLIC_NAMES = [
    (r"frontend_network\.(.+)", r"backbone.\1"),
    (r"backend_network\.conv_high\.0\.0\.weight", r"head.aspp1.branch0.conv.weight"),
    (r"backend_network\.conv_high\.0\.1\." + _BN, r"head.aspp1.branch0.bn.\1"),
    (r"backend_network\.conv_high\.([1-9])\.0\.0\.weight", r"head.aspp1.branch\1.pw.conv.weight"),
    (r"backend_network\.conv_high\.([1-9])\.0\.1\." + _BN, r"head.aspp1.branch\1.pw.bn.\2"),
    (r"backend_network\.conv_high\.([1-9])\.1\.0\.weight", r"head.aspp1.branch\1.dw.conv.weight"),
    (r"backend_network\.conv_high\.([1-9])\.1\.1\." + _BN, r"head.aspp1.branch\1.dw.bn.\2"),
    (r"backend_network\.sub_pixel_high\.0\.weight", r"head.up1.conv.weight"),
    (r"backend_network\.conv_low_init\.0\.weight", r"head.low.conv.weight"),
    (r"backend_network\.conv_low_init\.1\." + _BN, r"head.low.bn.\1"),
    (r"backend_network\.conv_low\.0\.0\.weight", r"head.aspp2.branch0.conv.weight"),
    (r"backend_network\.conv_low\.0\.1\." + _BN, r"head.aspp2.branch0.bn.\1"),
    (r"backend_network\.conv_low\.([1-9])\.0\.0\.weight", r"head.aspp2.branch\1.pw.conv.weight"),
    (r"backend_network\.conv_low\.([1-9])\.0\.1\." + _BN, r"head.aspp2.branch\1.pw.bn.\2"),
    (r"backend_network\.conv_low\.([1-9])\.1\.0\.weight", r"head.aspp2.branch\1.dw.conv.weight"),
    (r"backend_network\.conv_low\.([1-9])\.1\.1\." + _BN, r"head.aspp2.branch\1.dw.bn.\2"),
    (r"backend_network\.conv_low_last\.([01])\.0\.weight", r"head.convs.\1.conv.weight"),
    (r"backend_network\.conv_low_last\.([01])\.1\." + _BN, r"head.convs.\1.bn.\2"),
    (r"backend_network\.sub_pixel_low\.0\.weight", r"head.up2.conv.weight"),
]
_RTSEG_RULES = [(re.compile(p + r"\Z"), r) for p, r in RTSEG_PUBLIC_NAMES]

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

# The Cityscapes trainIds 0..18 (tools/cityscapes/metrics.cpp), the default class names.
CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle"]


def fail(msg):
    raise SystemExit(f"convert_weights: {msg}")


def load_state_dict(path, trust_pickle=False):
    """A state_dict from a .pth: a plain state_dict, or a checkpoint dict holding one under
    'state_dict' / 'model'; a DataParallel 'module.' prefix is removed. Read with torch's
    weights_only unpickler unless trust_pickle (a full unpickle runs code from the file)."""
    if not os.path.isfile(path):
        fail(f"no such file '{path}'")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # noqa: BLE001 - surface the file name with torch's reason
        hint = "" if trust_pickle else (
            " (torch's weights_only reader refused it; if you trust the file, pass --trust-pickle)")
        fail(f"cannot read '{path}': {e}{hint}")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        fail(f"'{path}' holds no state_dict (expected a dict of tensors, or one under "
             f"'state_dict' / 'model')")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def drop_untracked(sd):
    return {k: v for k, v in sd.items() if not k.endswith(".num_batches_tracked")}


def map_rtseg_public_name(name):
    """Our name for a public-project tensor name, or None if the table has no rule for it."""
    for rule, replacement in _RTSEG_RULES:
        if rule.match(name):
            return rule.sub(replacement, name)
    return None


def convert_torchvision(sd):
    sd = {k: v for k, v in drop_untracked(sd).items() if not k.startswith("fc.")}
    expected = {k: v.shape for k, v in ResNet18().state_dict().items()
                if not k.endswith(".num_batches_tracked")}
    check_names(sd, expected, "torchvision resnet18")
    return {"backbone." + k: sd[k] for k in expected}, {"preset": "backbone", "content":
                                                       "ResNet-18 front-end only (backbone.*)"}


def convert_rtseg(sd):
    out, unmapped = {}, []
    for k, v in drop_untracked(sd).items():
        ours = map_rtseg_public_name(k)
        if ours is None:
            unmapped.append(k)
        else:
            out[ours] = v
    if unmapped:
        fail("tensors with no rule in RTSEG_PUBLIC_NAMES (is this a resnet18 FarSeeNet with relu "
             "activations?): " + ", ".join(sorted(unmapped)))
    return out


def num_classes_from(sd, factor=4):
    w = sd.get("head.up2.conv.weight")
    if w is None:
        fail("no head.up2.conv.weight: cannot tell the number of classes")
    if w.shape[0] % (factor * factor):
        fail(f"head.up2.conv.weight has {w.shape[0]} output channels, not a multiple of "
             f"{factor * factor}")
    return w.shape[0] // (factor * factor)


def check_names(sd, expected_shapes, what):
    missing = [k for k in expected_shapes if k not in sd]
    extra = [k for k in sd if k not in expected_shapes]
    wrong = [f"{k}: {list(sd[k].shape)} (expected {list(s)})" for k, s in expected_shapes.items()
             if k in sd and tuple(sd[k].shape) != tuple(s)]
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if extra:
        problems.append("unexpected: " + ", ".join(extra))
    if wrong:
        problems.append("wrong shape: " + "; ".join(wrong))
    if problems:
        fail(f"{what}: " + " | ".join(problems))


def check_full_model(sd, preset, num_classes):
    """Loads `sd` into the reference model (strict) and returns it in the model's order."""
    model = FarSeeNet(preset, num_classes)
    expected = {k: v.shape for k, v in weight_state_dict(model).items()}
    check_names(sd, expected, f"preset {preset}")
    model.load_state_dict(sd, strict=False)  # num_batches_tracked stays at its default
    return {k: sd[k] for k in expected}


def settings_metadata(meta, config, a):
    """The settings a full model's file carries (net/api/weights_metadata.h) added to `meta`."""
    meta["config"] = config.to_json()
    meta["num_classes"] = str(config.num_classes)
    names = a.class_names.split(",") if a.class_names else (
        CITYSCAPES_CLASSES if config.num_classes == len(CITYSCAPES_CLASSES) else None)
    if names is not None:
        if len(names) != config.num_classes:
            fail(f"--class-names: {len(names)} names for a network of {config.num_classes} classes")
        meta["class_names"] = json.dumps(names)
    if a.input_size:
        m = re.fullmatch(r"([0-9]+)x([0-9]+)", a.input_size)
        if not m or int(m[1]) % 32 or int(m[2]) % 32 or not int(m[1]) or not int(m[2]):
            fail(f"--input-size: '{a.input_size}' is not HxW with sides positive multiples of 32")
        meta["input_size"] = a.input_size
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", choices=["torchvision", "rtseg", "reference"])
    src.add_argument("--random", action="store_true", help="random weights for --preset")
    p.add_argument("input", nargs="?", help=".pth file (with --from)")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")
    p.add_argument("--preset", choices=PRESETS, help="model preset (--from reference, --random)")
    p.add_argument("--num-classes", type=int, help="--random: classes (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="--random: seed (default 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="f32", help="stored dtype")
    p.add_argument("--input-size", metavar="HxW",
                   help="full models: the input size they were trained at (recorded; the default "
                        "of farsee-infer, farsee-eval and the APIs)")
    p.add_argument("--class-names", metavar="A,B,...",
                   help="full models: the class names, comma-separated (default: the Cityscapes "
                        "classes for 19 classes, else none recorded)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="read the .pth with a full unpickle (needed by older torch for "
                        "checkpoints holding more than tensors; runs code from the file)")
    a = p.parse_args(argv)

    if a.random:
        if a.input:
            fail("--random takes no input file")
        if not a.preset:
            fail("--random needs --preset")
        model = randomize_parameters(FarSeeNet(a.preset, a.num_classes), a.seed)
        tensors = weight_state_dict(model)
        meta = settings_metadata({"preset": a.preset, "source": f"random, seed {a.seed}"},
                                 model.config, a)
    else:
        if not a.input:
            fail(f"--from {a.source} needs an input .pth file")
        sd = load_state_dict(a.input, a.trust_pickle)
        if a.source == "torchvision":
            if a.input_size or a.class_names:
                fail("--input-size and --class-names describe full models, not a backbone")
            tensors, meta = convert_torchvision(sd)
        elif a.source == "rtseg":
            sd = convert_rtseg(sd)
            n = num_classes_from(sd)
            tensors = check_full_model(sd, "rtseg", n)
            meta = settings_metadata({"preset": "rtseg"}, preset_config("rtseg", n), a)
        else:
            if not a.preset:
                fail("--from reference needs --preset")
            sd = drop_untracked(sd)
            factor = FarSeeNet(a.preset).config.up2_factor
            n = num_classes_from(sd, factor)
            tensors = check_full_model(sd, a.preset, n)
            meta = settings_metadata({"preset": a.preset}, preset_config(a.preset, n), a)
        meta["source"] = f"{a.source}: {os.path.basename(a.input)}"
    tensors = {k: v.float() for k, v in tensors.items()}
    safetensors_io.save(a.output, tensors, meta, DTYPES[a.dtype])
    count = sum(v.numel() for v in tensors.values())
    print(f"wrote {a.output}: {len(tensors)} tensors, {count} values, {a.dtype}, "
          f"preset {meta['preset']}")


if __name__ == "__main__":
    main()
