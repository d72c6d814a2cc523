#!/usr/bin/env python3
"""Network test fixtures (tests/fixtures/net/) from the PyTorch reference model.

    /usr/bin/python3 tools/pytorch/make_net_fixtures.py                    # tiny-paper, tiny-rtseg -> tests/fixtures/net
    /usr/bin/python3 tools/pytorch/make_net_fixtures.py --full --out DIR   # full-width paper, rtseg (not committed)

Per preset P (tiny-paper and tiny-rtseg by default; paper and rtseg with --full):

  P.weights.safetensors  the reference model's weights, F32, PyTorch names and layouts (OIHW),
                         metadata: preset, num_classes, config (JSON, the keys of
                         net/config.h's config_to_json_text).
  P.io.safetensors       F32, NCHW (PyTorch layout; the C++ side transposes to NHWC):
                           input                  [1, 3, 64, 128] ImageNet-normalised RGB (an
                                                  image-like smooth colour field with noise, 8-bit
                                                  levels: make_input)
                           logits                 [1, N, 64, 128] at the input size
                           logits_out_80x144      [1, N, 80, 144] (paper only: an output size larger
                                                  than the input, non-integer ratios, as the paper's
                                                  training does)
                           backbone.layer1..4, head.aspp1, head.up1, head.low,
                           head.decoder_concat, head.aspp2, head.convs.<i> (rtseg),
                           head.up2 (logits at the logits stride, before the resize)
  P.json                 manifest: config, sizes, every tensor's shape and max |value|, per-weight
                         checksums, how it was made, and two measured error scales for the C++
                         tolerances: torch_fp32_max_abs_error (PyTorch's float32 forward vs the
                         float64 truth, per output) and fp16_storage_emulation (max abs error and
                         argmax label agreement of the C++ fp16 inference numerics emulated in
                         PyTorch: fp16_storage_emulation()).

Weights: He-normal convs, BN gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), logits bias ~ N(0, 0.1)
(reference.farsee_reference.randomize_parameters); then every BN's running statistics are set
from its input on the fixture (eval mode, in forward order): with m2 = max(mean(z^2), 1.0) over
the channel's N*H*W values, running_var = m2 * U(0.5, 2) and running_mean = N(0, 0.1) * sqrt(m2).
This keeps activations O(1) through the 20+ layers (uncalibrated they grow to ~250) while BN
still scales and shifts every channel differently. The statistics are deliberately not the batch
mean/variance: on the 2x4 and 4x8 maps of the deep layers, subtracting the batch mean cancels
most of each value, which made rounding errors 3-5x larger at the logits (fp16 labels then
disagreed with the float64 truth on ~4% of pixels instead of ~0.8%, for reasons that have nothing
to do with the implementation).

Precision: the weights and the input are generated in float32 and stored as float32; the expected
outputs are computed in float64 from exactly those float32 values (model.double()), then rounded to
float32 for storage. So the stored logits are the exact network output up to one fp32 rounding.
"""

import argparse
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import safetensors_io  # noqa: E402
from reference.farsee_reference import (BasicBlock, FarSeeNet, SubPixelConv,  # noqa: E402
                                        Unit, normalize_imagenet, randomize_parameters,
                                        weight_state_dict)

INPUT_H, INPUT_W = 64, 128
EXTRA_OUT_SIZE = (80, 144)  # paper only
SEEDS = {"tiny-paper": 101, "tiny-rtseg": 202, "paper": 303, "rtseg": 404}
MEAN_SQUARE_FLOOR = 1.0


@torch.no_grad()
def calibrate_batchnorm(model, x, generator):
    """Sets every BN's running statistics from its input on `x` (see the module docstring)."""
    def pre_hook(bn, inputs):
        t = inputs[0]
        mean_square = (t * t).mean(dim=(0, 2, 3)).clamp_min(MEAN_SQUARE_FLOOR)
        c = mean_square.numel()
        rms = mean_square.sqrt()
        bn.running_mean.copy_(torch.randn(c, generator=generator) * 0.1 * rms)
        bn.running_var.copy_(mean_square * torch.empty(c).uniform_(0.5, 2.0, generator=generator))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in model.modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    model.eval()
    model(x)
    for h in hooks:
        h.remove()


def make_input(generator):
    """An image-like input: a smooth random colour field (a 4x8 grid of random colours, bilinearly
    upsampled: regions and gradients, like a scene) plus per-pixel noise of +-10/255, quantised to
    8-bit levels, then ImageNet-normalised. (Pure per-pixel noise makes the logits change class
    every few pixels, so many pixels sit on a near-tie that fp16 rounding legitimately flips.)"""
    coarse = torch.rand((1, 3, 4, 8), generator=generator)
    smooth = F.interpolate(coarse, size=(INPUT_H, INPUT_W), mode="bilinear", align_corners=False)
    noise = (torch.rand((1, 3, INPUT_H, INPUT_W), generator=generator) * 2 - 1) * (10 / 255)
    rgb = torch.round((smooth + noise).clamp(0, 1) * 255) / 255
    return normalize_imagenet(rgb)  # float32


def _round_to_half(t):
    return t.half().to(t.dtype)


@torch.no_grad()
def fp16_storage_emulation(model, x, out_sizes):
    """What the C++ fp16 path can achieve on this fixture, measured in PyTorch: a float64 copy of
    `model` with the C++ fp16 inference numerics - BN folded into the conv weights, non-depthwise
    conv weights rounded to fp16 (depthwise weights and all biases stay fp32), the input and every
    stored activation (each conv/BN/ReLU unit output, block outputs, the sub-pixel outputs, the
    logits) rounded to fp16; accumulation in float64 (the C++ accumulates in fp32: negligible
    next to the fp16 roundings). Returns {output name: tensor}."""
    m = copy.deepcopy(model).double().eval()
    pairs = [(m.backbone.conv1, m.backbone.bn1)]
    for mod in m.modules():
        if isinstance(mod, Unit) or (isinstance(mod, SubPixelConv) and mod.bn is not None):
            pairs.append((mod.conv, mod.bn))
        elif isinstance(mod, BasicBlock):
            pairs += [(mod.conv1, mod.bn1), (mod.conv2, mod.bn2)]
            if mod.downsample is not None:
                pairs.append((mod.downsample[0], mod.downsample[1]))
    for conv, bn in pairs:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = conv.weight * scale.view(-1, 1, 1, 1)
        conv.weight.copy_(_round_to_half(w) if conv.groups == 1 else w.float().double())
        bn.bias.copy_((bn.bias - bn.running_mean * scale).float().double())
        # BN becomes "+ bias": (z - 0) / sqrt((1 - eps) + eps) * 1 + bias
        bn.weight.fill_(1.0)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    m.head.up2.conv.weight.copy_(_round_to_half(m.head.up2.conv.weight))
    for name, mod in m.named_modules():
        if isinstance(mod, (Unit, SubPixelConv, torch.nn.ReLU)) or name.endswith(".downsample"):
            mod.register_forward_hook(lambda _m, _i, out: _round_to_half(out))
    xq = _round_to_half(x.double())
    out = {"head.up2": m.forward_intermediates(xq)["head.up2"]}
    for name, size in out_sizes.items():
        out[name] = m(xq, out_size=size)
    return out


def label_agreement(got, want):
    return float((got.argmax(1) == want.argmax(1)).double().mean())


def checksum(t):
    t = t.double()
    return {"sum": float(t.sum()), "abs_sum": float(t.abs().sum())}


def make_preset(preset, out_dir):
    seed = SEEDS[preset]
    g = torch.Generator().manual_seed(seed)
    model = FarSeeNet(preset).eval()
    randomize_parameters(model, seed)
    x = make_input(g)
    calibrate_batchnorm(model, x, g)
    cfg = model.config

    weights = weight_state_dict(model)  # float32
    reference = FarSeeNet(cfg).double().eval()
    reference.load_state_dict(model.state_dict())  # float32 values, exactly, in float64
    with torch.no_grad():
        acts = reference.forward_intermediates(x.double())
        extra = {}
        if cfg.preset.endswith("paper"):
            extra[f"logits_out_{EXTRA_OUT_SIZE[0]}x{EXTRA_OUT_SIZE[1]}"] = reference(
                x.double(), out_size=EXTRA_OUT_SIZE)

    # How far PyTorch's own float32 forward is from the float64 truth: a measured scale for the
    # C++ fp32 tolerances.
    with torch.no_grad():
        acts32 = model.forward_intermediates(x)
        for k, v in extra.items():
            acts32[k] = model(x, out_size=tuple(v.shape[-2:]))
    fp32_error = {k: float((acts32[k].double() - v).abs().max())
                  for k, v in {**acts, **extra}.items()}

    out_sizes = {"logits": (INPUT_H, INPUT_W), **{k: tuple(v.shape[-2:]) for k, v in extra.items()}}
    fp16 = fp16_storage_emulation(model, x, out_sizes)
    truth = {"logits": acts["logits"], "head.up2": acts["head.up2"], **extra}
    fp16_report = {k: {"max_abs_error": float((v - truth[k]).abs().max()),
                       **({"label_agreement": label_agreement(v, truth[k])} if k != "head.up2"
                          else {})}
                   for k, v in fp16.items()}

    io = {"input": x}
    io["logits"] = acts.pop("logits")
    io.update(extra)
    io.update(acts)
    io = {k: v.float().contiguous() for k, v in io.items()}

    meta = {"preset": cfg.preset, "num_classes": str(cfg.num_classes), "config": json.dumps(
        cfg.to_dict()), "generator": "tools/pytorch/make_net_fixtures.py", "seed": str(seed)}
    weights_name = f"{preset}.weights.safetensors"
    io_name = f"{preset}.io.safetensors"
    safetensors_io.save(os.path.join(out_dir, weights_name), weights, meta)
    safetensors_io.save(os.path.join(out_dir, io_name), io,
                        {"preset": cfg.preset, "layout": "NCHW", "dtype_note":
                         "computed in float64 from the float32 weights and input, stored float32"})

    manifest = {
        "preset": cfg.preset,
        "config": cfg.to_dict(),
        "batch": 1,
        "input_size": [INPUT_H, INPUT_W],
        "output_sizes": {"logits": [INPUT_H, INPUT_W],
                         **{k: list(v.shape[-2:]) for k, v in extra.items()}},
        "align_corners": cfg.align_corners,
        "logits_stride": cfg.logits_stride(),
        "weights_file": weights_name,
        "io_file": io_name,
        "io_layout": "NCHW",
        "io_shapes": {k: list(v.shape) for k, v in io.items()},
        "io_max_abs": {k: float(v.abs().max()) for k, v in io.items()},
        "torch_fp32_max_abs_error": fp32_error,
        "fp16_storage_emulation": fp16_report,
        "parameters": [{"name": k, "shape": list(v.shape), **checksum(v)}
                       for k, v in weights.items()],
        "made_by": f"tools/pytorch/make_net_fixtures.py, torch {torch.__version__}, seed {seed}",
        "precision": "weights and input generated in float32; expected outputs computed in "
                     "float64 from those float32 values, stored as float32",
        "bn_statistics": "running statistics calibrated on this input and perturbed (see the "
                         "script's docstring): BN is non-trivial, activations stay O(1)",
    }
    with open(os.path.join(out_dir, f"{preset}.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    sizes = {n: os.path.getsize(os.path.join(out_dir, n))
             for n in (weights_name, io_name, f"{preset}.json")}
    print(f"{preset}: " + ", ".join(f"{n} {s / 1024:.0f} KiB" for n, s in sizes.items()))
    for k, v in io.items():
        print(f"  {k:24s} {list(v.shape)}  max|v| {float(v.abs().max()):.3f}")


# Fixture freshness (tools/pytorch/reference/test_reference.py): regenerated fixtures are compared with the
# committed ones with tolerances, not bitwise: PyTorch's float32 CPU kernels (the BN calibration's
# forward pass, the fp32 error measurement) reduce in an order that depends on the CPU's SIMD
# width and thread count, so another machine with the same torch makes fixtures that differ in the
# last bits. A real change of the generator (seed, init, calibration, network) moves values by
# O(1) of their scale, far outside these bounds.
TENSOR_RTOL = 1e-4        # per tensor: max |made - committed| <= TENSOR_RTOL * max |committed|
NUMBER_RTOL = 1e-4        # manifest numbers (shapes' max |v|, checksums)
ERROR_SCALE_RTOL = 0.5    # measured rounding-error scales (torch_fp32_max_abs_error,
                          # fp16 max_abs_error): they measure last-bit noise themselves
AGREEMENT_ATOL = 0.005    # fp16 label agreement (a near-tie pixel may flip)


def _compare_json(made, committed, where, loose, out):
    if isinstance(committed, dict):
        if not isinstance(made, dict) or set(made) != set(committed):
            out.append(f"{where}: keys differ")
            return
        for k in committed:
            _compare_json(made[k], committed[k], f"{where}.{k}",
                          loose or k in ("torch_fp32_max_abs_error", "fp16_storage_emulation"), out)
    elif isinstance(committed, list):
        if not isinstance(made, list) or len(made) != len(committed):
            out.append(f"{where}: lengths differ")
            return
        for i, (a, b) in enumerate(zip(made, committed)):
            _compare_json(a, b, f"{where}[{i}]", loose, out)
    elif isinstance(committed, float) and isinstance(made, (int, float)):
        if where.endswith("label_agreement"):
            ok = abs(made - committed) <= AGREEMENT_ATOL
        else:
            rtol = ERROR_SCALE_RTOL if loose else NUMBER_RTOL
            ok = abs(made - committed) <= rtol * abs(committed) + 1e-12
        if not ok:
            out.append(f"{where}: {made!r} vs committed {committed!r}")
    elif made != committed:
        out.append(f"{where}: {made!r} vs committed {committed!r}")


def fixture_differences(made_dir, committed_dir):
    """Differences between freshly made fixtures and the committed ones beyond the tolerances
    above (an empty list: the committed fixtures are current)."""
    out = []
    made_names, committed_names = sorted(os.listdir(made_dir)), sorted(os.listdir(committed_dir))
    if made_names != committed_names:
        out.append(f"files: made {made_names}, committed {committed_names}")
    for name in sorted(set(made_names) & set(committed_names)):
        a, b = os.path.join(made_dir, name), os.path.join(committed_dir, name)
        if name.endswith(".json"):
            with open(a) as fa, open(b) as fb:
                _compare_json(json.load(fa), json.load(fb), name, False, out)
            continue
        ta, ma = safetensors_io.load(a)
        tb, mb = safetensors_io.load(b)
        if ma != mb:
            out.append(f"{name}: metadata differs")
        if list(ta) != list(tb):
            out.append(f"{name}: tensor names or order differ")
            continue
        for k in tb:
            if ta[k].dtype != tb[k].dtype or ta[k].shape != tb[k].shape:
                out.append(f"{name}: {k}: dtype/shape {ta[k].dtype} {tuple(ta[k].shape)} vs "
                           f"committed {tb[k].dtype} {tuple(tb[k].shape)}")
                continue
            if tb[k].numel() == 0:
                continue
            err = float((ta[k].double() - tb[k].double()).abs().max())
            scale = float(tb[k].double().abs().max())
            if not err <= TENSOR_RTOL * scale:
                out.append(f"{name}: {k}: max abs difference {err:.3g} > {TENSOR_RTOL} x "
                           f"max|committed| {scale:.3g}")
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "net"))
    p.add_argument("--full", action="store_true",
                   help="full-width paper and rtseg (large files: do not commit)")
    p.add_argument("--preset", action="append", choices=sorted(SEEDS),
                   help="only these presets (repeatable)")
    a = p.parse_args()
    presets = a.preset or (["paper", "rtseg"] if a.full else ["tiny-paper", "tiny-rtseg"])
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    for preset in presets:
        make_preset(preset, a.out)


if __name__ == "__main__":
    main()
