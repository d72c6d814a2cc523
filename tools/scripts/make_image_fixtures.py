#!/usr/bin/python3
"""Writes the image fixtures of tests/tools/data/image_io_test.cpp into
tests/fixtures/untrusted/valid/ (DESIGN.md section 8.1):

- PNGs of every colour type stb_image_write never produces (palette with and without
  transparency, grey + alpha, 1-bit and 16-bit grey, RGBA): the test decodes each with libpng and
  with stb_image and requires equal bytes;
- JPEGs (4:2:0, 4:4:4, progressive, grey) with Pillow's decode of each as raw bytes
  (NAME.jpg.pil: height x width x channels, uint8): the test requires libjpeg-turbo's decode to
  equal it. Pillow (Debian's python3-pil) decodes with the same libjpeg-turbo and its defaults.

Deterministic: run it again and git shows no change (Pillow's encoder output is fixed for a
given libjpeg/zlib; the decoded bytes are what the test checks).
Usage (Debian python3 with python3-pil, python3-numpy): /usr/bin/python3 tools/scripts/make_image_fixtures.py [OUT_DIR]
"""
import os
import sys

import numpy as np
from PIL import Image


def scene(height, width):
    """A smooth colour scene with edges: gradients plus a disc and stripes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255 * x / max(width - 1, 1)
    b = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 3) ** 2, 230, 20)
    b = b + 20 * ((x.astype(int) // 3) % 2)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "tests", "fixtures", "untrusted", "valid")
    os.makedirs(out, exist_ok=True)
    h, w = 29, 37  # odd sizes: partial MCUs and partial PNG bytes
    rgb = scene(h, w)
    img = Image.fromarray(rgb, "RGB")
    grey = img.convert("L")
    alpha = Image.fromarray((np.arange(h * w) % 251).reshape(h, w).astype(np.uint8), "L")

    pngs = {
        "palette.png": img.quantize(colors=16),
        "grey_alpha.png": Image.merge("LA", [grey, alpha]),
        "rgba.png": Image.merge("RGBA", [*img.split(), alpha]),
        "grey1.png": grey.point(lambda v: 255 if v > 127 else 0).convert("1"),
        "grey16.png": Image.fromarray(
            (grey_array := np.asarray(grey, dtype=np.uint16)) * 257 + (grey_array % 7), "I;16"),
    }
    pal_trns = img.quantize(colors=8)
    pal_trns.info["transparency"] = 3
    pngs["palette_trns.png"] = pal_trns
    for name, im in pngs.items():
        im.save(os.path.join(out, name), optimize=False,
                **({"transparency": 3} if name == "palette_trns.png" else {}))

    jpegs = {
        "photo420.jpg": (img, {"quality": 90, "subsampling": 2}),
        "photo444.jpg": (img, {"quality": 95, "subsampling": 0}),
        "progressive.jpg": (img, {"quality": 85, "progressive": True}),
        "grey.jpg": (grey, {"quality": 90}),
    }
    for name, (im, options) in jpegs.items():
        path = os.path.join(out, name)
        im.save(path, "JPEG", **options)
        with Image.open(path) as decoded:
            decoded.load()
            data = np.asarray(decoded)
        with open(path + ".pil", "wb") as f:
            f.write(data.tobytes())
        print(f"{name}: {decoded.mode} {data.shape}")


if __name__ == "__main__":
    main()
