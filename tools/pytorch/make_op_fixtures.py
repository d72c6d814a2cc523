#!/usr/bin/env python3
"""Generates the reference-op fixtures in tests/fixtures/ops/ with PyTorch on the CPU.

The C++ tests in tests/kernels/reference/ compare the reference executor (kernels/reference/) against
these files.

File format: one NumPy .npy file per tensor (format version 1.0: magic, little-endian header
length, a Python-dict header with 'descr', 'fortran_order' False and 'shape', then the raw
C-order data), named  <case>.<tensor>.npy.  Element types: float32 ('<f4') for tensors, int32
('<i4') for integer parameters, uint8 ('|u1') for labels. tests/kernels/reference/npy.h reads exactly this
subset. Tensors are in PyTorch's layouts: activations NCHW, conv weights OIHW, labels NHW; the
C++ side converts to NHWC / KRSC.

A case with parameters has a <case>.params.npy (int32) holding them; see each generator.
Inputs are float32 from fixed seeds. Expected outputs of reductions (conv, batchnorm,
cross-entropy) are computed in float64 from the float32 inputs and saved as float32, so they are
the correctly rounded results; resize is computed by PyTorch's own float32 op, whose index and
weight arithmetic is the specification; max pool, pixel shuffle and argmax are exact.

Usage:  /usr/bin/python3 tools/pytorch/make_op_fixtures.py [--out DIR]   (default: tests/fixtures/ops)
Re-running reproduces the committed files bit for bit with the same PyTorch version (they were
made with Debian's python3-torch 1.13 on x86-64; PyTorch's CPU bilinear kernel is the
specification of the resize fixtures, see kernels/reference/resize.h).
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.files = []

    def save(self, case, name, array, dtype):
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        path = os.path.join(self.out_dir, f"{case}.{name}.npy")
        np.save(path, array, allow_pickle=False)
        self.files.append(path)

    def f32(self, case, name, tensor):
        self.save(case, name, tensor.detach().cpu().numpy(), np.float32)

    def i32(self, case, name, values):
        self.save(case, name, np.array(values), np.int32)

    def u8(self, case, name, tensor):
        self.save(case, name, tensor.detach().cpu().numpy(), np.uint8)


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float32)


# ---- conv2d: params = [stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, has_bias]
CONV_CASES = [
    # name, x NCHW, K, kernel (kh, kw), stride, pad, dilation, groups, bias
    ("conv_stem_7x7_s2", (1, 3, 17, 19), 8, (7, 7), (2, 2), (3, 3), (1, 1), 1, False),
    ("conv_3x3_s1_b3", (3, 5, 9, 7), 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    ("conv_3x3_s2", (1, 6, 11, 13), 9, (3, 3), (2, 2), (1, 1), (1, 1), 1, False),
    ("conv_1x1_b3", (3, 10, 5, 6), 7, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    ("conv_1x1_s2", (1, 8, 7, 9), 5, (1, 1), (2, 2), (0, 0), (1, 1), 1, False),
    ("conv_3x3_d2", (1, 4, 13, 11), 5, (3, 3), (1, 1), (2, 2), (2, 2), 1, True),
    ("conv_3x3_d6", (1, 3, 15, 14), 4, (3, 3), (1, 1), (6, 6), (6, 6), 1, False),
    ("conv_depthwise_d2_b3", (3, 6, 9, 10), 6, (3, 3), (1, 1), (2, 2), (2, 2), 6, False),
    ("conv_depthwise_s2", (1, 7, 9, 8), 7, (3, 3), (2, 2), (1, 1), (1, 1), 7, True),
    ("conv_groups2", (1, 6, 7, 5), 4, (3, 3), (1, 1), (1, 1), (1, 1), 2, True),
    ("conv_asymmetric", (1, 3, 10, 9), 5, (3, 2), (2, 1), (1, 0), (1, 2), 1, True),
    # Wide enough (K >= 8 per group) for the GEMM path of the reference conv.
    ("conv_3x3_wide", (2, 16, 6, 5), 24, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
]


def make_conv(w_, gen):
    for name, xs, k, ks, stride, pad, dil, groups, has_bias in CONV_CASES:
        x = randn(gen, *xs)
        w = randn(gen, k, xs[1] // groups, *ks) * 0.5
        b = randn(gen, k) if has_bias else None
        y = F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride=stride,
                     padding=pad, dilation=dil, groups=groups)
        w_.i32(name, "params", [*stride, *pad, *dil, groups, int(has_bias)])
        w_.f32(name, "x", x)
        w_.f32(name, "w", w)
        if b is not None:
            w_.f32(name, "bias", b)
        w_.f32(name, "y", y)


# ---- batchnorm (eps 1e-5 and momentum 0.1: PyTorch's defaults, the C++ defaults too)
def make_batchnorm(w_, gen):
    # Inference with given running statistics.
    x = randn(gen, 3, 5, 4, 7) * 2 + 0.5
    gamma, beta = randn(gen, 5), randn(gen, 5)
    mean = randn(gen, 5)
    var = torch.rand(5, generator=gen) * 2 + 0.1
    y = F.batch_norm(x.double(), mean.double(), var.double(), gamma.double(), beta.double(),
                     training=False, eps=1e-5)
    case = "batchnorm_inference"
    for n, t in [("x", x), ("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var),
                 ("y", y)]:
        w_.f32(case, n, t)

    # Training: batch statistics and the running-statistics update.
    x = randn(gen, 2, 6, 3, 5) * 1.5 - 0.25
    gamma, beta = randn(gen, 6), randn(gen, 6)
    running_mean_in = randn(gen, 6) * 0.1
    running_var_in = torch.rand(6, generator=gen) + 0.5
    running_mean = running_mean_in.double().clone()
    running_var = running_var_in.double().clone()
    y = F.batch_norm(x.double(), running_mean, running_var, gamma.double(), beta.double(),
                     training=True, momentum=0.1, eps=1e-5)
    case = "batchnorm_training"
    for n, t in [("x", x), ("gamma", gamma), ("beta", beta), ("y", y),
                 ("batch_mean", x.double().mean(dim=(0, 2, 3))),
                 ("batch_var", x.double().var(dim=(0, 2, 3), unbiased=False)),
                 ("running_mean_in", running_mean_in), ("running_var_in", running_var_in),
                 ("running_mean_out", running_mean), ("running_var_out", running_var)]:
        w_.f32(case, n, t)


# ---- max pool: params = [kernel, stride, pad]
POOL_CASES = [
    ("pool_3x3_s2_p1_odd", (1, 4, 9, 11), 3, 2, 1),
    ("pool_3x3_s2_p1_b3", (3, 5, 8, 7), 3, 2, 1),
    ("pool_2x2_s2_p0", (2, 3, 7, 9), 2, 2, 0),
    ("pool_3x3_s1_p1", (1, 3, 5, 6), 3, 1, 1),
]


def make_pool(w_, gen):
    for name, xs, k, s, p in POOL_CASES:
        x = randn(gen, *xs)
        w_.i32(name, "params", [k, s, p])
        w_.f32(name, "x", x)
        w_.f32(name, "y", F.max_pool2d(x, k, s, p))


# ---- pixel shuffle: params = [factor]
def make_pixel_shuffle(w_, gen):
    for name, xs, r in [("pixel_shuffle_r2", (1, 12, 3, 5), 2),
                        ("pixel_shuffle_r4_b3", (3, 32, 2, 3), 4)]:
        x = randn(gen, *xs)
        w_.i32(name, "params", [r])
        w_.f32(name, "x", x)
        w_.f32(name, "y", F.pixel_shuffle(x, r))


# ---- bilinear resize: params = [align_corners, out_h, out_w]
RESIZE_CASES = [
    ("resize_up_false", (1, 3, 5, 7), (11, 16), False),
    ("resize_down_false", (2, 3, 9, 13), (4, 6), False),
    ("resize_up_true", (1, 3, 5, 7), (12, 15), True),
    ("resize_down_true", (1, 4, 9, 13), (5, 4), True),
    ("resize_mixed_false", (1, 2, 6, 5), (1, 9), False),  # one axis to a single row
    ("resize_mixed_true", (1, 2, 6, 5), (1, 9), True),
    ("resize_x4_false", (1, 3, 4, 6), (16, 24), False),  # the net's integer upsampling
    ("resize_same_true", (1, 2, 3, 4), (3, 4), True),
]


# One-hot inputs: image i of the batch is 1 at pixel i, 0 elsewhere, so its output holds the
# interpolation weights l_y * l_x of that pixel for every output pixel. They pin down PyTorch's
# sampling indices and weights bit for bit (the blend itself cannot round: one term is nonzero).
TAP_CASES = [
    ("resize_taps_false", (3, 13), (7, 5), False),  # 3 -> 7 has a weight of 2^-26 at dst 3
    ("resize_taps_true", (3, 13), (7, 5), True),
    ("resize_taps_odd_false", (9, 5), (4, 11), False),
    ("resize_taps_odd_true", (9, 5), (4, 11), True),
]


def make_resize(w_, gen):
    for name, xs, size, align in RESIZE_CASES:
        x = randn(gen, *xs)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=align)
        w_.i32(name, "params", [int(align), *size])
        w_.f32(name, "x", x)
        w_.f32(name, "y", y)
    for name, (h, w), size, align in TAP_CASES:
        x = torch.eye(h * w, dtype=torch.float32).reshape(h * w, 1, h, w)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=align)
        w_.i32(name, "params", [int(align), *size])
        w_.f32(name, "x", x)
        w_.f32(name, "y", y)


# ---- argmax over channels
def make_argmax(w_, gen):
    # Small integers: plenty of ties, which must resolve to the lowest index.
    x = torch.randint(-2, 3, (2, 5, 4, 3), generator=gen).float()
    w_.f32("argmax_ties", "x", x)
    w_.u8("argmax_ties", "labels", torch.argmax(x, dim=1))


# ---- resize + argmax: params = [align_corners, out_h, out_w]
def make_resize_argmax(w_, gen):
    for name, xs, size, align in [("resize_argmax_false", (2, 6, 5, 7), (13, 17), False),
                                  ("resize_argmax_true", (1, 5, 6, 4), (11, 9), True)]:
        # Redraw until no output pixel is a near-tie (top-2 gap < 1e-3): the label is then the
        # same whichever way the last bits of the interpolation round.
        while True:
            x = randn(gen, *xs)
            y = F.interpolate(x, size=size, mode="bilinear", align_corners=align)
            top2 = torch.topk(y, 2, dim=1).values
            if float((top2[:, 0] - top2[:, 1]).min()) > 1e-3:
                break
        w_.i32(name, "params", [int(align), *size])
        w_.f32(name, "x", x)
        w_.u8(name, "labels", torch.argmax(y, dim=1))


# ---- softmax cross-entropy (ignore index 255, mean reduction)
def make_cross_entropy(w_, gen):
    for name, scale in [("ce_ignore", 3.0), ("ce_large_logits", 60.0)]:
        n, c, h, w = 2, 5, 4, 3
        z = randn(gen, n, c, h, w) * scale
        labels = torch.randint(0, c, (n, h, w), generator=gen)
        ignore = torch.rand(n, h, w, generator=gen) < 0.25
        labels[ignore] = 255
        z64 = z.double().requires_grad_(True)
        loss = F.cross_entropy(z64, labels, ignore_index=255, reduction="mean")
        loss.backward()
        w_.f32(name, "logits", z)
        w_.u8(name, "labels", labels)
        w_.f32(name, "loss", loss.reshape(1))
        w_.f32(name, "grad", z64.grad)


# ---- fused upsample + class-weighted softmax cross-entropy (softmax_ce_upsample with weights):
# F.cross_entropy(F.interpolate(z, size, bilinear), labels, weight=w, ignore_index=255), the
# weighted mean sum(w[y] * nll) / sum(w[y]); one class weighted 0.
def make_weighted_upsample_cross_entropy(w_, gen):
    for name, align in [("ce_upsample_weighted", False), ("ce_upsample_weighted_ac", True)]:
        n, c, h, w = 2, 5, 4, 3
        size = (13, 9)
        z = randn(gen, n, c, h, w) * 3.0
        labels = torch.randint(0, c, (n, *size), generator=gen)
        labels[torch.rand(n, *size, generator=gen) < 0.2] = 255
        weight = torch.rand(c, generator=gen) * 4.8 + 0.2
        weight[1] = 0.0
        z64 = z.double().requires_grad_(True)
        up = F.interpolate(z64, size=size, mode="bilinear", align_corners=align)
        loss = F.cross_entropy(up, labels, weight=weight.double(), ignore_index=255,
                               reduction="mean")
        loss.backward()
        w_.i32(name, "params", [int(align), *size])
        w_.f32(name, "logits", z)
        w_.u8(name, "labels", labels)
        w_.f32(name, "weights", weight)
        w_.f32(name, "loss", loss.reshape(1))
        w_.f32(name, "grad", z64.grad)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "ops"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    w_ = Writer(args.out)
    for seed, make in enumerate([make_conv, make_batchnorm, make_pool, make_pixel_shuffle,
                                 make_resize, make_argmax, make_resize_argmax,
                                 make_cross_entropy, make_weighted_upsample_cross_entropy]):
        gen = torch.Generator().manual_seed(1000 + seed)
        make(w_, gen)
    total = sum(os.path.getsize(f) for f in w_.files)
    print(f"wrote {len(w_.files)} files, {total} bytes, to {args.out}")


if __name__ == "__main__":
    main()
