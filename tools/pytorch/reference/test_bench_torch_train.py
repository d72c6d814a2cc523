"""tools/pytorch/bench_torch.py --train on the CPU: one tiny training step writes the farsee-bench JSON
schema with "mode": "train", finite positive times, a peak memory and a plausible loss."""
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench_torch  # noqa: E402


class BenchTorchTrain(unittest.TestCase):
    def test_one_cpu_step(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.json")
            argv = ["bench_torch.py", "--train", "--device", "cpu", "--sizes", "32x64",
                    "--batches", "1", "--runs", "1", "--warmup", "0", "--json", path]
            with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(io.StringIO()):
                bench_torch.main()
            with open(path) as f:
                doc = json.load(f)
        self.assertEqual(doc["mode"], "train")
        self.assertEqual(doc["executor"], "cpu")
        self.assertEqual(len(doc["results"]), 1)
        r = doc["results"][0]
        self.assertEqual((r["size"], r["batch"], r["precision"], r["layout"]),
                         ("32x64", 1, "fp32", "nchw"))
        for key in ("median_ms", "p10_ms", "p90_ms", "images_per_s", "cpu_ms"):
            self.assertTrue(math.isfinite(r[key]) and r[key] > 0, (key, r[key]))
        self.assertGreater(r["peak_memory_bytes"], 0)
        # Random labels over 19 classes: about ln(19) = 2.94 at the first step.
        self.assertTrue(0.5 < r["loss"] < 20, r["loss"])


if __name__ == "__main__":
    unittest.main()
