#!/usr/bin/env python3
"""ONNX export of FarSee-Net (DESIGN.md section 7): the PyTorch reference model
(tools/pytorch/reference) with a FarSee safetensors file's weights, for onnxruntime and TensorRT.

  /usr/bin/python3 tools/pytorch/export_onnx.py --weights W.safetensors [--preset P]
      [--input-size HxW] [--output-scale full|native] -o model.onnx

The graph (opset 17):
  input   "input"  float32 [N, 3, H, W]: RGB in [0, 1] normalised with the ImageNet mean/std,
          (rgb - mean) / std, as farsee-infer does (net/preprocess.h); N is dynamic ("batch"),
          H x W fixed at --input-size.
  output  "logits" float32 [N, C, H, W] (--output-scale full, the default): the network's logits
          resized bilinearly (the preset's align_corners) to the input size, the tensor whose
          argmax over C is farsee-infer's labels and which farsee-infer --save-logits writes
          when the image is already at the network input size;
          or [N, C, H / s, W / s] (--output-scale native): the logits as the network makes them,
          before that resize, at its logits stride s (2 for paper, 4 for rtseg).
BatchNorm is folded into the convolutions by the exporter (eval mode). The model's
metadata_props record preset, num_classes, input_size, output_scale, the mean/std, and
class_names when the weights file has them.

Defaults come from the weights file's __metadata__ (net/api/weights_metadata.h), as farsee-infer
takes them: the network is its "config" (else --preset, else its "preset", else paper; a --preset
that contradicts the file's is an error), the input size its "input_size" (else 512x1024).
The file is checked with onnx.checker and written atomically.
"""

import argparse
import io
import json
import os
import sys
import warnings

import torch

try:
    import onnx
except ImportError:
    raise SystemExit("export_onnx: the Python package onnx is missing (tools/scripts/"
                     "install_deps.sh --with-torch installs it from PyPI)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import safetensors_io  # noqa: E402
from reference.farsee_reference import (IMAGENET_MEAN, IMAGENET_STD, PRESETS,  # noqa: E402
                                        FarSeeConfig, FarSeeNet, preset_config,
                                        weight_state_dict)

OPSET = 17
DEFAULT_INPUT_SIZE = (512, 1024)  # farsee-infer's default without metadata


def fail(msg):
    raise SystemExit(f"export_onnx: {msg}")


def parse_size(text, what):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        fail(f"{what} '{text}' is not HxW (e.g. 256x512)")
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        fail(f"{what} {text}: both sides must be positive multiples of 32 (the network's stride)")
    return h, w


def resolve_config(preset, meta, path):
    """The network: the file's "config" metadata, else --preset, else its "preset", else paper;
    the number of classes of a preset from the file ("num_classes", else head.up2's shape later)."""
    file_cfg = None
    if meta.get("config"):
        try:
            file_cfg = FarSeeConfig.from_dict(json.loads(meta["config"]))
        except (ValueError, TypeError) as e:
            fail(f"weights file '{path}': metadata 'config' is not a network configuration: {e}")
    if preset is None:
        if file_cfg is not None:
            return file_cfg
        preset = meta.get("preset") or "paper"
        if preset not in PRESETS:
            fail(f"weights file '{path}' records preset '{preset}', not one of "
                 f"{', '.join(PRESETS)}: give --preset")
    elif meta.get("preset") and meta["preset"] != preset:
        fail(f"--preset {preset} is not the network of weights file '{path}' (made for preset "
             f"'{meta['preset']}', from its metadata); leave it out to use the file's")
    cfg = preset_config(preset)
    if file_cfg is not None:
        cfg.num_classes = file_cfg.num_classes
        if cfg.to_dict() != file_cfg.to_dict():
            fail(f"--preset {preset} is not the network of weights file '{path}' (its metadata "
                 f"'config' differs); leave --preset out to use the file's")
    elif meta.get("num_classes"):
        cfg.num_classes = int(meta["num_classes"])
    return cfg


def load_model(path, preset):
    """(model in eval mode with the file's weights, its metadata)."""
    if not os.path.isfile(path):
        fail(f"no such weights file '{path}'")
    try:
        tensors, meta = safetensors_io.load(path)
    except (ValueError, KeyError, OSError) as e:
        fail(f"cannot read weights file '{path}': {e}")
    cfg = resolve_config(preset, meta, path)
    if not (meta.get("config") or meta.get("num_classes")) and "head.up2.conv.weight" in tensors:
        # No record of the classes: the logits conv has num_classes * up2_factor^2 outputs.
        cfg.num_classes = tensors["head.up2.conv.weight"].shape[0] // cfg.up2_factor ** 2
    model = FarSeeNet(cfg).eval()
    expected = weight_state_dict(model)
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors  # BN's counter is tolerated, as the C++ loader does
             if k not in expected and not k.endswith(".num_batches_tracked")]
    wrong = [f"{k} {list(tensors[k].shape)} (expected {list(v.shape)})"
             for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or extra or wrong:
        fail(f"weights file '{path}' does not fit preset '{cfg.preset}' with {cfg.num_classes} "
             f"classes: missing {missing[:5]}, unexpected {extra[:5]}, wrong shape {wrong[:5]}")
    model.load_state_dict({k: tensors[k].float() for k in expected}, strict=False)
    return model, meta


class Exported(torch.nn.Module):
    """The reference model with a fixed output: logits at out_size, or before the resize."""

    def __init__(self, model, out_size, native):
        super().__init__()
        self.model, self.out_size, self.native = model, out_size, native

    def forward(self, x):
        if self.native:  # the resize is traced too, but nothing uses it: the exporter drops it
            return self.model.forward_intermediates(x, self.out_size)["head.up2"]
        return self.model(x, out_size=self.out_size)


def export(model, size, native):
    """The traced model (opset OPSET, batch dynamic), serialised."""
    out = io.BytesIO()
    dummy = torch.zeros(1, 3, *size)
    with torch.no_grad(), warnings.catch_warnings():
        # torch 1.13's exporter warns about its own constants' shape inference: noise here.
        warnings.filterwarnings("ignore", message="The shape inference of prim::Constant")
        torch.onnx.export(Exported(model, size, native), dummy, out, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    return out.getvalue()


def output_chw(cfg, size, scale):
    stride = 1 if scale == "full" else cfg.logits_stride()
    return cfg.num_classes, size[0] // stride, size[1] // stride


def finish(exported, cfg, meta, size, scale):
    """The exported model with metadata_props and the output's static dims, checked by
    onnx.checker."""
    m = onnx.load_from_string(exported)
    props = {"preset": cfg.preset, "num_classes": str(cfg.num_classes),
             "input_size": f"{size[0]}x{size[1]}", "output_scale": scale,
             "input_normalisation": json.dumps({"mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
             "config": cfg.to_json()}
    if meta.get("class_names"):
        props["class_names"] = meta["class_names"]
    for k, v in props.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "farsee tools/pytorch/export_onnx.py"
    # The tracer leaves the output's C, H, W symbolic; they are known: state them.
    dims = m.graph.output[0].type.tensor_type.shape.dim
    for d, v in zip(dims[1:], output_chw(cfg, size, scale)):
        d.dim_value = v
    onnx.checker.check_model(m, full_check=True)
    return m


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--weights", required=True, help="FarSee safetensors weights")
    p.add_argument("--preset", choices=PRESETS,
                   help="network preset (default: the file's metadata, else paper)")
    p.add_argument("--input-size", help="network input HxW, multiples of 32 (default: the "
                                        "file's metadata input_size, else 512x1024)")
    p.add_argument("--output-scale", choices=["full", "native"], default="full",
                   help="full: logits at the input size (default); native: at the network's "
                        "logits stride, before the bilinear resize")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    a = p.parse_args(argv)

    model, meta = load_model(a.weights, a.preset)
    if a.input_size:
        size = parse_size(a.input_size, "--input-size")
    elif meta.get("input_size"):
        size = parse_size(meta["input_size"], f"weights file '{a.weights}': metadata input_size")
    else:
        size = DEFAULT_INPUT_SIZE
    folder = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(folder):
        fail(f"output folder '{folder}' does not exist")
    m = finish(export(model, size, a.output_scale == "native"), model.config, meta, size,
               a.output_scale)
    safetensors_io.write_atomically(a.output, m.SerializeToString())
    cfg = model.config
    c, h, w = output_chw(cfg, size, a.output_scale)
    print(f"wrote {a.output}: preset {cfg.preset}, {cfg.num_classes} classes, input "
          f"[N, 3, {size[0]}, {size[1]}] -> logits [N, {c}, {h}, {w}], opset {OPSET}, "
          f"batch dynamic")


if __name__ == "__main__":
    main()
