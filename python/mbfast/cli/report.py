"""`mbfast report`: the paper's baselines next to the multiband model on one data set (mbfast.train.baseline_classifiers.report).

Registration only: torch, Numba, matplotlib, light-curve, imbalanced-learn and scikit-learn (the `train` and `baselines`
extras) are imported when the command runs, and a missing one is named with the extras to install.
"""
from __future__ import annotations

import argparse
import importlib.util

# what the report imports, and the extra that installs it
REPORT_PACKAGES = {"torch": "train", "numba": "train", "matplotlib": "train", "light_curve": "baselines",
                   "imblearn": "baselines", "sklearn": "baselines"}


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="train and evaluate BRF, BRF_all, Base, Multi and MTL on the same folds (paper §5)")
    report.add_argument("--data", choices=("plasticc", "yse"), required=True,
                        help="plasticc: simulated LSST; yse: real YSE DR1 spectroscopic subset")
    report.add_argument("--out", required=True, help="output folder (report.md, metrics.json, PNGs, cache/)")
    report.add_argument("--n-folds", type=int, default=3,
                        help="the split's k: k train/validation splits sharing one test set (the recipe uses 7)")
    report.add_argument("--folds", type=int, nargs="+", default=None,
                        help="which folds to run (default: all k, or the folds of --multi-runs)")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--max-per-class", type=int, default=500, help="class cap of the BRF training set")
    report.add_argument("--trees", type=int, nargs="+", default=[100, 250, 500], help="BRF grid (first fold)")
    report.add_argument("--regression-trees", type=int, nargs="+", default=[100, 250], help="RF regressor grid")
    report.add_argument("--multi-runs", nargs="+", default=[], metavar="RUN_DIR",
                        help="finished MTL runs of the lsst recipe (training/train_models.py) to reuse (one "
                             "per fold; their split.npz must be the report's fold, else the command stops)")
    report.add_argument("--multi-minutes", type=float, default=15.0, help="Multi's budget per fold")
    report.add_argument("--mtl-minutes", type=float, default=15.0, help="MTL's budget per fold when trained here")
    report.add_argument("--base-minutes", type=float, default=10.0, help="Base's budget per fold")
    report.add_argument("--base-patience", type=int, default=10, help="Base: epochs without improvement")
    report.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    report.add_argument("--steps-wait", type=int, default=None,
                        help="band-only batches before the central model (default: the recipe's)")
    report.add_argument("--lr", type=float, default=None, help="Multi and MTL learning rate (default: the recipe's)")
    report.add_argument("--transfer-from", default=None, metavar="MODEL",
                        help="Multi and MTL start from what MODEL (lsst, ztf or a file) learnt about light curves: "
                             "band stacks matched by filter and the central stack (mbfast train --transfer-from)")
    report.add_argument("--jobs", type=int, default=1, help="threads for forests and torch")
    report.add_argument("--methods", nargs="+", default=["BRF", "BRF_all", "Base", "Multi", "MTL"],
                        choices=["BRF", "BRF_all", "Base", "Multi", "MTL"])
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    missing = [package for package in REPORT_PACKAGES if importlib.util.find_spec(package) is None]
    if missing:
        extras = ",".join(sorted({REPORT_PACKAGES[package] for package in missing}))
        raise ValueError(f"needs {', '.join(missing)}: pip install 'mbfast[{extras}]'")
    from mbfast.train.baseline_classifiers.report import ReportOptions, run_report

    options = ReportOptions(data=args.data, n_folds=args.n_folds,
                            folds=None if args.folds is None else tuple(args.folds), seed=args.seed,
                            max_per_class=args.max_per_class, trees=tuple(args.trees),
                            regression_trees=tuple(args.regression_trees), multi_runs=tuple(args.multi_runs),
                            multi_minutes=args.multi_minutes, mtl_minutes=args.mtl_minutes,
                            base_minutes=args.base_minutes, base_patience=args.base_patience,
                            batch_size=args.batch_size, steps_wait=args.steps_wait, lr=args.lr,
                            transfer_from=args.transfer_from, n_jobs=args.jobs,
                            methods=tuple(args.methods))
    run_report(options, args.out, log=lambda line: print(line, flush=True))
    return 0
