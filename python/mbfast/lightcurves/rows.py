"""Row checks: observation rows (obj_id, band, t, mag, err) -> clean int64/int8/float64 columns, every rejected row
counted by reason and kept, with its row number, for the report.

The batch jobs (local and Dask) check their rows here, and so do LightCurves.from_arrow and Engine.classify on rows
(mbfast.lightcurves.table.curves_from_arrow).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mbfast.lightcurves import surveys
from mbfast.lightcurves.fields import (BAND_NOT_IN_MODEL, ERR_NOT_POSITIVE, MAG_OUT_OF_RANGE, MAX_ABS_MAG,
                                      MAX_ABS_T, OBJ_ID_NOT_EXACT, OBJ_ID_NOT_INTEGER, REJECT_REASONS, T_OUT_OF_RANGE,
                                      UNKNOWN_BAND, missing, not_a_number, not_finite, refused_row)
from mbfast.lightcurves.object_ids import object_codes
from mbfast.lightcurves.sources import INTEGER_IDS_KEY
from mbfast.lightcurves.surveys import BandMap
NAME_COLUMN = "obj_name"   # spilled beside the int64 obj_id when the input's ids are names (text)
KEEP_PREFIX = "keep:"      # spilled per-row columns passed through to the output (--keep)


@dataclass
class RowChecks:
    """Counts of rows rejected by reason, plus the rejected rows themselves (with the reason and their row number
    in input order) for the report."""

    rows_in: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    rejected_tables: list[pa.Table] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def first_rejected(self) -> str:
        """'row 12 (obj_id 7): unknown band' for the first rejected row, for errors."""
        first = self.rejected_tables[0].slice(0, 1).to_pylist()[0]
        return refused_row(first["row"], first["obj_id"], first["reason"])


@dataclass(frozen=True)
class CleanChunk:
    obj_id: np.ndarray  # int64 (N,) the input's integer id, or the code of its text id (object_ids.object_codes)
    band: np.ndarray    # int8 (N,) index into the model's bands
    t: np.ndarray       # float64 (N,) MJD
    mag: np.ndarray     # float64 (N,) AB
    err: np.ndarray     # float64 (N,) mag
    extra: pa.Table | None = None  # (N,) rows: NAME_COLUMN (text ids as given) and KEEP_PREFIX columns, if any

    def __len__(self) -> int:
        return len(self.obj_id)


def clean_chunk(chunk: pa.Table, bands: tuple[str, ...] | BandMap, checks: RowChecks,
                keep: tuple[str, ...] = ()) -> CleanChunk:
    """Drop and count rows the model cannot use (each with its reason); nothing is dropped silently.

    The one set of row checks of the batch paths (local and Dask), including the engine's own bounds (|t| <= 1e12,
    |mag| <= 1e4), so no row reaches the engine to be skipped there. `bands` maps the band column (a BandMap from
    surveys.band_map, or the model's labels). `keep` names columns of `chunk` carried along per row.
    """
    band_map = bands if isinstance(bands, BandMap) else surveys.band_map(tuple(bands))
    n_rows = chunk.num_rows
    first_row = checks.rows_in
    checks.rows_in += n_rows
    reason = np.full(n_rows, -1, dtype=np.int64)

    def mark(mask: np.ndarray, name: str) -> None:
        fresh = mask & (reason < 0)
        reason[fresh] = REJECT_REASONS.index(name)
        checks.rejected[name] += int(fresh.sum())

    obj_column = chunk.column("obj_id")
    mark(np.asarray(pc.is_null(obj_column).to_numpy(zero_copy_only=False), dtype=bool), missing("obj_id"))
    names = obj_column.combine_chunks() if ids_are_names(chunk) else None
    obj_id, not_integer, not_exact = id_codes(chunk)
    mark(not_integer, OBJ_ID_NOT_INTEGER)
    mark(not_exact, OBJ_ID_NOT_EXACT)
    band_column = chunk.column("band")
    mark(np.asarray(pc.is_null(band_column).to_numpy(zero_copy_only=False), dtype=bool), missing("band"))
    band, absent = _band_codes(band_column, band_map)
    mark(absent, BAND_NOT_IN_MODEL)
    mark(band < 0, UNKNOWN_BAND)
    values = {}
    for name in ("t", "mag", "err"):  # a missing magnitude is how ZTF light curves hold a non-detection
        mark(np.asarray(pc.is_null(chunk.column(name)).to_numpy(zero_copy_only=False), dtype=bool), missing(name))
        values[name], not_number = _floats(chunk.column(name))
        mark(not_number, not_a_number(name))
        mark(~np.isfinite(values[name]), not_finite(name))
    with np.errstate(invalid="ignore"):
        mark(np.abs(values["t"]) > MAX_ABS_T, T_OUT_OF_RANGE)
        mark(np.abs(values["mag"]) > MAX_ABS_MAG, MAG_OUT_OF_RANGE)
        mark(values["err"] <= 0, ERR_NOT_POSITIVE)
    bad = reason >= 0
    if bad.any():
        rejected = chunk.filter(pa.array(bad))
        reasons = np.array(REJECT_REASONS, dtype=object)[reason[bad]]
        rows = (first_row + np.flatnonzero(bad)).astype(np.int64)
        rejected = rejected.append_column("reason", pa.array(reasons.tolist(), pa.string()))
        checks.rejected_tables.append(rejected.append_column("row", pa.array(rows, pa.int64())))
    kept = ~bad
    extra_columns = {}
    if names is not None:
        extra_columns[NAME_COLUMN] = names
    for name in keep:
        extra_columns[KEEP_PREFIX + name] = chunk.column(name)
    extra = pa.table(extra_columns).filter(pa.array(kept)) if extra_columns else None
    return CleanChunk(obj_id[kept], band[kept].astype(np.int8), values["t"][kept], values["mag"][kept],
                      values["err"][kept], extra)


def ids_are_names(chunk: pa.Table) -> bool:
    """Text ids are object names, unless the file's ids are integers and this block was only re-read as text."""
    kind = chunk.schema.field("obj_id").type
    integer_ids = (chunk.schema.metadata or {}).get(INTEGER_IDS_KEY) == b"1"
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and not integer_ids


def id_codes(chunk: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 (N,) the obj_id of each row (text ids: their object_codes; 0 where missing or invalid), and the masks
    of entries that are not integers and of float entries beyond 2**53. What decides the shard of a row."""
    column = chunk.column("obj_id")
    if ids_are_names(chunk):
        no = np.zeros(len(column), dtype=bool)
        return object_codes(column), no, no
    return _integers(column)


def _floats(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing or not a number) and the mask of entries that are not numbers."""
    return _convert(column, pa.float64(), np.nan, float)


def _integers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 ids (0 where missing or invalid), the mask of present entries that are not integers (fractional,
    non-finite or out-of-range floats, text that is not an integer) and the mask of float entries beyond 2**53,
    where a float64 no longer holds every integer (pandas' int64-with-nulls ids: 169645854020337671 reads back as
    ...664). Nothing is truncated or rounded silently."""
    if pa.types.is_floating(column.type):
        values = np.asarray(pc.fill_null(column, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            not_integer = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2.0**63)
            not_exact = ~not_integer & (np.abs(values) > 2.0**53)
        return np.where(not_integer | not_exact, 0, values).astype(np.int64), not_integer, not_exact
    if pa.types.is_boolean(column.type):
        return np.zeros(len(column), np.int64), np.asarray(pc.is_valid(column)), np.zeros(len(column), bool)
    values, bad = _convert(column, pa.int64(), 0, int)
    return values, bad, np.zeros(len(column), dtype=bool)


def _convert(column: pa.ChunkedArray, kind: pa.DataType, fill: float, parse: Callable[[str], float]
             ) -> tuple[np.ndarray, np.ndarray]:
    """`column` as `kind` (missing entries = `fill`) and the mask of entries that do not convert. Arrow converts the
    whole column when it can; text with an entry Arrow refuses (a CSV column holding something other than numbers)
    is parsed entry by entry, so one bad entry rejects one row, not the file."""
    dtype = np.float64 if pa.types.is_floating(kind) else np.int64
    try:
        values = pc.fill_null(pc.cast(column, kind), fill).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=dtype), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        pass
    values = np.full(len(column), fill, dtype=dtype)
    bad = np.zeros(len(column), dtype=bool)
    for row, text in enumerate(pc.cast(column, pa.string()).to_pylist()):
        if text is None:
            continue
        try:
            values[row] = parse(text)
        except (ValueError, OverflowError):
            bad[row] = True
    return values, bad


def _band_codes(band: pa.ChunkedArray, band_map: BandMap) -> tuple[np.ndarray, np.ndarray]:
    """Band codes or labels -> index into the target bands (-1 where unknown or missing) and the mask of rows whose
    band the survey has but the model lacks. Labels are matched in Arrow, never as Python strings (a million str
    objects per chunk fragments the heap). An integer column needs a survey (band_map.integers)."""
    if pa.types.is_integer(band.type):
        codes = np.asarray(pc.fill_null(band, -(2**62)).to_numpy(zero_copy_only=False), dtype=np.int64)
        if not band_map.integers:
            present = codes[codes != -(2**62)]
            raise ValueError(band_map.integer_error(int(present[0]) if len(present) else 0))
        keys = np.array(sorted(band_map.integers), dtype=np.int64)
        targets = np.array([band_map.integers[key] for key in keys], dtype=np.int64)
        found = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
        index = np.where(keys[found] == codes, targets[found], -1)
        absent_keys = np.array(sorted(key for key in band_map.absent if isinstance(key, int)), dtype=np.int64)
        return index, np.isin(codes, absent_keys)
    if pa.types.is_dictionary(band.type):
        band = pc.cast(band, band.type.value_type)
    if not (pa.types.is_string(band.type) or pa.types.is_large_string(band.type)):
        raise ValueError(f"the band column holds {band.type}; expected band labels (text) or survey codes (integers)")
    labels = pa.array(list(band_map.labels), pa.string())
    targets = np.array(list(band_map.labels.values()) + [-1], dtype=np.int64)
    position = np.asarray(pc.fill_null(pc.index_in(band, value_set=labels), -1).to_numpy(zero_copy_only=False),
                          dtype=np.int64)
    absent = pa.array(sorted(str(key) for key in band_map.absent), pa.string())
    is_absent = np.asarray(pc.fill_null(pc.is_in(band, value_set=absent), False).to_numpy(zero_copy_only=False),
                           dtype=bool)
    return targets[position], is_absent
