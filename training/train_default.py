"""Train the shipped default model (python/mbfast/data/default_model.mbf) with its recipe (mbfast.model.recipe):
PLAsTiCC (simulated LSST ugrizy), 14 classes, redshift regression, fold 0 of 7, one hour of CPU.

    nohup nice python training/train_default.py runs/plasticc_default > runs/plasticc_default/train.log 2>&1 &
    python training/train_default.py runs/plasticc_default --resume    # continue after an interruption
"""
from __future__ import annotations

import argparse

from mbfast.model.recipe import CONFIG, OPTIONS
from mbfast.model.training import TrainOptions, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=OPTIONS.max_minutes)
    args = parser.parse_args()
    options = TrainOptions.from_dict({**OPTIONS.__dict__, "max_minutes": args.max_minutes})
    train(args.run_dir, CONFIG, options, resume=args.resume)


if __name__ == "__main__":
    main()
