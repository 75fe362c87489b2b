"""The `mbfast` command line: one module per command (mbfast.cli.<command>), each a thin argparse layer over the
library function that does the job, with register(subparsers) and the function its sub-commands run.

Registration must stay import-light: the command modules import torch (training) only inside their run functions.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mbfast import exit_codes
from mbfast.exit_codes import NothingDone

# in the order `mbfast --help` lists them; each module's register(subparsers) adds its sub-commands
COMMANDS = ("info", "classify", "demo", "stream", "train", "report", "bench", "synth")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbfast", description="Multiband RNN light-curve classification engine")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        importlib.import_module(f"mbfast.cli.{command}").register(subparsers)
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
