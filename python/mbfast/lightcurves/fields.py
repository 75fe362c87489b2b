"""An observation row's fields, the engine's bounds on them, and the words for a row that is refused: one place, so
that the table, the file readers, the batch row checks and the engine name a bad row alike.

A refused row reads "row 17 (obj_id 4021): err must be > 0, got -0.02", as the engine words it (cpp/plan.cc); the
batch jobs count and report rows under the same words, without the value. Imports nothing of the package.
"""
from __future__ import annotations

# An observation row's fields, as LightCurves holds them and as every reader and writer names its columns
FIELDS = ("obj_id", "band", "t", "mag", "err")

# The engine's bounds (cpp/engine.h kMaxAbsTime, kMaxAbsMag; tests/lightcurves/test_table.py checks they agree):
# rows beyond them are refused here and in the batch row checks, so none reaches the engine only to be skipped there
MAX_ABS_T = 1e12    # days; a t in milliseconds lies beyond
MAX_ABS_MAG = 1e4

OBJ_ID_NOT_INTEGER = "obj_id must be an integer or a text id"
OBJ_ID_NOT_EXACT = "obj_id must be an exact integer"
UNKNOWN_BAND = "unknown band"
BAND_NOT_IN_MODEL = "band not in the model"
T_OUT_OF_RANGE = "t must be within +-1e12 days"
MAG_OUT_OF_RANGE = "mag must be within +-1e4"
ERR_NOT_POSITIVE = "err must be > 0"


def missing(field: str) -> str:
    return f"{field} is missing"


def not_a_number(field: str) -> str:
    return f"{field} must be a number"


def not_finite(field: str) -> str:
    return f"{field} must be finite"


# Why the batch row checks refuse a row, in the order they test; a row is counted under the first it fails
REJECT_REASONS = (missing("obj_id"), OBJ_ID_NOT_INTEGER, OBJ_ID_NOT_EXACT,
                  missing("band"), UNKNOWN_BAND, BAND_NOT_IN_MODEL,
                  missing("t"), not_a_number("t"), not_finite("t"), T_OUT_OF_RANGE,
                  missing("mag"), not_a_number("mag"), not_finite("mag"), MAG_OUT_OF_RANGE,
                  missing("err"), not_a_number("err"), not_finite("err"), ERR_NOT_POSITIVE)


def describe_row(row: int, obj_id: object = None) -> str:
    """'row 17 (obj_id 4021)'; 'row 17' where the id is unknown."""
    return f"row {row}" if obj_id is None else f"row {row} (obj_id {obj_id})"


def refused_row(row: int, obj_id: object, problem: str, *got: object) -> str:
    """'row 17 (obj_id 4021): err must be > 0, got -0.02' (the value only where one is given)."""
    return f"{describe_row(row, obj_id)}: {problem}" + "".join(f", got {value}" for value in got)
