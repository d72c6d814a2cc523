#!/usr/bin/env python3
"""Static checks of EVERY kernel in the built CUDA kernel library (no GPU needed).

kernels/emu does not model registers, spills or instruction selection, so they are checked on
the machine code the build actually produced (libfarsee_kernels_cuda.a, every architecture it
was built for), with cuobjdump:

  resources  every kernel of every architecture: STACK 0 and LOCAL 0 bytes (a register spill or
             a local array shows up there), with a per-kernel table of registers and shared memory
  hmma       every kernel whose name matches --tensor-core (the fp16 tensor-core main loops)
             contains an HMMA instruction in its SASS on every architecture

Usage: check_kernel_library.py --cuobjdump PATH --library LIB --mode resources|hmma
       [--tensor-core REGEX] [--cxxfilt PATH]
Prints "SKIPPED: ..." and exits 0 when cuobjdump is missing (ctest marks it skipped).
"""
import argparse
import re
import subprocess
import sys


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def readable(mangled, cxxfilt):
    if not cxxfilt:
        return mangled
    try:
        name = run([cxxfilt, mangled]).strip()
    except (OSError, subprocess.CalledProcessError):
        return mangled
    name = re.sub(r"\(anonymous namespace\)::|farsee::cuda_impl::", "", name)
    return name[:150]


def resources(cuobjdump, library):
    """[(arch, mangled name, {REG: n, STACK: n, ...})] for every kernel in the library."""
    out = run([cuobjdump, "--dump-resource-usage", library])
    kernels, arch, name = [], None, None
    for line in out.splitlines():
        m = re.match(r"\s*arch = (sm_\d+)", line)
        if m:
            arch = m.group(1)
            continue
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            name = m.group(1)
            continue
        if name and "REG:" in line:
            fields = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+(?:\[\d+\])?):(\d+)", line))
            kernels.append((arch, name, fields))
            name = None
    return kernels


def sass_functions(cuobjdump, library):
    """{(arch, mangled name): sass text} for every kernel."""
    out = run([cuobjdump, "--dump-sass", library])
    funcs, arch, name, body = {}, None, None, []
    for line in out.splitlines():
        m = re.match(r"\s*arch = (sm_\d+)", line)
        if m:
            arch = m.group(1)
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            if name:
                funcs[(arch, name)] = "\n".join(body)
            name, body = m.group(1), []
            continue
        if name:
            body.append(line)
    if name:
        funcs[(arch, name)] = "\n".join(body)
    return funcs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuobjdump", default="")
    ap.add_argument("--library", required=True)
    ap.add_argument("--mode", choices=["resources", "hmma"], required=True)
    ap.add_argument("--tensor-core", default="conv_mma_kernel|conv_wgrad_mma_kernel")
    ap.add_argument("--cxxfilt", default="")
    args = ap.parse_args()
    if not args.cuobjdump:
        print("SKIPPED: cuobjdump not found at configure time (tools/scripts/install_deps.sh fetches it)")
        return 0

    if args.mode == "resources":
        kernels = resources(args.cuobjdump, args.library)
        if not kernels:
            print(f"FAILED: no kernels found in {args.library}")
            return 1
        bad = 0
        print(f"{'arch':6} {'REG':>4} {'STACK':>5} {'LOCAL':>5} {'SHARED':>6}  kernel")
        for arch, name, f in sorted(kernels, key=lambda k: (k[0], k[1])):
            ok = f.get("STACK", 0) == 0 and f.get("LOCAL", 0) == 0
            bad += not ok
            print(f"{arch:6} {f.get('REG', 0):4} {f.get('STACK', 0):5} {f.get('LOCAL', 0):5} "
                  f"{f.get('SHARED', 0):6}  {readable(name, args.cxxfilt)}{'' if ok else '  <-- SPILL/LOCAL'}")
        archs = sorted(set(k[0] for k in kernels))
        print(f"{len(kernels)} kernels on {', '.join(archs)}; {bad} with stack or local memory")
        return 1 if bad else 0

    funcs = sass_functions(args.cuobjdump, args.library)
    pattern = re.compile(args.tensor_core)
    checked = [(k, v) for k, v in funcs.items() if pattern.search(k[1])]
    if not checked:
        print(f"FAILED: no kernel matching /{args.tensor_core}/ in {args.library}")
        return 1
    bad = 0
    for (arch, name), sass in sorted(checked):
        count = len(re.findall(r"\bHMMA\b", sass))
        bad += count == 0
        print(f"{arch:6} HMMA x{count:<4} {readable(name, args.cxxfilt)}")
    print(f"{len(checked)} tensor-core kernels checked; {bad} without HMMA")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
