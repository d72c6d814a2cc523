#!/usr/bin/env bash
# Prepares, on a Debian/Ubuntu machine WITH network access, the build dependencies that
# tools/scripts/gpu_check.sh needs on a GPU machine that has none (no network, no package installs; see
# bench/RESULTS.md for the procedure). Nothing is installed here: the packages are fetched with
# `apt-get download`, unpacked with `dpkg -x` into a prefix, given the links that Debian's
# alternatives system would have made (libopenblas.so, cblas.h), trimmed to what the build uses
# and written as ONE archive into the git-ignored folder .gpu-deps/:
#   .gpu-deps/farsee-gpu-deps.tar.gz   usr/{include,lib/x86_64-linux-gnu,share/cmake}/...
#   .gpu-deps/COMMIT                   the commit it was made for (gpu_check.sh warns on mismatch)
#   .gpu-deps/PACKAGES                 package versions inside
# Usage: bash tools/scripts/gpu_deps.sh        (re-run after changing the build's dependencies)
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$(pwd)
out="$root/.gpu-deps"
work=$(mktemp -d /tmp/farsee-gpu-deps.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt-get download runs as _apt where it can

# Package -> why the GPU build needs it (runtime .so files are needed by the test binaries there).
packages=(
  libboost-context1.74-dev   # Boost.Context: cmake config + libboost_context.so (kernels/emu)
  libboost-context1.74.0     #   its shared library
  libboost1.74-dev           #   headers and BoostConfig (trimmed to what emu_runtime.cpp includes)
  libgtest-dev               # GoogleTest: static libs, headers, cmake config
  libbenchmark-dev           # Google Benchmark: headers, cmake config
  libbenchmark1debian        #   its shared library
  nlohmann-json3-dev         # JSON headers + cmake config
  libstb-dev                 # stb_image / stb_image_write headers (header-only use)
  libcli11-dev               # CLI11 headers + cmake config: the programs' flags (tools/cli/flags.h)
  libopenblas-dev            # the reference executor's dgemm ...
  libopenblas-pthread-dev    #   cblas.h, libopenblas.so
  libopenblas0-pthread       #   libopenblas.so.0
  libgfortran5               #   OpenBLAS's runtime dependency
  libquadmath0               #   libgfortran5's runtime dependency
)

if [[ ! -d /var/lib/apt/lists ]] || [[ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ]]; then
  echo "gpu_deps: apt lists are empty: running apt-get update"
  apt-get update -qq
fi
echo "gpu_deps: downloading ${#packages[@]} packages"
if ! (cd "$work" && apt-get download -q "${packages[@]}" >/dev/null 2>"$work/apt.err"); then
  cat "$work/apt.err" >&2
  echo "gpu_deps: apt-get download failed (run 'apt-get update' first?)" >&2
  exit 1
fi
prefix="$work/prefix"
mkdir -p "$prefix"
: >"$work/PACKAGES"
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$prefix"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$work/PACKAGES"
done

lib="$prefix/usr/lib/x86_64-linux-gnu"
inc="$prefix/usr/include"
# Debian's alternatives (update-alternatives is not run by dpkg -x): the generic names the build
# looks for point at the pthread OpenBLAS variant.
ln -sf openblas-pthread/libopenblas.so "$lib/libopenblas.so"
ln -sf openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
mkdir -p "$inc/x86_64-linux-gnu"
ln -sf openblas-pthread/cblas.h "$inc/x86_64-linux-gnu/cblas.h"
ln -sf openblas-pthread/openblas_config.h "$inc/x86_64-linux-gnu/openblas_config.h"

# Trim: documentation, static archives nobody links (the build links these libraries shared, and
# GoogleTest statically), lapack, and every Boost header that kernels/emu/emu_runtime.cpp does not
# include (found by the preprocessor itself, so the list stays right when the code changes).
rm -rf "$prefix/usr/share/doc" "$prefix/usr/share/lintian" "$prefix/usr/share/man"
find "$lib/openblas-pthread" \( -name '*.a' -o -name 'liblapack*' \) -delete
rm -f "$lib/libboost_context.a" "$lib/libstb.a" "$lib/libstb.so"*
boost_keep="$work/boost_headers.txt"
g++ -std=c++17 -M -isystem "$inc" -x c++ - <<<'#include <boost/context/detail/fcontext.hpp>' 2>/dev/null |
  tr ' \\' '\n\n' | grep -o "boost/.*" | sort -u >"$boost_keep" || true
if [[ ! -s "$boost_keep" ]]; then
  echo "gpu_deps: could not list the Boost headers in use" >&2
  exit 1
fi
(cd "$inc" && find boost -type f | grep -vxFf "$boost_keep" | xargs rm -f)
find "$inc/boost" -type d -empty -delete
# Boost's cmake configs of components the build does not ask for.
find "$lib/cmake" -maxdepth 1 -name 'boost_*' ! -name 'boost_context-*' ! -name 'boost_headers-*' \
  -exec rm -rf {} +

mkdir -p "$out"
tar -C "$prefix" -czf "$work/farsee-gpu-deps.tar.gz" usr
mv "$work/farsee-gpu-deps.tar.gz" "$out/farsee-gpu-deps.tar.gz.tmp"
mv "$out/farsee-gpu-deps.tar.gz.tmp" "$out/farsee-gpu-deps.tar.gz"
cp "$work/PACKAGES" "$out/PACKAGES"
git rev-parse HEAD >"$out/COMMIT" 2>/dev/null || echo unknown >"$out/COMMIT"
# What the GPU machine's copy of the tree is (it has no .git): gpu_check.sh prints it.
git describe --always --dirty >"$out/TREE" 2>/dev/null || echo unknown >"$out/TREE"
echo "gpu_deps: wrote $out/farsee-gpu-deps.tar.gz ($(du -h "$out/farsee-gpu-deps.tar.gz" | cut -f1)," \
  "$(grep -c . "$boost_keep") Boost headers kept) for commit $(cut -c1-12 "$out/COMMIT")"
