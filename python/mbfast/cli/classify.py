"""`mbfast classify`: whole light curves from Parquet/CSV to one row of scores per object (mbfast.jobs.local, or
mbfast.jobs.dask with --scheduler)."""
from __future__ import annotations

import argparse

from mbfast import exit_codes
from mbfast.jobs.local import classify_files
from mbfast.engine import CPU_PRECISIONS
from mbfast.cli.options import MAX_THREADS, count_option, days_option
from mbfast.lightcurves.surveys import TABLE_SURVEYS
from mbfast.lightcurves.fields import FIELDS


def register(subparsers: argparse._SubParsersAction) -> None:
    classify = subparsers.add_parser(
        "classify", help="classify whole light curves (Parquet/CSV) to a Parquet file",
        epilog="exit status: 0 all rows classified; 1 done, with rows rejected (OUT.rejected.parquet); 2 usage "
               "error; 3 nothing done (no object classified, every row rejected, --strict with a rejected row, "
               "or the state not committed). docs/batch.md")
    classify.add_argument("input", help="Parquet or CSV file, directory or glob; flat rows or one list per object")
    classify.add_argument("-o", "--output", required=True, help="output Parquet file (one row per object)")
    classify.add_argument("--model", help="model file or shipped model name (default: the shipped model for --survey, "
                                           "else the shipped LSST model trained on PLAsTiCC)")
    classify.add_argument("--column", action="append", default=[], metavar="FIELD=NAME[,FIELD=NAME...]",
                          help="input column for obj_id/band/t/mag/err when not named so (repeatable, or "
                               "comma-separated: obj_id=objectId,band=fid,t=mjd,mag=magpsf,err=sigmapsf)")
    classify.add_argument("--survey", choices=TABLE_SURVEYS,
                          help="survey whose band codes or labels the input holds (ZTF fid 1/2/3 or zg/zr, PLAsTiCC "
                               "passband 0-5, ...); needed for integer bands")
    classify.add_argument("--keep", action="append", default=[], metavar="COLUMN",
                          help="pass an input column through to the output, per object (its value on the object's "
                               "newest row; repeatable)")
    classify.add_argument("--strict", action="store_true",
                          help="any rejected row is fatal: nothing is classified or changed (exit 3)")
    classify.add_argument("--state", help="incremental mode: engine state folder, one file per shard")
    classify.add_argument("--forget-after", type=days_option, metavar="DAYS",
                          help="with --state: drop objects not observed for DAYS before the input's newest "
                               "observation (bounds the state over years of nights)")
    classify.add_argument("--shards", type=count_option(1), help="number of obj_id hash shards, >= 1 (default: "
                                                                  "from input size)")
    classify.add_argument("--embedding", action="store_true", help="also write the multiband embedding")
    classify.add_argument("--threads", type=count_option(1, MAX_THREADS),
                          help=f"engine threads, 1 to {MAX_THREADS} (default: all cores)")
    classify.add_argument("--precision", default="fp32", choices=CPU_PRECISIONS,
                          help="weights' precision: bf16 and int8 are faster, within 0.003 macro F1 on PLAsTiCC "
                               "(int8 needs AVX-512 VNNI to pay; docs/engine.md)")
    classify.add_argument("--scheduler", help="Dask scheduler address, or local:N for N local workers")
    classify.add_argument("--quiet", action="store_true", help="no progress bars")
    classify.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit status (mbfast.exit_codes): 0 all done, 1 rows rejected, 2 usage and 3 NothingDone (both via cli.main)."""
    columns = _column_option(args.column)
    keep = tuple(dict.fromkeys(args.keep))
    if args.scheduler:
        from mbfast.jobs.dask import classify_with_scheduler

        summary = classify_with_scheduler(args.input, args.output, args.scheduler, model=args.model,
                                          columns=columns, state_dir=args.state, n_shards=args.shards,
                                          embedding=args.embedding, precision=args.precision,
                                          forget_after=args.forget_after, survey=args.survey, keep=keep,
                                          strict=args.strict)
    else:
        summary = classify_files(args.input, args.output, model=args.model, columns=columns, state_dir=args.state,
                                 n_shards=args.shards, embedding=args.embedding, num_threads=args.threads,
                                 progress=not args.quiet, precision=args.precision, forget_after=args.forget_after,
                                 survey=args.survey, keep=keep, strict=args.strict)
    print("\n".join(summary.lines()))
    print(f"wrote {args.output}")
    if summary.rejected:
        print(f"rejected rows (with their reason): {args.output}.rejected.parquet")
        return exit_codes.REJECTED
    return exit_codes.OK


def _column_option(values: list[str]) -> dict[str, str]:
    """--column FIELD=NAME, repeated or comma-separated (obj_id=objectId,band=fid,t=mjd)."""
    mapping = {}
    for value in (item for option in values for item in option.split(",") if item.strip()):
        canonical, _, name = value.strip().partition("=")
        if not name or canonical not in FIELDS:
            raise ValueError(f"--column takes FIELD=NAME with FIELD one of {', '.join(FIELDS)}; got {value!r}")
        mapping[canonical] = name
    return mapping
