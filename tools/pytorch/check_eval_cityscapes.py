#!/usr/bin/env python3
"""farsee-eval against cityscapesScripts' evalPixelLevelSemanticLabeling (developer tool, not CI).

Builds a small Cityscapes-layout folder (gtFine/val/<city>/*_gtFine_labelIds.png with blocks of
every evaluated class, void ids among them, and some classes left out of the ground truth
entirely) and several prediction sets (random labelIds, perfect, partially right, some classes
never predicted, one class predicted only where the ground truth lacks it). Every set is written
twice: as Cityscapes labelIds (evaluated by both programs) and as trainIds (farsee-eval
--ids train). Compares every class's IoU, the mean and the pixel accuracy (computed from
cityscapesScripts' confusion matrix) and prints the largest difference per class; exits 1 if any
exceeds 1e-4 or a class is defined in one and not the other.

  python3 -m venv /tmp/csvenv && /tmp/csvenv/bin/pip install cityscapesscripts
  /tmp/csvenv/bin/python tools/pytorch/check_eval_cityscapes.py --eval build/bin/farsee-eval
  /tmp/csvenv/bin/python tools/pytorch/check_eval_cityscapes.py --write-fixture tests/fixtures/eval
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

try:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs
    from cityscapesscripts.helpers.labels import labels as cs_labels
except ImportError:
    sys.exit("needs cityscapesscripts (pip install cityscapesscripts) in this Python")

EVAL_IDS = [l.id for l in cs_labels if not l.ignoreInEval and l.id >= 0]  # labelIds of trainIds 0..18
NAMES = [next(l.name for l in cs_labels if l.id == i) for i in EVAL_IDS]
VOID_IDS = [l.id for l in cs_labels if l.ignoreInEval and l.id >= 0]
TO_TRAIN = np.full(256, 255, np.uint8)
for t, i in enumerate(EVAL_IDS):
    TO_TRAIN[i] = t

CITIES = ["aachen", "bremen", "zurich"]
FRAMES = [("000000", "000019"), ("000004", "000019"), ("000011", "000019")]
SIZES = {"aachen": (96, 160), "bremen": (64, 128), "zurich": (80, 112)}  # HxW per city


def make_ground_truth(rng, root, left_out, sizes=SIZES, block=16):
    """Blocks of random labelIds (evaluated and void), never any of `left_out`."""
    gts = {}
    pool = [i for i in EVAL_IDS if i not in left_out] + VOID_IDS
    for city in CITIES:
        os.makedirs(os.path.join(root, "gtFine", "val", city), exist_ok=True)
        H, W = sizes[city]
        for seq, frame in FRAMES:
            img = np.empty((H, W), np.uint8)
            for by in range(0, H, block):
                for bx in range(0, W, block):
                    img[by:by + block, bx:bx + block] = rng.choice(pool)
            # sprinkle single void and evaluated pixels
            mask = rng.random((H, W)) < 0.05
            img[mask] = rng.choice(pool, size=int(mask.sum()))
            name = f"{city}_{seq}_{frame}"
            Image.fromarray(img).save(
                os.path.join(root, "gtFine", "val", city, name + "_gtFine_labelIds.png"))
            gts[name] = img
    return gts


def prediction_sets(rng, gts, left_out):
    never = EVAL_IDS[5]  # pole: never predicted in "missing"
    only_fp = left_out[0]  # absent from the ground truth, predicted here and there: IoU 0
    sets = {}
    sets["random"] = {k: rng.integers(0, 34, g.shape).astype(np.uint8) for k, g in gts.items()}
    sets["perfect"] = {k: g.copy() for k, g in gts.items()}

    def partial(g, p_right):
        out = g.copy()
        wrong = rng.random(g.shape) >= p_right
        out[wrong] = rng.choice(EVAL_IDS, size=int(wrong.sum()))
        return out

    sets["partial70"] = {k: partial(g, 0.7) for k, g in gts.items()}
    sets["partial95"] = {k: partial(g, 0.95) for k, g in gts.items()}

    def missing(g):
        out = partial(g, 0.8)
        out[out == never] = EVAL_IDS[0]
        for lo in left_out:
            out[out == lo] = EVAL_IDS[1]
        spots = rng.random(g.shape) < 0.01
        out[spots] = only_fp
        return out

    sets["missing"] = {k: missing(g) for k, g in gts.items()}
    # void labelIds predicted on evaluated pixels (false negatives of the true class)
    def voids(g):
        out = partial(g, 0.85)
        spots = rng.random(g.shape) < 0.1
        out[spots] = rng.choice(VOID_IDS, size=int(spots.sum()))
        return out

    sets["void-preds"] = {k: voids(g) for k, g in gts.items()}
    return sets


def write_set(root, preds, train_ids, nested=True):
    for k, p in preds.items():
        city = k.split("_")[0]
        d = os.path.join(root, "nested", city) if nested else root
        os.makedirs(d, exist_ok=True)
        img = TO_TRAIN[p] if train_ids else p
        Image.fromarray(img).save(os.path.join(d, k + "_leftImg8bit_labels.png"))


def cityscapes_scores(data, pred_dir):
    cs.args.evalInstLevelScore = False
    cs.args.JSONOutput = False
    cs.args.quiet = True
    cs.args.evalPixelAccuracy = False
    cs.args.predictionPath = pred_dir
    cs.args.predictionWalk = None
    gt_list = sorted(
        os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(data, "gtFine", "val"))
        for f in fs if f.endswith("_gtFine_labelIds.png"))
    pred_list = [cs.getPrediction(cs.args, g) for g in gt_list]
    result = cs.evaluateImgLists(pred_list, gt_list, cs.args)
    iou = {n: result["classScores"][n] for n in NAMES}
    iou = {n: (None if math.isnan(v) else v) for n, v in iou.items()}
    m = np.array(result["confMatrix"], dtype=np.int64)
    rows = m[EVAL_IDS, :]
    accuracy = float(sum(m[i, i] for i in EVAL_IDS)) / float(rows.sum())
    return {"miou": result["averageScoreClasses"], "iou": iou, "accuracy": accuracy}


def farsee_scores(binary, data, pred_dir, ids, work):
    out = os.path.join(work, "farsee.json")
    subprocess.run([binary, "--data", data, "--split", "val", "--predictions", pred_dir, "--ids",
                    ids, "--json", out], check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def write_fixture(out):
    """CI fixture (tests/fixtures/eval/): small ground truth, labelId prediction sets, and
    cityscapesScripts' figures for them (cityscapes_scripts.json), so the C++ tests check the
    agreement without Python."""
    rng = np.random.default_rng(2024)
    data = os.path.join(out, "cityscapes")
    sizes = {"aachen": (24, 40), "bremen": (16, 32), "zurich": (20, 28)}
    left_out = [EVAL_IDS[16], EVAL_IDS[14]]
    gts = make_ground_truth(rng, data, left_out, sizes=sizes, block=4)
    expected = {}
    for set_name, preds in prediction_sets(rng, gts, left_out).items():
        if set_name == "perfect":
            continue
        d = os.path.join(out, "predictions", set_name)
        write_set(d, preds, train_ids=False, nested=False)
        expected[set_name] = cityscapes_scores(data, d)
    with open(os.path.join(out, "cityscapes_scripts.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print("wrote", out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", help="the farsee-eval binary")
    ap.add_argument("--write-fixture", metavar="DIR",
                    help="write the CI fixture (tests/fixtures/eval) instead of comparing")
    ap.add_argument("--seeds", type=int, default=3, help="datasets 0..N-1 (each: 6 prediction sets)")
    a = ap.parse_args()
    if a.write_fixture:
        write_fixture(a.write_fixture)
        return 0
    if not a.eval:
        ap.error("--eval is required")
    worst = {n: 0.0 for n in NAMES + ["mIoU", "accuracy"]}
    undefined = {n: 0 for n in NAMES}  # evaluations where both leave the class out (null / nan)
    failures = []
    count = 0
    for seed in range(a.seeds):
        count += run_seed(a.eval, seed, worst, undefined, failures)
    print(f"\nmax |farsee-eval - cityscapesScripts| over {count} evaluations "
          f"({count // 2} prediction sets x --ids label/train):")
    for n, v in worst.items():
        extra = f"   (left out by both in {undefined[n]})" if undefined.get(n) else ""
        print(f"  {n:14s} {v:.3e}{extra}")
    bad = [n for n, v in worst.items() if v > 1e-4]
    for f in failures:
        print("MISMATCH (defined/undefined):", f)
    if bad or failures:
        print("FAIL: above 1e-4:", bad)
        return 1
    print("OK: every class within 1e-4")
    return 0


def run_seed(binary, seed, worst, undefined, failures):
    rng = np.random.default_rng(seed)
    count = 0
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "cityscapes")
        # two classes in no ground-truth image (seed 0: train and truck)
        left_out = ([EVAL_IDS[16], EVAL_IDS[14]] if seed == 0 else
                    [int(v) for v in rng.choice(EVAL_IDS, 2, replace=False)])
        gts = make_ground_truth(rng, data, left_out)
        for set_name, preds in prediction_sets(rng, gts, left_out).items():
            label_dir = os.path.join(work, set_name + "_label")
            train_dir = os.path.join(work, set_name + "_train")
            write_set(label_dir, preds, train_ids=False)
            write_set(train_dir, preds, train_ids=True)
            ref = cityscapes_scores(data, label_dir)
            for ids, d in (("label", label_dir), ("train", train_dir)):
                got = farsee_scores(binary, data, d, ids, work)
                count += 1
                for n in NAMES:
                    r, g = ref["iou"][n], got["iou"][n]
                    if (r is None) != (g is None):
                        failures.append(f"{set_name}/--ids {ids}: {n}: cityscapes {r}, farsee {g}")
                        continue
                    if r is not None:
                        worst[n] = max(worst[n], abs(r - g))
                    else:
                        undefined[n] += 1
                worst["mIoU"] = max(worst["mIoU"], abs(ref["miou"] - got["miou"]))
                worst["accuracy"] = max(worst["accuracy"], abs(ref["accuracy"] - got["accuracy"]))
            defined = sum(v is not None for v in ref["iou"].values())
            print(f"seed {seed} {set_name:11s} cityscapesScripts mIoU {ref['miou']:.6f} over "
                  f"{defined} classes, accuracy {ref['accuracy']:.6f}")
    return count


if __name__ == "__main__":
    sys.exit(main())
