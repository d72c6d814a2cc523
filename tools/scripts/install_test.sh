#!/usr/bin/env bash
# Installs a built FarSee and uses it from outside the tree (DESIGN.md section 14), reusing the
# build (nothing of FarSee is rebuilt):
#   cmake --install BUILD --prefix WORK/prefix
#   tests/install_consumer (find_package(FarSee), FarSee::farsee) configured and built against it
#   the consumer segments a generated image with the shipped weights and their own settings
#   the installed farsee-infer segments the same image with no flag but --weights
#   the two label maps must be equal, byte for byte;
#   README.md's C++ example (the blocks marked <!-- ci: myapp/... -->) built against it and run;
#   `pip install .` with FARSEE_PREFIX (only the binding is compiled, net/python/CMakeLists.txt
#   standalone) into WORK/site: the module's labels for the consumer's image equal farsee-infer's,
#   byte for byte, and README.md's Python example (<!-- ci: example.py -->) runs as written.
# Usage: install_test.sh [BUILD_DIR (default build)] [WORK_DIR (default a temporary folder)]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
work="${2:-$(mktemp -d)}"
start=$(date +%s)
rm -rf "$work/prefix" "$work/consumer" "$work/out"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
for f in include/farsee/farsee.h lib/cmake/FarSee/FarSeeConfig.cmake \
         lib/cmake/FarSee/FarSeeConfigVersion.cmake bin/farsee-infer; do
  [[ -e "$work/prefix/$f" ]] || { echo "install_test: $f was not installed" >&2; exit 1; }
done
# libfarsee.so exports farsee/farsee.h's API and nothing else (net/api/farsee.map).
exported=$(nm -D --defined-only -C "$work/prefix/lib/libfarsee.so" | cut -d' ' -f3-)
public='farsee::version\(\)|farsee::Segmenter::(~?Segmenter|operator=|segment|logits|last_logits'
public+='|num_classes|class_names|preset|input_height|input_width|precision|executor'
public+='|last_network_ms|notes|submit|receive|frames_in_flight)[[(]|farsee::Error::~Error\(\)|(typeinfo|typeinfo name|vtable) for farsee::Error$'
extra=$(grep -v -E "^($public)" <<<"$exported" || true)
[[ -z "$extra" ]] || { printf 'install_test: libfarsee.so exports more than the public API:\n%s\n' "$extra" >&2; exit 1; }
grep -q "farsee::Segmenter::segment(" <<<"$exported" ||
  { echo "install_test: libfarsee.so does not export farsee::Segmenter::segment" >&2; exit 1; }
echo "install_test: libfarsee.so exports $(wc -l <<<"$exported") symbols, all of the public API"
cmake -S "$root/tests/install_consumer" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/consumer.log"
cmake --build "$work/consumer" >>"$work/consumer.log"
weights="$root/weights/shipped/farsee-paper-synthetic.safetensors"
"$work/consumer/farsee_consumer" "$weights" "$work/image.ppm" "$work/consumer_labels.pgm"
# The consumer's PPM as an 8-bit RGB PNG (the formats farsee-infer reads are PNG and JPEG).
python3 - "$work/image.ppm" "$work/image.png" <<'PY'
import struct, sys, zlib
magic, w, h, maxval, pixels = open(sys.argv[1], "rb").read().split(maxsplit=4)
w, h = int(w), int(h)
assert magic == b"P6" and maxval == b"255" and len(pixels) == w * h * 3, "bad PPM from the consumer"
raw = b"".join(b"\0" + pixels[r * w * 3:(r + 1) * w * 3] for r in range(h))
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
open(sys.argv[2], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
"$work/prefix/bin/farsee-infer" --weights "$weights" --out "$work/out" "$work/image.png" >/dev/null
# same_labels PGM PNG WHO: the PGM's pixels against the PNG's (8-bit grey, decoded here: no image
# library needed).
same_labels() {
python3 - "$@" <<'PY'
import struct, sys, zlib
pgm = open(sys.argv[1], "rb").read()
magic, w, h, maxval, pixels = pgm.split(maxsplit=4)
w, h = int(w), int(h)
png = open(sys.argv[2], "rb").read()
pos, idat, size = 8, b"", None
while pos < len(png):
    n, kind = struct.unpack(">I4s", png[pos:pos + 8])
    body = png[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        pw, ph, depth, colour = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and colour == 0, "labels PNG is not 8-bit grey"
        size = (ph, pw)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, rows, prev = zlib.decompress(idat), [], bytearray(size[1])
for y in range(size[0]):
    f, line = raw[y * (size[1] + 1)], bytearray(raw[y * (size[1] + 1) + 1:(y + 1) * (size[1] + 1)])
    for x in range(size[1]):
        a = line[x - 1] if x else 0
        b, c = prev[x], prev[x - 1] if x else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line))
    prev = line
got = b"".join(rows)
assert size == (h, w), f"labels PNG is {size}, the consumer's {(h, w)}"
diff = [i for i in range(len(got)) if got[i] != pixels[i]]
assert not diff, f"{len(diff)} labels differ, the first at {diff[0]}: farsee-infer {got[diff[0]]}, {sys.argv[3]} {pixels[diff[0]]}"
print(f"install_test: the {sys.argv[3]}'s {h}x{w} labels equal farsee-infer's ({len(set(got))} classes present)")
PY
}
same_labels "$work/consumer_labels.pgm" "$work/out/image_labels.png" consumer

# README.md's fenced block after the line "<!-- ci: NAME -->", as written.
readme_block() {
  awk -v marker="<!-- ci: $1 -->" '$0 == marker { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$root/README.md"
}
rm -rf "$work/myapp" "$work/site" "$work/pip-build"
mkdir -p "$work/myapp"
for f in myapp/CMakeLists.txt myapp/main.cpp example.py; do
  readme_block "$f" >"$work/$f"
  [[ -s "$work/$f" ]] || { echo "install_test: README.md has no block <!-- ci: $f -->" >&2; exit 1; }
done
cmake -S "$work/myapp" -B "$work/myapp/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/myapp.log"
cmake --build "$work/myapp/build" >>"$work/myapp.log"
"$work/myapp/build/myapp" "$weights" | grep -q " pixels$" ||
  { echo "install_test: README.md's C++ example printed no class" >&2; exit 1; }
echo "install_test: README.md's C++ example built against the install and ran"

# pip install . (the root pyproject.toml) against the installed FarSee, offline: the system's
# scikit-build-core and pybind11 (tools/scripts/install_deps.sh), into a folder.
py=/usr/bin/python3
[[ -x $py ]] || py=python3
pip_start=$(date +%s)
FARSEE_PREFIX="$work/prefix" "$py" -m pip install --quiet --disable-pip-version-check \
  --no-build-isolation --no-deps --target "$work/site" --config-settings=build-dir="$work/pip-build" "$root" \
  >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
echo "install_test: pip install . took $(($(date +%s) - pip_start)) s"
PYTHONPATH="$work/site" "$py" - "$weights" "$work/image.ppm" "$work/module_labels.pgm" <<'PY'
import os, sys
import numpy as np
import farsee
assert os.path.dirname(farsee.__file__) == os.environ["PYTHONPATH"], farsee.__file__
magic, w, h, maxval, pixels = open(sys.argv[2], "rb").read().split(maxsplit=4)
image = np.frombuffer(pixels, np.uint8).reshape(int(h), int(w), 3)
labels = farsee.Segmenter(sys.argv[1]).segment(image)
open(sys.argv[3], "wb").write(b"P5 %d %d 255\n" % (labels.shape[1], labels.shape[0]) + labels.tobytes())
PY
same_labels "$work/module_labels.pgm" "$work/out/image_labels.png" "pip-installed module"
(cd "$root" && PYTHONPATH="$work/site" "$py" "$work/example.py")
echo "install_test: README.md's Python example ran with the pip-installed module"
echo "install_test: passed in $(($(date +%s) - start)) s (install, consumer, README C++ example, pip install ., README Python example)"
