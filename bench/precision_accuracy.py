"""Accuracy of the fast CPU paths on PLAsTiCC: macro F1 and probability differences of Engine.classify at
precision fp32/bf16/int8 and state_dtype fp32/fp16 (docs/performance.md, "Accuracy of the fast paths").

    python bench/precision_accuracy.py [model.mbf] [--split runs/plasticc_default/split.npz] [--all]

Default: the shipped model on the test fold of its split (all objects with --all or when the split file is
missing). Needs the PLAsTiCC training set (mbfast.train.datasets.load_plasticc).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import mbfast
from mbfast.train.datasets import load_plasticc
from mbfast.train import metrics

SETTINGS = (("fp32", "fp32"), ("bf16", "fp32"), ("int8", "fp32"), ("fp32", "fp16"), ("bf16", "fp16"),
            ("int8", "fp16"))  # (precision, state_dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--split", default="runs/plasticc_default/split.npz", help="split.npz with a 'test' part")
    parser.add_argument("--all", action="store_true", help="every object instead of the test fold")
    args = parser.parse_args()
    data = load_plasticc()
    if args.all or not Path(args.split).is_file():
        subset, label = data, "all objects"
    else:
        with np.load(args.split) as split:
            subset = data.subset(np.flatnonzero(np.isin(data.curves.object_ids, split["test"])))
        label = f"test fold of {args.split}"
    print(f"{label}: {subset.curves.n_objects} objects, {len(subset.curves)} observations")
    probs = {}
    for precision, state_dtype in SETTINGS:
        engine = mbfast.Engine.load(args.model, precision=precision, state_dtype=state_dtype)
        start = time.perf_counter()
        prediction = engine.classify(subset.curves)
        seconds = time.perf_counter() - start
        known = ~np.isnan(prediction.probs).any(axis=1) & (subset.labels >= 0)
        matrix = metrics.confusion_matrix(subset.labels[known], prediction.probs[known].argmax(1),
                                          len(subset.class_names))
        probs[precision, state_dtype] = prediction.probs
        print(f"precision {precision} state {state_dtype} ({engine.cpu_kernel}): macro F1 "
              f"{metrics.macro_f1(matrix):.4f} on {known.sum()} objects, {len(subset.curves) / seconds:,.0f} obs/s")
    reference = probs["fp32", "fp32"]
    for setting in SETTINGS[1:]:
        diff = np.abs(probs[setting] - reference)
        same = np.mean(probs[setting].argmax(1) == reference.argmax(1))
        print(f"{setting[0]}/{setting[1]} vs fp32: max |dp| {np.nanmax(diff):.4f}, mean {np.nanmean(diff):.2e}, "
              f"same argmax {same:.2%}")


if __name__ == "__main__":
    main()
