#!/usr/bin/env bash
# Runs tools/scripts/gpu_check.sh as the GPU machine will, without a GPU: in a bare Debian chroot
# (debootstrap --variant=minbase plus only g++, cmake and ninja), the CUDA toolkit mounted
# read-only, the tree from `git archive` (tracked files, uncommitted edits included) plus
# .gpu-deps/, no network use. GPU steps skip (FARSEE_GPU_CHECK_DRY_RUN=1); every other step must
# be green, and each step's time is printed. Not a CI step: run it (as root) after changing the
# build or its dependencies. Everything it mounts is unmounted on exit, whatever happens.
# Usage: sudo bash tools/scripts/gpu_dry_run.sh [--deadline SECONDS]   (base chroot cached in
#        $FARSEE_CHROOT_BASE, default /var/tmp/farsee-chroot-base; created on first use)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
deadline=540
[[ "${1:-}" == "--deadline" ]] && deadline="${2:?--deadline needs SECONDS}"
[[ $(id -u) -eq 0 ]] || { echo "gpu_dry_run: needs root (chroot, mount)" >&2; exit 2; }
[[ -f .gpu-deps/farsee-gpu-deps.tar.gz ]] || { echo "gpu_dry_run: run tools/scripts/gpu_deps.sh first" >&2; exit 2; }
cuda=$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")
[[ -x "$cuda/bin/nvcc" ]] || { echo "gpu_dry_run: no CUDA toolkit at $cuda" >&2; exit 2; }

base="${FARSEE_CHROOT_BASE:-/var/tmp/farsee-chroot-base}"
if [[ ! -x "$base/usr/bin/g++" ]]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  echo "gpu_dry_run: creating the base chroot in $base (once)"
  rm -rf "$base"
  debootstrap --variant=minbase --include=g++,cmake,ninja-build bookworm "$base" \
    http://deb.debian.org/debian >/dev/null
fi

# A fresh copy of the base for every run, so nothing from an earlier run helps this one.
run=$(mktemp -d /var/tmp/farsee-dry-run.XXXXXX)
mounts=()
cleanup() {
  local m
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT
cp -a "$base/." "$run/"
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
  [[ "${3:-}" == ro ]] && mount -o remount,bind,ro "$2"
  return 0
}
bind /proc "$run/proc"
bind /dev "$run/dev"
bind "$cuda" "$run/usr/local/cuda" ro

tree="$run/work/farsee"
mkdir -p "$tree"
snapshot=$(git stash create 2>/dev/null || true)
git archive "${snapshot:-HEAD}" | tar -x -C "$tree"
cp -a .gpu-deps "$tree/"
echo "gpu_dry_run: tree $(git rev-parse --short HEAD)${snapshot:+ + uncommitted edits}, chroot $run"

t0=$(date +%s)
rc=0
chroot "$run" /usr/bin/env -i PATH=/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  FARSEE_GPU_CHECK_DRY_RUN=1 OUT=/work/out \
  bash /work/farsee/tools/scripts/gpu_check.sh --arch 90 --deadline "$deadline" || rc=$?
echo "gpu_dry_run: gpu_check.sh exit $rc after $(($(date +%s) - t0)) s on $(nproc) cores"
# CPU time of everything the run started (user and system), for extrapolating the build to a
# machine with more cores (wall time here depends on what else this machine is running).
echo "gpu_dry_run: CPU time (user, system) of this script, then of everything it started:"
times
ls -la "$run/work/out"
exit $rc
