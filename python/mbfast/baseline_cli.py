"""`mbfast report`: the paper's baselines next to the multiband model on one data set (training/baselines/report.py).

Registration only: torch, light-curve and imbalanced-learn are imported inside the command, and the report code
lives in the repository's training/ folder (run from a source checkout, with the `train` and `baselines` extras).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="train and evaluate BRF, BRF_all, Base, Multi and MTL on the same folds (paper §5)")
    report.add_argument("--data", choices=("plasticc", "yse"), required=True,
                        help="plasticc: simulated LSST; yse: real YSE DR1 spectroscopic subset")
    report.add_argument("--out", required=True, help="output folder (report.md, metrics.json, PNGs, cache/)")
    report.add_argument("--folds", type=int, default=3, help="train/validation splits sharing one test set")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--max-per-class", type=int, default=500, help="class cap of the BRF training set")
    report.add_argument("--trees", type=int, nargs="+", default=[100, 250, 500], help="BRF grid (fold 0)")
    report.add_argument("--regression-trees", type=int, nargs="+", default=[100, 250], help="RF regressor grid")
    report.add_argument("--neural-minutes", type=float, default=2.0, help="training budget per neural model and fold")
    report.add_argument("--batch-size", type=int, default=128)
    report.add_argument("--steps-wait", type=int, default=40, help="band-only batches before the central model")
    report.add_argument("--jobs", type=int, default=2, help="threads for forests and torch")
    report.add_argument("--methods", nargs="+", default=["BRF", "BRF_all", "Base", "Multi", "MTL"],
                        choices=["BRF", "BRF_all", "Base", "Multi", "MTL"])
    report.set_defaults(run=run_report_command)


def run_report_command(args: argparse.Namespace) -> int:
    try:
        from training.baselines.report import ReportOptions, run_report
    except ModuleNotFoundError:  # not run from the repository root: the checkout holding this editable install
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from training.baselines.report import ReportOptions, run_report

    options = ReportOptions(data=args.data, n_folds=args.folds, seed=args.seed, max_per_class=args.max_per_class,
                            trees=tuple(args.trees), regression_trees=tuple(args.regression_trees),
                            neural_minutes=args.neural_minutes, batch_size=args.batch_size,
                            steps_wait=args.steps_wait, n_jobs=args.jobs, methods=tuple(args.methods))
    run_report(options, args.out, log=lambda line: print(line, flush=True))
    return 0
