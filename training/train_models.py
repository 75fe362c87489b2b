"""Train the shipped models with their recipes (mbfast.train.recipe), then ship them with training/ship_model.py.

    nohup nice python training/train_models.py lsst runs/lsst_f0 > runs/lsst_f0.log 2>&1 &
    nohup nice python training/train_models.py ztf runs/ztf_f0 > runs/ztf_f0.log 2>&1 &    # base, then
    nohup nice python training/train_models.py ztf_fine_tune runs/ztf_mix_ft --init-from runs/ztf_f0/model.mbf
    python training/train_models.py lsst runs/lsst_f0 --resume     # continue after an interruption
    python training/ship_model.py lsst runs/lsst_f0 reports/lsst --real yse_ps1
    python training/ship_model.py ztf runs/ztf_mix_ft reports/ztf --real yse_ztf
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from mbfast.train.recipe import CONFIG, OPTIONS, ZTF_FINE_TUNE, ZTF_OPTIONS
from mbfast.train.loop import train

RECIPES = {"lsst": OPTIONS, "ztf": ZTF_OPTIONS, "ztf_fine_tune": ZTF_FINE_TUNE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--fold", type=int, default=None)
    parser.add_argument("--init-from", default=None, help="ztf_fine_tune: the base ZTF run's model.mbf")
    args = parser.parse_args()
    options = RECIPES[args.recipe]
    changes = {name: value for name, value in (("max_minutes", args.max_minutes), ("fold", args.fold),
                                               ("init_from", args.init_from)) if value is not None}
    train(args.run_dir, CONFIG, replace(options, **changes), resume=args.resume)


if __name__ == "__main__":
    main()
