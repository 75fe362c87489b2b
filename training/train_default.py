"""Recipe of the shipped default model (python/mbfast/data/default_model.mbf): PLAsTiCC (simulated LSST ugrizy),
14 classes, redshift regression, fold 0 of 7, one hour of CPU. See docs/training.md for the choices.

    nohup nice python training/train_default.py runs/plasticc_default > runs/plasticc_default/train.log 2>&1 &
    python training/train_default.py runs/plasticc_default --resume    # continue after an interruption
"""
from __future__ import annotations

import argparse

from mbfast.model.training import TrainOptions, train

# 6 bands, median 3-9 observations per band (window rows = n_obs - 2), median 29 central steps: 64 hidden units
# and 3 band / 2 central layers (the paper's Gaia/ZTF depth at PS1 width); n_skip=2 as for PS1 (short curves)
CONFIG = dict(band_hidden=64, band_layers=3, central_hidden=64, central_layers=2, n_skip=2)
OPTIONS = TrainOptions(dataset="plasticc", batch_size=128, lr=5e-3, steps_wait=200, band_dropout=0.3,
                       patience=20, max_minutes=60, seed=0, fold=0)


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
