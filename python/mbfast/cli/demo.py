"""`mbfast demo`: classify the shipped PLAsTiCC sample with the default model and print the accuracy."""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from mbfast.jobs.local import classify_files


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="classify the shipped PLAsTiCC sample with the default model")
    demo.add_argument("-o", "--output", default=None, help="also write the scores to this Parquet file")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mbfast.lightcurves.sample import SAMPLE_CURVES, SAMPLE_DIR, load_sample

    with tempfile.TemporaryDirectory() as folder:  # the scores are written where asked (-o), else nowhere
        output = args.output or Path(folder) / "scores.parquet"
        summary = classify_files(SAMPLE_DIR / SAMPLE_CURVES, output, progress=False)
        scores = pq.read_table(output, columns=["obj_id", "class"])
    print("\n".join(summary.lines()))
    sample = load_sample()
    truth = dict(zip(sample.curves.object_ids.tolist(), (sample.class_names[i] for i in sample.labels)))
    predicted = scores.column("class").to_pylist()
    true_class = [truth[i] for i in scores.column("obj_id").to_pylist()]
    held_out = set(json.loads((SAMPLE_DIR / "lsst.json").read_text())["split"]["test_obj_ids"])
    for name, keep in (("all sample objects (most were in the training split)", lambda obj: True),
                       ("held-out test objects of the default model", lambda obj: obj in held_out)):
        pairs = [(p, t) for obj, p, t in zip(scores.column("obj_id").to_pylist(), predicted, true_class)
                 if p and keep(obj)]
        accuracy = sum(p == t for p, t in pairs) / max(len(pairs), 1)
        print(f"accuracy on {len(pairs)} {name}: {accuracy:.3f}")
    print(f"(PLAsTiCC is simulated LSST data; {len(sample.class_names)} classes, chance "
          f"{1 / len(sample.class_names):.3f}; objects without a prediction have no band with 3 observations)")
    if args.output:
        print(f"wrote {args.output}")
    return 0
