"""tools/pytorch/export_onnx.py: the exported ONNX model, run by onnxruntime (CPU), against FarSee.

ctest python.export_onnx runs it with FARSEE_PROGRAM_DIR (<build>/bin, for farsee-infer) and
FARSEE_SOURCE_DIR set. The shipped paper weights are exported at 64x128 (full and native output
scale); a generated image of that size (so farsee-infer's input resize is the identity) goes
through onnxruntime and through farsee-infer --save-logits (executors cpu and reference), and the
logits are compared. Also: the batch dimension is dynamic (a batch of 2 gives each image's batch-1
logits), the declared shapes and metadata, and a --preset that contradicts the file is refused.
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

SOURCE = os.environ["FARSEE_SOURCE_DIR"]
PROGRAMS = os.environ["FARSEE_PROGRAM_DIR"]
SHIPPED = os.path.join(SOURCE, "weights/shipped/farsee-paper-synthetic.safetensors")
sys.path.insert(0, os.path.join(SOURCE, "tools/pytorch"))
import export_onnx  # noqa: E402
from reference.farsee_reference import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

H, W = 64, 128
# |onnxruntime - FarSee| on this scene's logits (|logits| up to ~6): measured 5.48e-6 (full scale,
# cpu executor), 3.81e-6 (full, reference executor: the double-precision oracle) and 5.72e-6
# (native scale, cpu), the same on every run (onnxruntime 1.32 CPU, torch 1.13's exporter, x86-64,
# 2026-12-07). Origin: fp32 rounding in a different order (the exporter folds BatchNorm into the
# convolution weights, onnxruntime's MLAS GEMMs and FarSee's cpu executor each sum in their own
# order): about 10 ulp of the largest logit after ~20 layers. Tolerance: < 2x the largest.
TOLERANCE = 1.1e-5


def scene():
    """A deterministic RGB image: sky, road and a dark block, with a little texture."""
    y, x = np.mgrid[0:H, 0:W]
    v = ((x * 7 + y * 3) % 16).astype(np.uint8)
    img = np.empty((H, W, 3), np.uint8)
    sky = y < H * 0.4
    for c, (top, bottom) in enumerate([(110, 120), (160, 120), (220, 125)]):
        img[..., c] = np.where(sky, top, bottom) + v
    block = (x > W * 0.4) & (x < W * 0.6) & (y > H * 0.3) & (y < H * 0.7)
    img[block] = np.array([40, 40, 50], np.uint8) + v[block][:, None]
    return img


def network_input(rgb8):
    """farsee-infer's preprocessing (net/preprocess.cpp) at the input size: /255, then ImageNet
    (x - mean) / std, in float32; NCHW."""
    mean = np.array(IMAGENET_MEAN, np.float32)
    std = np.array(IMAGENET_STD, np.float32)
    x = (rgb8.astype(np.float32) / np.float32(255) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def check_close(test, got, want, what):
    test.assertEqual(got.shape, want.shape, what)
    test.assertFalse(np.isnan(got).any(), f"{what}: NaN in onnxruntime's output")
    diff = np.abs(got.astype(np.float64) - want)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    bad = np.argwhere(~(diff <= TOLERANCE))
    test.assertEqual(len(bad), 0, f"{what}: {len(bad)} of {diff.size} logits differ by more than "
                     f"{TOLERANCE}; first at {tuple(bad[0]) if len(bad) else None}; max "
                     f"{diff.max():.3g} at {worst}")
    print(f"{what}: max |onnxruntime - farsee| = {diff.max():.3g}")


class ExportOnnx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="farsee_onnx_")
        d = cls.dir.name
        cls.image = scene()
        Image.fromarray(cls.image).save(os.path.join(d, "scene.png"))
        cls.models, cls.sessions = {}, {}
        for scale in ("full", "native"):
            cls.models[scale] = os.path.join(d, f"{scale}.onnx")
            export_onnx.main(["--weights", SHIPPED, "--input-size", f"{H}x{W}",
                              "--output-scale", scale, "-o", cls.models[scale]])
            cls.sessions[scale] = ort.InferenceSession(cls.models[scale],
                                                       providers=["CPUExecutionProvider"])

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def farsee_logits(self, executor, output_size):
        out = os.path.join(self.dir.name, f"{executor}_{output_size}")
        subprocess.run([os.path.join(PROGRAMS, "farsee-infer"), "--weights", SHIPPED,
                        "--input-size", f"{H}x{W}", "--output-size", output_size, "--executor",
                        executor, "--save-logits", "--out", out,
                        os.path.join(self.dir.name, "scene.png")], check=True,
                       stdout=subprocess.DEVNULL)
        return np.load(os.path.join(out, "scene_logits.npy"))

    def run_onnx(self, scale, x):
        return self.sessions[scale].run(["logits"], {"input": x})[0]

    def test_full_scale_matches_farsee(self):
        got = self.run_onnx("full", network_input(self.image))
        for executor in ("cpu", "reference"):
            check_close(self, got, self.farsee_logits(executor, f"{H}x{W}"), f"full, {executor}")

    def test_native_scale_matches_farsee(self):
        # The paper preset's logits stride is 2: farsee-infer at output size H/2 x W/2 resizes
        # its native logits by a factor of 1, which leaves them unchanged.
        got = self.run_onnx("native", network_input(self.image))
        check_close(self, got, self.farsee_logits("cpu", f"{H // 2}x{W // 2}"), "native, cpu")

    def test_batch_is_dynamic(self):
        a = network_input(self.image)
        b = network_input(np.ascontiguousarray(self.image[:, ::-1]))
        session = self.sessions["full"]
        self.assertEqual(session.get_inputs()[0].shape, ["batch", 3, H, W])
        self.assertEqual(session.get_outputs()[0].shape, ["batch", 19, H, W])
        pair = session.run(["logits"], {"input": np.concatenate([a, b])})[0]
        self.assertEqual(pair.shape, (2, 19, H, W))
        # Bitwise (measured: identical): onnxruntime computes each image with the same kernels;
        # nothing sums across the batch.
        for i, x in enumerate((a, b)):
            single = session.run(["logits"], {"input": x})[0]
            np.testing.assert_array_equal(pair[i:i + 1], single, f"batch image {i}")
        self.assertFalse(np.array_equal(pair[0], pair[1]), "the two images gave the same logits")

    def test_metadata(self):
        m = onnx.load(self.models["native"])
        props = {p.key: p.value for p in m.metadata_props}
        self.assertEqual(props["preset"], "paper")
        self.assertEqual(props["input_size"], f"{H}x{W}")
        self.assertEqual(props["output_scale"], "native")
        self.assertIn("road", props["class_names"])
        self.assertEqual(m.opset_import[0].version, export_onnx.OPSET)

    def test_contradicting_preset_is_refused(self):
        err = io.StringIO()
        with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(err):
            export_onnx.main(["--weights", SHIPPED, "--preset", "rtseg",
                              "-o", os.path.join(self.dir.name, "x.onnx")])
        self.assertIn("--preset rtseg is not the network of weights file", str(e.exception))
        self.assertIn(SHIPPED, str(e.exception))
        self.assertFalse(os.path.exists(os.path.join(self.dir.name, "x.onnx")))


if __name__ == "__main__":
    unittest.main()
