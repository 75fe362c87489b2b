"""`mbfast train`, `mbfast evaluate`, `mbfast export`: the `train` extra's jobs (mbfast.train.loop, .evaluate,
.export).

Import-light: argparse only at registration; torch is imported inside the command functions.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mbfast.model.config import ModelConfig

if TYPE_CHECKING:
    from mbfast.train.loop import TrainOptions

# the shape options: ModelConfig's integer fields, each a --flag of `mbfast train`
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(ModelConfig) if field.type == "int")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train the multiband model (needs mbfast[train])")
    train.add_argument("run_dir", help="folder for config, split, checkpoints, history and model.mbf")
    train.add_argument("--resume", action="store_true", help="continue from run_dir/checkpoint.pt")
    train.add_argument("--dataset", default=None,
                       help="a named set (plasticc, plasticc_ztf, yse, yse_ztf); default plasticc, or 'files' when "
                            "--data is given")
    train.add_argument("--data", default=None, help="your own light curves (Parquet/CSV: obj_id, band, t, mag, err)")
    train.add_argument("--labels", default=None, help="labels CSV for --data: obj_id, label[, regression targets]")
    train.add_argument("--survey", default=None, help="survey of --data's bands (ztf, lsst, ps1, ...)")
    train.add_argument("--targets", "--target", nargs="*", default=None, dest="targets",
                       help="regression targets (default: all the data has)")
    for name in CONFIG_FIELDS:
        train.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"ModelConfig.{name}")
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--lr", type=float, default=5e-3, help="band learning rate (central: half)")
    train.add_argument("--steps-wait", type=int, default=500, help="band-only batches before the central model")
    train.add_argument("--central-steps-per-batch", type=int, default=2)
    train.add_argument("--band-dropout", type=float, default=0.3)
    train.add_argument("--patience", type=int, default=20)
    train.add_argument("--max-epochs", type=int, default=1000)
    train.add_argument("--max-minutes", type=float, default=None, help="stop gracefully, keeping the best weights")
    train.add_argument("--max-per-class", type=int, default=None)
    train.add_argument("--folds", type=int, default=7)
    train.add_argument("--fold", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--class-balance", default="weights", choices=("weights", "sampling", "none"),
                       help="weights: inverse class frequency in the losses (default); sampling: classes drawn "
                            "equally often; none: the paper's")
    train.add_argument("--augment-truncate", type=float, default=0.5, help="P(curve cut at a random time)")
    train.add_argument("--augment-obs-dropout", type=float, default=0.1, help="P(observation dropped)")
    train.add_argument("--augment-band-dropout", type=float, default=0.2, help="P(random band subset dropped)")
    train.add_argument("--no-augment-redraw", dest="augment_redraw", action="store_false",
                       help="keep magnitudes as measured (default: re-drawn from N(mag, err) every epoch)")
    train.add_argument("--augment-redshift", type=float, default=0.0,
                       help="P(object of known redshift seen from another z: dimmed or brightened, time-dilated, "
                            "noise added; needs the target 'redshift'); default 0 (off)")
    train.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    train.add_argument("--select-on", default="macro_f1", choices=("macro_f1", "loss"),
                       help="best epoch and early stopping by validation macro F1 (ties: loss) or loss")
    train.add_argument("--no-prior-shift", dest="prior_shift", action="store_false",
                       help="keep the class-balanced model's uniform prior (default: fold in the shift toward the "
                            "training class frequencies that maximises validation macro F1)")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    train.add_argument("--init-from", default=None,
                       help="start from this model's weights (lsst, ztf or a model file): fine-tune it on your data "
                            "(same bands, classes and shape)")
    train.add_argument("--transfer-from", default=None,
                       help="start from what another model learnt about light curves (lsst, ztf or a model file of "
                            "other bands or classes): band stacks matched by filter (ps1_g, ztf_g <- g), the central "
                            "stack; classifier and regressors start fresh")
    train.set_defaults(run=run_train)

    evaluate = subparsers.add_parser("evaluate", help="test-set report: F1, recall, confusion matrix, figures")
    evaluate.add_argument("model", help="model file (.mbf) or a run folder (its model.mbf and split.npz)")
    evaluate.add_argument("out_dir")
    evaluate.add_argument("--dataset", default=None, help="default: the run's (a run folder), else plasticc")
    evaluate.add_argument("--data", default=None, help="your own light curves (with --labels; as mbfast train)")
    evaluate.add_argument("--labels", default=None)
    evaluate.add_argument("--survey", default=None)
    evaluate.add_argument("--split", default=None, help="split.npz (default: the run folder's, else all objects)")
    evaluate.add_argument("--part", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--object-id", type=int, default=None, help="object of the probability figure")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(run=run_evaluate)

    export = subparsers.add_parser("export", help="write a run's checkpoint as an mbfast model file")
    export.add_argument("run_dir", help="run folder with config.json and checkpoint.pt")
    export.add_argument("out", help="model file to write")
    export.set_defaults(run=run_export)


def run_train(args: argparse.Namespace) -> int:
    from mbfast.train.loop import train

    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    overrides = {name: getattr(args, name) for name in CONFIG_FIELDS if getattr(args, name) is not None}
    train(args.run_dir, overrides, train_options(args), resume=args.resume)
    return 0


def train_options(args: argparse.Namespace) -> TrainOptions:
    from mbfast.train.loop import TrainOptions

    dataset = args.dataset or ("files" if args.data is not None else "plasticc")
    no_augment = args.no_augment
    return TrainOptions(
        dataset=dataset, data=args.data, labels=args.labels, survey=args.survey,
        targets=None if args.targets is None else tuple(args.targets),
        batch_size=args.batch_size, lr=args.lr, steps_wait=args.steps_wait,
        central_steps_per_batch=args.central_steps_per_batch, band_dropout=args.band_dropout,
        patience=args.patience, max_epochs=args.max_epochs, max_minutes=args.max_minutes,
        max_per_class=args.max_per_class, n_folds=args.folds, fold=args.fold, seed=args.seed, device=args.device,
        weight_decay=args.weight_decay, init_from=args.init_from, transfer_from=args.transfer_from,
        prior_shift=args.prior_shift, class_balance=args.class_balance, select_on=args.select_on,
        augment_truncate=0.0 if no_augment else args.augment_truncate,
        augment_obs_dropout=0.0 if no_augment else args.augment_obs_dropout,
        augment_band_dropout=0.0 if no_augment else args.augment_band_dropout,
        augment_redraw=args.augment_redraw and not no_augment,
        augment_redshift=0.0 if no_augment else args.augment_redshift)


def run_evaluate(args: argparse.Namespace) -> int:
    from mbfast.train.evaluate import evaluate

    model, split = Path(args.model), args.split
    source = {"dataset": args.dataset, "data": args.data, "labels": args.labels, "survey": args.survey}
    if model.is_dir():
        split = split or (model / "split.npz")
        run_options = json.loads((model / "options.json").read_text())
        if args.dataset is None and args.data is None:  # the run's own data, its own files included
            source = {name: run_options.get(name) for name in source}
        model = model / "model.mbf"
    dataset = source["dataset"] or ("files" if source["data"] is not None else "plasticc")
    report = evaluate(model, args.out_dir, dataset, split, args.part, args.object_id, device=args.device,
                      data_path=source["data"], labels_path=source["labels"], survey=source["survey"])
    print(json.dumps({key: report[key] for key in ("n_objects", "accuracy", "macro_recall", "macro_f1",
                                                   "regression")}, indent=1))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from mbfast.train.export import export_run

    export_run(args.run_dir, args.out)
    print(f"wrote {args.out}")
    return 0
