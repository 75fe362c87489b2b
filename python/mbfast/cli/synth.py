"""`mbfast synth`: write synthetic light curves resampled from real PLAsTiCC curves (mbfast.lightcurves.synth)."""
from __future__ import annotations

import argparse

from mbfast.lightcurves.synth import write_synthetic


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser("synth", help="write N synthetic objects resampled from real PLAsTiCC curves")
    synth.add_argument("n_objects", type=int)
    synth.add_argument("-o", "--output", required=True, help="output Parquet file (flat rows)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_objects < 1:
        raise ValueError(f"n_objects must be >= 1, got {args.n_objects}")
    rows = write_synthetic(args.output, args.n_objects, args.seed)
    print(f"wrote {args.n_objects:,} objects ({rows:,} observations) to {args.output}")
    return 0
