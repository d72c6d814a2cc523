#!/usr/bin/env python3
"""PyTorch baseline for farsee-bench: the same FarSee-Net (tools/pytorch/reference), shapes and timing.

One measurement = one forward pass from the normalised input already on the device to uint8
labels at the input size (network, bilinear resize of the logits to the input size, argmax), as
farsee-bench measures it. Configurations (DESIGN.md section 9):
  cuda: fp32 (strict: TF32 off for cuDNN and matmul), tf32 (fp32 storage with PyTorch's default
        cudnn.allow_tf32=True: convolutions on tensor cores with 10-bit mantissas) and fp16
        (torch.autocast-free: the model and input are cast with .half()), NCHW and channels_last, each eager and CUDA-graphed (torch.cuda.CUDAGraph), cudnn.benchmark on;
        timed with CUDA events around every run.
  cpu:  fp32 NCHW eager (when no GPU is usable or --device cpu); a steady clock.
After --warmup untimed runs, --runs runs are timed; median, p10 and p90 (numpy-style linear
percentiles) and throughput = batch / median are printed as a table and, with --json, in the
farsee-bench schema (one extra key, "layout").

--train: whole training steps, as `farsee-bench --train` times them: the model in train mode (BN
batch statistics, running statistics updated), loss = F.cross_entropy(model(x, out_size=label
size), labels, ignore_index=255) (the model's bilinear resize of the logits to the label size with
the preset's align_corners), then optimizer.zero_grad(), loss.backward(), optimizer.step() with
torch.optim.SGD(lr 0.01, momentum 0.9, weight_decay 1e-4); random weights, a fixed random batch with
labels at the input size (19 classes, about 5% ignore = 255). Configurations:
  cuda: fp32 NCHW eager (strict: TF32 off), tf32 NCHW eager (PyTorch's default for fp32:
        cudnn.allow_tf32=True, the convolutions forward and backward on tensor cores; compare with
        farsee-bench --train --precision tf32) and AMP channels_last eager (torch.autocast fp16 +
        torch.cuda.amp.GradScaler, fp32 master weights; precision "amp-fp16"), cudnn.benchmark on;
        defaults 512x1024,1024x1024, batches 8,16, 20 runs after 3 warm-up steps.
  cpu:  fp32 NCHW eager; defaults 256x512, batch 2, 3 runs after 1 warm-up step.
Results add "peak_memory_bytes" (torch.cuda.max_memory_allocated over the configuration on cuda,
the process's ru_maxrss so far on the CPU), "loss" (the last step's) and on the CPU "cpu_ms" (median
process CPU time per step, all threads, as farsee-bench's); the document adds "mode": "train".

Usage: python3 tools/pytorch/bench_torch.py [--json FILE] [--preset paper|rtseg] [--sizes 512x1024,...]
           [--batches 1,4,8] [--precision fp32,tf32,fp16] [--runs N] [--warmup N] [--device auto|cuda|cpu]
           [--train]
"""
import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference.farsee_reference import FarSeeNet, randomize_parameters  # noqa: E402


def parse_sizes(text):
    sizes = []
    for item in text.split(","):
        h, w = item.lower().split("x")
        sizes.append((int(h), int(w)))
    return sizes


def percentile(values, q):
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU: " + (platform.processor() or "unknown")


def make_step(model):
    """Input -> uint8 labels at the input size (the reference model's forward ends with the
    bilinear resize to the input size, with the preset's align_corners)."""

    def step(x):
        return model(x).argmax(dim=1).to(torch.uint8)

    return step


def time_cuda(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(runs):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ms.append(start.elapsed_time(stop))
    return ms


def time_cpu_with_process_time(fn, runs, warmup):
    """Wall-clock ms per run, and the process's CPU time (all threads) per run."""
    for _ in range(warmup):
        fn()
    ms, cpu_ms = [], []
    for _ in range(runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000.0)
        cpu_ms.append((time.process_time() - c0) * 1000.0)
    return ms, cpu_ms


def time_cpu(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000.0)
    return ms


def max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def bench_labels(batch, h, w, device):
    """Fixed random trainIds 0..18 with about 5% ignore (255), int64 [batch][h][w]."""
    g = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 19, (batch, h, w), generator=g)
    ignore = torch.rand((batch, h, w), generator=g) < 0.05
    return labels.masked_fill(ignore, 255).to(device)


def train_one(base_model, precision, h, w, batch, runs, warmup, use_cuda, device):
    """Times training steps of one configuration on a fresh copy of the model; a result row."""
    amp = precision == "amp-fp16"
    layout = "channels_last" if amp else "nchw"
    memory_format = torch.channels_last if amp else torch.contiguous_format
    if use_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    model = copy.deepcopy(base_model).to(device=device, memory_format=memory_format)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.cuda.amp.GradScaler() if amp else None
    g = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 3, h, w, generator=g).to(device)
    x = x.contiguous(memory_format=memory_format)
    y = bench_labels(batch, h, w, device)
    losses = []

    def step():
        opt.zero_grad()
        if amp:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = F.cross_entropy(model(x, out_size=(h, w)), y, ignore_index=255)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss = F.cross_entropy(model(x, out_size=(h, w)), y, ignore_index=255)
            loss.backward()
            opt.step()
        losses.append(loss.detach())

    if use_cuda:
        ms = time_cuda(step, runs, warmup)
    else:
        ms, cpu_ms = time_cpu_with_process_time(step, runs, warmup)
    median = statistics.median(ms)
    peak = torch.cuda.max_memory_allocated(device) if use_cuda else max_rss_bytes()
    row = {"size": f"{h}x{w}", "height": h, "width": w, "batch": batch,
            "precision": precision, "layout": layout, "mode": "eager", "runs": runs,
            "median_ms": median, "p10_ms": percentile(ms, 0.1), "p90_ms": percentile(ms, 0.9),
            "images_per_s": batch / (median / 1000.0), "peak_memory_bytes": peak,
            "loss": float(losses[-1])}
    if not use_cuda:
        row["cpu_ms"] = statistics.median(cpu_ms)
    return row


def run_train(args, use_cuda, device, device_name):
    sizes = parse_sizes(args.sizes) if args.sizes else (
        [(512, 1024), (1024, 1024)] if use_cuda else [(256, 512)])
    batches = [int(b) for b in args.batches.split(",")] if args.batches else (
        [8, 16] if use_cuda else [2])
    precisions = args.precision.split(",") if args.precision else (
        ["fp32", "tf32", "amp-fp16"] if use_cuda else ["fp32"])
    for p in precisions:
        if p not in ("fp32", "tf32", "amp-fp16"):
            sys.exit(f"bench_torch.py --train: --precision: '{p}' is not one of fp32, tf32, "
                     "amp-fp16")
        if p in ("tf32", "amp-fp16") and not use_cuda:
            sys.exit(f"bench_torch.py --train: {p} needs cuda")
    runs = args.runs or (20 if use_cuda else 3)
    warmup = args.warmup if args.warmup is not None else (3 if use_cuda else 1)
    if use_cuda:
        torch.backends.cudnn.benchmark = True
    base_model = randomize_parameters(FarSeeNet(args.preset), seed=1)

    print(f"bench_torch.py --train: {device_name}, torch {torch.__version__}, preset {args.preset}, "
          f"{torch.get_num_threads()} threads, {warmup} warm-up + {runs} timed training steps")
    print(f"{'size':<10} {'batch':>5} {'prec':>8} {'layout':>13} {'median_ms':>10} "
          f"{'p10_ms':>10} {'p90_ms':>10} {'images/s':>10} {'peak_MiB':>10} {'loss':>8}")
    results = []
    for precision in precisions:
        if use_cuda:
            # fp32 means fp32 arithmetic, as farsee's; tf32 is PyTorch's default (the convs'
            # operands rounded to TF32 on tensor cores, fp32 accumulation); amp-fp16 keeps strict
            # fp32 for what autocast leaves in fp32.
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        for h, w in sizes:
            for batch in batches:
                row = train_one(base_model, precision, h, w, batch, runs, warmup, use_cuda, device)
                results.append(row)
                print(f"{row['size']:<10} {batch:>5} {precision:>8} {row['layout']:>13} "
                      f"{row['median_ms']:>10.3f} {row['p10_ms']:>10.3f} {row['p90_ms']:>10.3f} "
                      f"{row['images_per_s']:>10.2f} {row['peak_memory_bytes'] / 2**20:>10.1f} "
                      f"{row['loss']:>8.4g}" + (f"   (process CPU time {row['cpu_ms']:.1f} ms/step)"
                                                if "cpu_ms" in row else ""), flush=True)
                if use_cuda:
                    torch.cuda.empty_cache()
    return results


def write_json(path, doc):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results as JSON")
    ap.add_argument("--preset", default="paper", choices=["paper", "rtseg"])
    ap.add_argument("--sizes", help="default 512x1024,512x768,1024x2048 (cpu: 512x1024)")
    ap.add_argument("--batches", help="default 1,4,8 (cpu: 1)")
    ap.add_argument("--precision", help="default fp32,tf32,fp16 (cpu: fp32)")
    ap.add_argument("--runs", type=int, help="default 100 (cpu: 3)")
    ap.add_argument("--warmup", type=int, help="default 10 (cpu: 1)")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--train", action="store_true",
                    help="time whole training steps (forward, loss, backward, SGD)")
    args = ap.parse_args()

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        sys.exit("bench_torch.py: --device cuda but torch.cuda.is_available() is False")
    if args.train:
        device = torch.device("cuda" if use_cuda else "cpu")
        device_name = torch.cuda.get_device_name(device) if use_cuda else cpu_name()
        results = run_train(args, use_cuda, device, device_name)
        if args.json:
            write_json(args.json, {"tool": "pytorch", "mode": "train", "torch": torch.__version__,
                                   "device": device_name,
                                   "executor": "cuda" if use_cuda else "cpu",
                                   "preset": args.preset, "weights": "random",
                                   "results": results})
        return
    sizes = parse_sizes(args.sizes) if args.sizes else (
        [(512, 1024), (512, 768), (1024, 2048)] if use_cuda else [(512, 1024)])
    batches = [int(b) for b in args.batches.split(",")] if args.batches else (
        [1, 4, 8] if use_cuda else [1])
    precisions = args.precision.split(",") if args.precision else (
        ["fp32", "tf32", "fp16"] if use_cuda else ["fp32"])
    for p in precisions:
        if p not in ("fp32", "tf32", "fp16"):
            sys.exit(f"bench_torch.py: --precision: '{p}' is not one of fp32, tf32, fp16")
    runs = args.runs or (100 if use_cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if use_cuda else 1)

    device = torch.device("cuda" if use_cuda else "cpu")
    if use_cuda:
        torch.backends.cudnn.benchmark = True
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = cpu_name()
    base_model = randomize_parameters(FarSeeNet(args.preset), seed=1).eval()

    if use_cuda:
        variants = [(p, layout, mode) for p in precisions
                    for layout in ("nchw", "channels_last") for mode in ("eager", "cuda-graph")]
    else:
        variants = [(p, "nchw", "eager") for p in precisions]

    print(f"bench_torch.py: {device_name}, torch {torch.__version__}, preset {args.preset}, "
          f"{warmup} warm-up + {runs} timed runs")
    print(f"{'size':<10} {'batch':>5} {'prec':>5} {'layout':>13} {'mode':>10} {'median_ms':>10} "
          f"{'p10_ms':>10} {'p90_ms':>10} {'images/s':>10}")
    results = []
    with torch.inference_mode():
        for precision, layout, mode in variants:
            dtype = torch.float16 if precision == "fp16" else torch.float32
            # fp32 means fp32 arithmetic, as farsee's fp32 path; tf32 is PyTorch's default.
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model = copy.deepcopy(base_model).to(device=device, dtype=dtype, memory_format=memory_format)
            step = make_step(model)
            for h, w in sizes:
                for batch in batches:
                    x = torch.randn(batch, 3, h, w, device=device, dtype=dtype)
                    x = x.contiguous(memory_format=memory_format)
                    if mode == "cuda-graph":
                        side = torch.cuda.Stream()
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):  # warm-up outside the capture
                            for _ in range(3):
                                step(x)
                        torch.cuda.current_stream().wait_stream(side)
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph):
                            step(x)
                        fn = graph.replay
                    else:
                        fn = lambda: step(x)  # noqa: E731
                    ms = (time_cuda if use_cuda else time_cpu)(fn, runs, warmup)
                    median = statistics.median(ms)
                    row = {"size": f"{h}x{w}", "height": h, "width": w, "batch": batch,
                           "precision": precision, "layout": layout, "mode": mode, "runs": runs,
                           "median_ms": median, "p10_ms": percentile(ms, 0.1),
                           "p90_ms": percentile(ms, 0.9), "images_per_s": batch / (median / 1000.0)}
                    results.append(row)
                    print(f"{row['size']:<10} {batch:>5} {precision:>5} {layout:>13} {mode:>10} "
                          f"{median:>10.3f} {row['p10_ms']:>10.3f} {row['p90_ms']:>10.3f} "
                          f"{row['images_per_s']:>10.1f}", flush=True)
                    if mode == "cuda-graph":
                        del graph
    if args.json:
        write_json(args.json, {"tool": "pytorch", "mode": "inference", "torch": torch.__version__,
                               "device": device_name, "executor": "cuda" if use_cuda else "cpu",
                               "preset": args.preset, "weights": "random", "results": results})


if __name__ == "__main__":
    main()
