"""The Python module farsee (net/python/farsee_module.cpp), built in <build>/python.

ctest python.module runs it with FARSEE_PYTHON_DIR (the module's folder), FARSEE_PROGRAM_DIR
(<build>/bin, for farsee-infer) and FARSEE_SOURCE_DIR set. Checks: the README's Python example runs as
written; the labels and logits of a generated image equal farsee-infer's for the same image, settings and executor, bitwise (labels
PNG decoded here, logits from --save-logits); settings come from the weights' metadata (the
shipped file's, and tools/pytorch/convert_weights.py's); segment() and logits() release the GIL;
bad images are ValueErrors naming what was given; library errors are farsee.Error with the
message.
"""
import contextlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import zlib

import numpy as np

sys.path.insert(0, os.environ["FARSEE_PYTHON_DIR"])
import farsee  # noqa: E402

SOURCE = os.environ["FARSEE_SOURCE_DIR"]
PROGRAMS = os.environ["FARSEE_PROGRAM_DIR"]
SHIPPED = os.path.join(SOURCE, "weights/shipped/farsee-paper-synthetic.safetensors")


def scene(h, w):
    """A deterministic RGB image: sky, road and a dark block, with a little texture."""
    y, x = np.mgrid[0:h, 0:w]
    v = ((x * 7 + y * 3) % 16).astype(np.uint8)
    img = np.empty((h, w, 3), np.uint8)
    sky = y < h * 0.4
    img[..., 0] = np.where(sky, 110, 120) + v
    img[..., 1] = np.where(sky, 160, 120) + v
    img[..., 2] = np.where(sky, 220, 125) + v
    block = (x > w * 0.4) & (x < w * 0.6) & (y > h * 0.3) & (y < h * 0.7)
    img[block] = np.array([40, 40, 50], np.uint8) + v[block][:, None]
    return img


def write_png(path, img):
    """An 8-bit RGB PNG (filter 0 on every row), the smallest valid encoder."""
    h, w, _ = img.shape
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(h))

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def read_grey_png(path):
    with open(path, "rb") as f:
        png = f.read()
    pos, idat = 8, b""
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour == 0
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w + 1)
    out = np.zeros((h, w), np.int32)
    prev = np.zeros(w, np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros(w, np.int32)
        for x in range(w):
            a = cur[x - 1] if x else 0
            b, c = prev[x], (prev[x - 1] if x else 0)
            pred = [0, a, b, (a + b) // 2, 0][f]
            if f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 255
        out[y], prev = cur, cur
    return out.astype(np.uint8)


class ModuleTest(unittest.TestCase):
    def test_matches_farsee_infer_bitwise(self):
        img = scene(72, 136)
        with tempfile.TemporaryDirectory() as tmp:
            write_png(os.path.join(tmp, "scene.png"), img)
            subprocess.run([os.path.join(PROGRAMS, "farsee-infer"), "--weights", SHIPPED,
                            "--input-size", "64x128", "--executor", "cpu", "--save-logits",
                            "--out", os.path.join(tmp, "out"), os.path.join(tmp, "scene.png")],
                           check=True, capture_output=True)
            want_labels = read_grey_png(os.path.join(tmp, "out/scene_labels.png"))
            want_logits = np.load(os.path.join(tmp, "out/scene_logits.npy"))[0]
        seg = farsee.Segmenter(SHIPPED, input_size=(64, 128), executor="cpu")
        labels = seg.segment(img)
        self.assertEqual(labels.dtype, np.uint8)
        self.assertEqual(labels.shape, (72, 136))
        diff = np.flatnonzero(labels != want_labels)
        self.assertEqual(diff.size, 0, f"first differing label at {diff[:1]}")
        logits = seg.logits(img)
        self.assertEqual(logits.dtype, np.float32)
        self.assertEqual(logits.shape, (19, 72, 136))
        self.assertTrue(np.array_equal(logits.view(np.uint32), want_logits.view(np.uint32)),
                        f"max difference {np.abs(logits - want_logits).max()}")
        self.assertEqual(seg.logits(img, output_size=(20, 30)).shape, (19, 20, 30))

    def test_settings_from_metadata(self):
        seg = farsee.Segmenter(weights=SHIPPED, executor="cpu")
        self.assertEqual(seg.preset, "paper")
        self.assertEqual(seg.input_size, (256, 512))
        self.assertEqual(seg.num_classes, 19)
        self.assertEqual(seg.class_names[0], "road")
        self.assertEqual(farsee.__version__, "0.1.0")

    def test_bad_images_are_value_errors(self):
        seg = farsee.Segmenter(preset="tiny-paper", random_seed=1, input_size=(64, 96),
                               executor="reference")
        with self.assertRaisesRegex(ValueError, r"got float64 array of shape \(8, 8, 3\)"):
            seg.segment(np.zeros((8, 8, 3)))
        with self.assertRaisesRegex(ValueError, r"got uint8 array of shape \(8, 8\)"):
            seg.segment(np.zeros((8, 8), np.uint8))
        with self.assertRaisesRegex(ValueError, "got list"):
            seg.segment([[1, 2, 3]])
        # A strided view is accepted (copied to contiguous memory) and segmented like its copy.
        img = scene(40, 60)
        view = np.concatenate([img, img], axis=1)[:, ::2]
        self.assertTrue(np.array_equal(seg.segment(view), seg.segment(np.ascontiguousarray(view))))

    def test_gil_released_while_the_network_runs(self):
        """With a switch interval of 1000 s a thread keeps the GIL until it blocks or releases it,
        so the waiting main thread can run before the worker's segment() (or logits()) returns only
        if that call releases the GIL: a call that holds it is seen finished every time, for sure.
        One that releases it lets the main thread in, unless the OS runs the worker's whole call
        before waking the main thread (a loaded machine, CI's parallel tests): so up to 10 tries,
        passing at the first that sees the call still running."""
        seg = farsee.Segmenter(preset="tiny-paper", random_seed=1, input_size=(64, 96),
                               executor="reference")
        img = scene(48, 80)
        for method in (seg.segment, seg.logits):
            seen = []
            for _ in range(10):
                started, done = threading.Event(), threading.Event()

                def work():
                    started.set()
                    method(img)
                    done.set()

                saved = sys.getswitchinterval()
                sys.setswitchinterval(1000)
                try:
                    worker = threading.Thread(target=work)
                    worker.start()
                    started.wait()
                    seen.append(done.is_set())
                    worker.join()
                finally:
                    sys.setswitchinterval(saved)
                if not seen[-1]:
                    break
            self.assertFalse(all(seen), f"{method.__name__}() held the GIL: no other thread "
                                        f"ran meanwhile in {len(seen)} tries")

    def test_library_errors_keep_their_message(self):
        with self.assertRaisesRegex(farsee.Error, "--precision: 'fp8' is not one of"):
            farsee.Segmenter(preset="tiny-paper", random_seed=1, precision="fp8")
        with self.assertRaisesRegex(RuntimeError, "preset 'rtseg', 19 classes is not the network"):
            farsee.Segmenter(SHIPPED, preset="rtseg", executor="cpu")

    def test_convert_weights_records_the_settings(self):
        """tools/pytorch/convert_weights.py's metadata (net/api/weights_metadata.h) read by the
        library: network, input size and class names without flags; a contradiction refused."""
        try:
            import torch  # noqa: F401
        except ImportError:
            self.skipTest("no torch: tools/pytorch/convert_weights.py cannot run")
        sys.path.insert(0, os.path.join(SOURCE, "tools/pytorch"))
        import convert_weights
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.safetensors")
            with contextlib.redirect_stdout(io.StringIO()):
                convert_weights.main(["--random", "--preset", "tiny-rtseg", "--num-classes", "3",
                                      "--input-size", "64x96", "--class-names",
                                      "sky,road,car", "-o", out])
            seg = farsee.Segmenter(out, executor="reference")
            self.assertEqual(seg.preset, "tiny-rtseg")
            self.assertEqual(seg.num_classes, 3)
            self.assertEqual(seg.input_size, (64, 96))
            self.assertEqual(seg.class_names, ["sky", "road", "car"])
            self.assertEqual(seg.segment(scene(40, 60)).shape, (40, 60))
            with self.assertRaisesRegex(farsee.Error, "preset 'tiny-rtseg', 5 classes is not the "
                                                      "network of weights file"):
                farsee.Segmenter(out, preset="tiny-rtseg", executor="reference")
            with self.assertRaises(SystemExit):  # a bad --input-size is refused, nothing written
                convert_weights.main(["--random", "--preset", "tiny-rtseg", "--input-size",
                                      "60x96", "-o", os.path.join(tmp, "bad.safetensors")])
            self.assertFalse(os.path.exists(os.path.join(tmp, "bad.safetensors")))

    def test_readme_example_runs_as_written(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            readme = f.read()
        part = readme[readme.index("<!-- ci: example.py -->"):]
        block = part[part.index("```python\n") + 10:part.index("```\n", part.index("```python"))]
        cwd = os.getcwd()
        try:
            os.chdir(SOURCE)  # the example's paths are relative to the repository
            exec(compile(block, "README.md", "exec"), {})
        finally:
            os.chdir(cwd)


if __name__ == "__main__":
    unittest.main()
