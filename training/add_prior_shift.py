"""Fold the prior shift (mbfast.train.prior) into a run that finished before training did it itself: choose alpha
on the run's validation set, rewrite run_dir/model.mbf and record alpha in summary.json. Idempotent.

    python training/add_prior_shift.py runs/lsst_f0 runs/lsst_f1 runs/lsst_f2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mbfast.train.training_set import load_training_set
from mbfast.train.evaluate import object_indices
from mbfast.train.export import export_model, load_torch_model
from mbfast.train.loop import apply_prior_shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    for run in map(Path, parser.parse_args().runs):
        summary = json.loads((run / "summary.json").read_text())
        if summary.get("prior_shift") is not None:
            print(f"{run}: alpha {summary['prior_shift']} already folded in")
            continue
        options = json.loads((run / "options.json").read_text())
        model = load_torch_model(run / "model.mbf")
        data = load_training_set(options["dataset"], model.config.n_skip,
                                  tuple(target.name for target in model.config.regression_targets),
                                  data_path=options.get("data"), labels_path=options.get("labels"),
                                  survey=options.get("survey"))
        with np.load(run / "split.npz") as split:
            train, val = (object_indices(data.inputs.object_ids, split[part]) for part in ("train", "val"))
        summary["prior_shift"] = apply_prior_shift(model, data, train, val, "cpu")
        export_model(model, run / "model.mbf", model.config)
        (run / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
