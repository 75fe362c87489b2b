"""`mbfast synth`: write synthetic light curves resampled from real PLAsTiCC curves (mbfast.lightcurves.synth)."""
from __future__ import annotations

import argparse

from mbfast.lightcurves.sample import load_sample
from mbfast.lightcurves.synth import write_synthetic
from mbfast.lightcurves.table import LightCurves


def plasticc_curves() -> LightCurves:
    """The full PLAsTiCC set when ../shared/data is there, else the sample shipped in mbfast/data."""
    from mbfast.train.datasets import load_plasticc

    try:
        return load_plasticc().curves
    except FileNotFoundError:
        return load_sample().curves


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser("synth", help="write N synthetic objects resampled from real PLAsTiCC curves")
    synth.add_argument("n_objects", type=int)
    synth.add_argument("-o", "--output", required=True, help="output Parquet file (flat rows)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_objects < 1:
        raise ValueError(f"n_objects must be >= 1, got {args.n_objects}")
    rows = write_synthetic(args.output, args.n_objects, plasticc_curves(), args.seed)
    print(f"wrote {args.n_objects:,} objects ({rows:,} observations) to {args.output}")
    return 0
