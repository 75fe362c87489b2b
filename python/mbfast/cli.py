"""The `mbfast` command line: one sub-command per job, each registered by the module that does the job.

Registration must stay import-light: modules import torch (training) only inside their command functions.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from mbfast import exit_codes
from mbfast.jobs import NothingDone

# modules exposing register(subparsers); each adds its own sub-commands
COMMAND_MODULES = ("mbfast.cli", "mbfast.batch", "mbfast.stream", "mbfast.model.cli", "mbfast.baseline_cli",
                   "mbfast.bench_cli", "mbfast.synth")


def register(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser("info", help="what this build compiled; with --model, the model's card")
    info.add_argument("--model", help="a shipped model's name (lsst, ztf) or a model file: print its model card "
                                      "(data, classes, metrics on simulated and real data, known limits)")
    info.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    import mbfast

    if args.model is None:
        print(json.dumps({**mbfast.build_info(), "cuda_available": mbfast.cuda_available()}, indent=2))
        return 0
    from mbfast.models import resolve
    from mbfast.modelfile import read_model

    path = resolve(args.model)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    config = read_model(path).config
    print(json.dumps({"model": str(path), "survey": config.survey, "bands": list(config.bands),
                      "classes": list(config.class_names),
                      "regression_targets": [target.name for target in config.regression_targets],
                      "card": config.card or "this model file has no card"}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbfast", description="Multiband RNN light-curve classification engine")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; exit status per mbfast.exit_codes (docs/batch.md, "Exit codes"): argparse's own usage errors
    and ValueError / FileNotFoundError (bad input, found before work) give 2; NothingDone and other OSErrors (a full
    disk while writing output or state) give 3, as the job's work was not done."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or exit_codes.OK)
    except (ValueError, FileNotFoundError) as error:
        print(f"mbfast {args.command}: error: {error}", file=sys.stderr)
        return exit_codes.USAGE
    except (NothingDone, OSError) as error:
        print(f"mbfast {args.command}: error: {error}", file=sys.stderr)
        return exit_codes.NOT_DONE


if __name__ == "__main__":
    sys.exit(main())
