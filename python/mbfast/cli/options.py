"""argparse types shared by the commands: numbers refused at parse time (exit 2), before any work."""
from __future__ import annotations

import argparse
import math

MAX_THREADS = 1024  # far above any core count; beyond it thread creation fails under ordinary pid limits


def count_option(minimum: int, maximum: int | None = None):  # type: ignore[no-untyped-def]
    """An argparse `type` for an integer in [minimum, maximum], refused at parse time (exit 2) otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value
    return parse


def days_option(text: str) -> float:
    """An argparse `type` for a finite, non-negative number of days."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of days >= 0, got {text}")
    return value
