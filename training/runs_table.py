"""The search table of docs/training.md, regenerated from the training runs' own files: each run's options and
config (options.json, overrides.json), its best validation epoch (summary.json, history.json) and its test-set
scores through the engine (model.mbf on split.npz's test objects), and with --real its scores on the REAL set its
shipped model is checked on (REAL_FOR_DATASET; training/ship_model.py's check: classes grouped into the real set's,
objects the run trained or validated on left out).

    python training/runs_table.py runs/lsst_f0 runs/lsst_f1 runs/lsst_f2 runs/lsst_sampling_f0 > table.md
    python training/runs_table.py runs/search/* --real --json docs/reports/runs.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import mbfast
from mbfast.train import metrics
from mbfast.train.datasets import load_labelled
from mbfast.train.evaluate import object_indices
from mbfast.train.prefix import engine_classes
from ship_model import REAL_SETS, real_data_check, trained_on   # training/ship_model.py, beside this script

# the real set of each simulated training set: PS1 g r i z as LSST bands, ZTF g r as ZTF bands (as ship_model --real)
REAL_FOR_DATASET = {"plasticc": "yse_ps1", "plasticc_ztf": "yse_ztf", "ztf_mix": "yse_ztf"}

KNOBS = ("dataset", "fold", "class_balance", "augment_truncate", "augment_obs_dropout", "augment_band_dropout",
         "augment_redraw", "augment_redshift", "select_on", "band_dropout", "weight_decay", "lr", "decay_steps",
         "batch_size", "targets")


def run_row(run_dir: Path, cache: dict, with_real: bool) -> dict:
    options = json.loads((run_dir / "options.json").read_text())
    overrides = json.loads((run_dir / "overrides.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    key = (options["dataset"], options.get("data"), options.get("labels"), options.get("survey"))
    if key not in cache:
        cache[key] = load_labelled(*key)
    labelled = cache[key]
    with np.load(run_dir / "split.npz") as split:
        test = object_indices(labelled.curves.object_ids, split["test"])
        train = object_indices(labelled.curves.object_ids, split["train"])
    fallback = int(np.bincount(labelled.labels[train]).argmax())
    predicted = engine_classes(mbfast.Engine.load(run_dir / "model.mbf"), labelled.curves.select(test), fallback)
    matrix = metrics.confusion_matrix(labelled.labels[test], predicted, len(labelled.class_names))
    best = history[summary["best_epoch"]] if summary["best_epoch"] >= 0 else {}
    real_scores = {}
    if with_real:
        real = REAL_FOR_DATASET.get(options["dataset"])
        real_scores = {"real_set": real, "real_macro_recall": None, "real_macro_f1": None}
        if real is not None:
            if real not in cache:
                cache[real] = REAL_SETS[real][0]()
            checked = real_data_check(run_dir / "model.mbf", cache[real], fallback, trained_on(run_dir, options))
            real_scores.update(real_macro_recall=round(checked["macro_recall"], 3),
                               real_macro_f1=round(checked["macro_f1"], 3))
    return {"run": run_dir.name, **{knob: options.get(knob) for knob in KNOBS},
            "hidden": overrides.get("band_hidden"), "n_skip": overrides.get("n_skip"),
            "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
            "minutes": round(summary["training_minutes"], 1), "stopped": summary["stopped"],
            "val_macro_f1": round(best.get("val_macro_f1", float("nan")), 3),
            "test_macro_recall": round(metrics.macro_recall(matrix), 3),
            "test_macro_f1": round(metrics.macro_f1(matrix), 3), "test_accuracy": round(metrics.accuracy(matrix), 3),
            **real_scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--real", action="store_true", help="also score each run on the REAL set of its data")
    args = parser.parse_args()
    cache: dict = {}
    rows = [run_row(Path(run), cache, args.real) for run in args.runs]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
