#!/usr/bin/env python3
"""Static checks of EVERY kernel in the built CUDA kernel library (no GPU needed).

kernels/emu does not model registers, spills or instruction selection, so they are checked on
the machine code the build actually produced (libfarsee_kernels_cuda.a, every architecture it
was built for), with cuobjdump:

  resources  every kernel of every architecture: STACK 0 and LOCAL 0 bytes (a register spill or
             a local array shows up there), with a per-kernel table of registers and shared memory
  hmma       every kernel whose name matches --tensor-core (the fp16 and tf32 tensor-core main
             loops; tf32 is HMMA.1688.F32.TF32 on sm_90)
             contains an HMMA instruction in its SASS on every architecture
  fmad       the kernels were compiled with --fmad=false (kernels/CMakeLists.txt): no floating-
             point add, sub or mul in the PTX of any source file, any architecture, lacks a
             rounding mode, except in the files named by --fmad-true (built with nvcc's default).
             nvcc writes them without one only under --fmad=true, where that lets ptxas fuse a
             mul and an add into one FFMA/HFMA2 (and nvcc fuses some itself); with --fmad=false
             every fma of the machine code is an explicit fmaf of the source (or of CUDA's math
             functions), so a * b + c rounds as on the host (-ffp-contract=off).
             Needs the PTX the build embeds (a virtual architecture in CMAKE_CUDA_ARCHITECTURES).

Usage: check_kernel_library.py --cuobjdump PATH --library LIB --mode resources|hmma|fmad
       [--tensor-core REGEX] [--cxxfilt PATH] [--fmad-true FILE.cu,...]
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


def sass_functions(cuobjdump, library, names=None):
    """{(arch, mangled name): sass text} for every kernel, or only those named (mangled): the
    whole library's SASS takes cuobjdump ~17 s of CPU, the tensor-core kernels' a fraction."""
    cmd = [cuobjdump, "--dump-sass", library]
    if names:
        cmd[2:2] = ["--function", ",".join(sorted(names))]
    out = run(cmd)
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


# A floating-point add/sub/mul/mad of the PTX, with its modifiers (rounding, ftz, sat).
PTX_FLOAT_OP = re.compile(r"^\s*(?:@!?%\w+\s+)?(add|sub|mul|mad)((?:\.\w+)*?)"
                          r"\.(f16x2|f16|bf16x2|bf16|f32x2|f32|f64)\s")
ROUNDING = {".rn", ".rz", ".rm", ".rp"}


def ptx_modules(cuobjdump, library):
    """[(arch, source file, ptx text)] for every PTX module embedded in the library."""
    out = run([cuobjdump, "--dump-ptx", library])
    modules = []
    for chunk in out.split("Fatbin ptx code:")[1:]:
        arch = re.search(r"arch = (sm_\d+)", chunk)
        ident = re.search(r"identifier = (\S+)", chunk)
        modules.append((arch.group(1) if arch else "?", ident.group(1) if ident else "?", chunk))
    return modules


def contractible_ops(ptx):
    """[(source line, instruction)] of the float add/sub/mul/mad without a rounding mode; the source
    line is the last .loc before it (file:line, from -lineinfo; the .file table ends the module)."""
    table = re.findall(r"^\s*\.file\s+(\d+)\s+\"([^\"]+)\"", ptx, re.M)
    files = {number: path.split("/")[-1] for number, path in table}
    where, found = "?", []
    for line in ptx.splitlines():
        m = re.match(r"\s*\.loc\s+(\d+)\s+(\d+)", line)
        if m:
            where = f"{files.get(m.group(1), m.group(1))}:{m.group(2)}"
            continue
        m = PTX_FLOAT_OP.match(line)
        if m and not ROUNDING & set(re.findall(r"\.\w+", m.group(2))):
            found.append((where, line.strip()))
    return found


def check_fmad(cuobjdump, library, fmad_true):
    modules = ptx_modules(cuobjdump, library)
    if not modules:
        print(f"SKIPPED: no PTX in {library} (no virtual architecture built)")
        return 0
    sources = set(m[1].split("/")[-1] for m in modules)
    stale = [name for name in fmad_true if name not in sources]
    if stale:
        print(f"FAILED: --fmad-true names {', '.join(stale)}, not in {library}")
        return 1
    bad = 0
    for arch, source, ptx in sorted(modules, key=lambda m: (m[1], m[0])):
        if source.split("/")[-1] in fmad_true:
            print(f"{arch:6} {'':29} {source.split('/')[-1]}  (--fmad=true: not checked)")
            continue
        ops = contractible_ops(ptx)
        fmas = len(re.findall(r"^\s*(?:@!?%\w+\s+)?fma\.", ptx, re.M))
        bad += bool(ops)
        print(f"{arch:6} fma x{fmas:<5} contractible x{len(ops):<5} {source.split('/')[-1]}"
              f"{'  <-- compiled without --fmad=false' if ops else ''}")
        for where, op in ops[:5]:
            print(f"         {where}: {op}")
    print(f"{len(modules)} PTX modules; {bad} with contractible float arithmetic")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuobjdump", default="")
    ap.add_argument("--library", required=True)
    ap.add_argument("--mode", choices=["resources", "hmma", "fmad"], required=True)
    ap.add_argument("--tensor-core", default="conv_mma_kernel|conv_wgrad_mma_kernel|"
                    "conv_tf32_kernel|conv_wgrad_tf32_kernel")
    ap.add_argument("--cxxfilt", default="")
    ap.add_argument("--fmad-true", default="", help="the .cu files built with --fmad=true, a,b,c")
    args = ap.parse_args()
    if not args.cuobjdump:
        print("SKIPPED: cuobjdump not found at configure time (tools/scripts/install_deps.sh fetches it)")
        return 0

    if args.mode == "fmad":
        return check_fmad(args.cuobjdump, args.library, [f for f in args.fmad_true.split(",") if f])

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

    pattern = re.compile(args.tensor_core)
    names = {name for _, name, _ in resources(args.cuobjdump, args.library) if pattern.search(name)}
    funcs = sass_functions(args.cuobjdump, args.library, names) if names else {}
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
