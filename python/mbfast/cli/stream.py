"""`mbfast stream`: replay alert files through an Engine whose state persists between runs (mbfast.jobs.stream)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mbfast import exit_codes, models
from mbfast.alerts import ZtfCuts, survey_of_files
from mbfast.engine import CPU_PRECISIONS
from mbfast.cli.options import days_option
from mbfast.jobs.stream import CommitError, ReplayResult, check_paths, replay


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `mbfast stream ALERTS... --state DIR -o SCORES [--model M]`."""
    parser = subparsers.add_parser("stream", help="replay alert files (ZTF / LSST Avro or Parquet) through the "
                                                  "engine, keeping its state between runs")
    parser.add_argument("alerts", nargs="+", help="alert files: Avro containers or Fink-style Parquet")
    parser.add_argument("--state", required=True, help="state directory (created; reused by the next run)")
    parser.add_argument("-o", "--output", required=True, help="per-alert scores, Parquet")
    parser.add_argument("--model", help="a shipped model's name (lsst, ztf) or a model file (default: the shipped "
                                        "model of the alerts' survey: ztf for ZTF alerts, lsst for Rubin)")
    parser.add_argument("--min-rb", type=float, default=ZtfCuts.min_rb, help="ZTF rb cut (default %(default)s)")
    parser.add_argument("--apparent", action="store_true", help="ZTF apparent magnitudes near reference sources")
    parser.add_argument("--precision", default="fp32", choices=CPU_PRECISIONS,
                        help="weights' precision (docs/engine.md); state files do not depend on it")
    parser.add_argument("--forget-after", type=days_option, metavar="DAYS",
                        help="forget objects not detected for DAYS before the batch's newest detection (bounds the "
                             "state of a long-running stream)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay one batch and print a JSON summary; the exit status is one of mbfast.exit_codes (docs/alerts.md)."""
    import mbfast

    paths = [Path(path) for path in args.alerts]
    check_paths(paths, Path(args.state), args.output)
    model = args.model
    if model is None:  # the shipped model of the alerts' survey; the default one when no file can be read
        model = models.for_survey(survey_of_files(paths) or models.DEFAULT) or models.DEFAULT
    engine = mbfast.Engine.load(model, precision=args.precision)
    try:
        result = replay(paths, engine, state_dir=args.state, scores_path=args.output,
                        cuts=ZtfCuts(min_rb=args.min_rb, apparent=args.apparent), forget_after=args.forget_after)
    except (CommitError, OSError) as exc:  # after the work started: a full disk, a folder that went away
        print(f"mbfast stream: error: {exc}", file=sys.stderr)
        return exit_codes.NOT_DONE
    print(json.dumps(_summary(result), indent=1))
    if not result.problems:
        return exit_codes.OK
    return exit_codes.REJECTED if result.scores.num_rows else exit_codes.NOT_DONE


def _summary(result: ReplayResult) -> dict[str, Any]:
    statuses = result.scores.column("status").to_pylist()
    return {"alerts": result.scores.num_rows,
            "alert_status": {name: statuses.count(name) for name in sorted(set(statuses))},
            "rows_read": result.rows_read, "rows_stepped": result.rows_stepped, "step": result.step_counts,
            "skipped_by_cuts": result.skipped, "conflicting_duplicates": result.conflicts,
            "duplicate_alerts": result.duplicate_alerts, "files_already_done": result.files_already_done,
            "files_repeated": result.files_repeated, "objects_forgotten": result.forgotten,
            "state_committed": result.committed, "problems": [str(problem) for problem in result.problems]}
