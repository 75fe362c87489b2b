"""The fold-0 knob search of docs/training.md: each variant is the lsst recipe (mbfast.train.recipe) with one knob
changed, trained for the same number of epochs so that runs on a busy machine compare with runs on a quiet one.
Each run keeps its options, config, split, history and summary; training/runs_table.py turns them into the table.

    nohup nice python training/search.py runs/search wd1e-3 dropout0.5 > runs/search_a.log 2>&1 &
    python training/search.py runs/search wd1e-3 --resume      # continue an interrupted variant
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from mbfast.train.recipe import CONFIG, OPTIONS
from mbfast.train.loop import train

# s_base (the recipe, fold 0) found its best epoch at 71 of 81: every variant gets 80 epochs, no wall-clock limit
EPOCHS = 80
VARIANTS: dict[str, tuple[dict, dict]] = {   # name: (TrainOptions changes, ModelConfig changes)
    "dropout0.1": ({"band_dropout": 0.1}, {}),
    "dropout0.5": ({"band_dropout": 0.5}, {}),
    "wd1e-3": ({"weight_decay": 1e-3}, {}),
    "lr1e-2": ({"lr": 1e-2}, {}),
    "lr2.5e-3": ({"lr": 2.5e-3}, {}),
    "batch64": ({"batch_size": 64}, {}),
    "nskip1": ({}, {"n_skip": 1}),
    "nskip4": ({}, {"n_skip": 4}),
    # second round: the two variants above the recipe on validation macro F1, together; and wider LSTMs
    "nskip4_dropout0.1": ({"band_dropout": 0.1}, {"n_skip": 4}),
    "h96": ({}, {"band_hidden": 96, "central_hidden": 96}),
    "h80": ({}, {"band_hidden": 80, "central_hidden": 80}),   # the widest that fits the 5 MB model limit
    # third round: Avocado-style redshift augmentation (mbfast.train.augment.shift_redshift) on half the objects
    "redshift0.5": ({"augment_redshift": 0.5}, {}),
    "cls_only": ({"targets": ()}, {}),                 # no redshift regression (MTL off)
    "decay120": ({"decay_steps": 120}, {}),            # lr decays half as fast (42 batches an epoch here)
    # fourth round: decay120 was above the recipe in recall on 3 folds; slower still, and with n_skip 4
    "decay240": ({"decay_steps": 240}, {}),
    "decay120_nskip4": ({"decay_steps": 120}, {"n_skip": 4}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder of the runs: one sub-folder per variant")
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--fold", type=int, default=0, help="another fold of the recipe's 7 (run folder NAME_fFOLD)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.variants:
        option_changes, config_changes = VARIANTS[name]
        options = replace(OPTIONS, **{"max_minutes": None, "max_epochs": EPOCHS, "fold": args.fold, **option_changes})
        run_dir = Path(args.root) / (name if args.fold == 0 else f"{name}_f{args.fold}")
        train(run_dir, {**CONFIG, **config_changes}, options,
              resume=args.resume and (run_dir / "checkpoint.pt").exists())


if __name__ == "__main__":
    main()
