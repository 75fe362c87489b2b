"""Ship a finished run as the default model: evaluate on the run's test set, copy model.mbf to
python/mbfast/data/default_model.mbf and write the metrics to python/mbfast/data/default_model.json.

    python training/finish_default.py runs/plasticc_default reports/plasticc_default
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from mbfast.model.evaluate import evaluate
from mbfast.modelfile import read_model

DATA = Path(__file__).resolve().parents[1] / "python" / "mbfast" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("report_dir")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    report = evaluate(run_dir / "model.mbf", args.report_dir, "plasticc", run_dir / "split.npz", "test")
    summary = json.loads((run_dir / "summary.json").read_text())
    options = json.loads((run_dir / "options.json").read_text())
    with np.load(run_dir / "split.npz") as split:
        sizes = {part: int(len(split[part])) for part in split.files}
        test_obj_ids = sorted(int(obj_id) for obj_id in split["test"])  # `mbfast demo` scores these apart
    config = read_model(run_dir / "model.mbf").config
    target = DATA / "default_model.mbf"
    shutil.copyfile(run_dir / "model.mbf", target)
    shipped = {
        "model_file": target.name,
        "file_bytes": target.stat().st_size,
        "data": "PLAsTiCC training set: SIMULATED LSST light curves (Kessler et al. 2019), ugrizy AB mag",
        "split": {"seed": options["seed"], "fold": options["fold"], "n_folds": options["n_folds"], **sizes,
                  "test_obj_ids": test_obj_ids},
        "training": {**summary, "options": options},
        "config": json.loads(config.to_json()),
        "test": {key: report[key] for key in ("n_objects", "accuracy", "macro_recall", "macro_f1",
                                              "per_class_f1", "per_class_support", "regression")},
    }
    (DATA / "default_model.json").write_text(json.dumps(shipped, indent=1) + "\n")
    print(json.dumps(shipped["test"], indent=1))


if __name__ == "__main__":
    main()
