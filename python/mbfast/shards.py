"""Split observation chunks into hash shards of obj_id, so every object lands whole in one shard.

Used by the single-machine batch job (spill shards to disk, then classify one shard at a time in bounded memory),
by the incremental mode (one engine state file per shard) and by the Dask path (one shard per partition).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


REJECT_REASONS = ("obj_id missing", "obj_id not an integer", "unknown band", "t not a number", "t not finite",
                  "mag not a number", "mag not finite", "err not a number", "err not finite", "err <= 0")


def shard_of(obj_id: np.ndarray, n_shards: int) -> np.ndarray:
    """Stable shard index (same in every process and run): splitmix64 finaliser of the obj_id, modulo n_shards."""
    x = np.asarray(obj_id, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(n_shards)).astype(np.int64)


@dataclass
class RowChecks:
    """Counts of rows rejected by reason, plus the rejected rows themselves (with the reason) for the report."""

    rows_in: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    rejected_tables: list[pa.Table] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class CleanChunk:
    obj_id: np.ndarray  # int64 (N,)
    band: np.ndarray    # int8 (N,) index into the model's bands
    t: np.ndarray       # float64 (N,) MJD
    mag: np.ndarray     # float64 (N,) AB
    err: np.ndarray     # float64 (N,) mag


def clean_chunk(chunk: pa.Table, bands: tuple[str, ...], checks: RowChecks) -> CleanChunk:
    """Drop and count rows the model cannot use (each with its reason); nothing is dropped silently."""
    n_rows = chunk.num_rows
    checks.rows_in += n_rows
    reason = np.full(n_rows, -1, dtype=np.int64)

    def mark(mask: np.ndarray, name: str) -> None:
        fresh = mask & (reason < 0)
        reason[fresh] = REJECT_REASONS.index(name)
        checks.rejected[name] += int(fresh.sum())

    obj_column = chunk.column("obj_id")
    mark(np.asarray(pc.is_null(obj_column).to_numpy(zero_copy_only=False), dtype=bool), "obj_id missing")
    obj_id, not_integer = _integers(obj_column)
    mark(not_integer, "obj_id not an integer")
    band = _band_codes(chunk.column("band"), bands)
    mark(band < 0, "unknown band")
    values = {}
    for name in ("t", "mag", "err"):
        values[name], not_number = _floats(chunk.column(name))
        mark(not_number, f"{name} not a number")
        mark(~np.isfinite(values[name]), f"{name} not finite")
    with np.errstate(invalid="ignore"):
        mark(values["err"] <= 0, "err <= 0")
    bad = reason >= 0
    if bad.any():
        rejected = chunk.filter(pa.array(bad))
        names = np.array(REJECT_REASONS, dtype=object)[reason[bad]]
        checks.rejected_tables.append(rejected.append_column("reason", pa.array(names.tolist(), pa.string())))
    keep = ~bad
    return CleanChunk(obj_id[keep], band[keep].astype(np.int8), values["t"][keep], values["mag"][keep],
                      values["err"][keep])


def _floats(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing or not a number) and the mask of entries that are not numbers."""
    return _convert(column, pa.float64(), np.nan, float)


def _integers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids (0 where missing or invalid) and the mask of present entries that are not integers: fractional,
    non-finite or out-of-range floats, text that is not an integer. Nothing is truncated silently."""
    if pa.types.is_floating(column.type):
        values = np.asarray(pc.fill_null(column, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2.0**63)
        return np.where(bad, 0, values).astype(np.int64), bad
    return _convert(column, pa.int64(), 0, int)


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


def _band_codes(band: pa.ChunkedArray, bands: tuple[str, ...]) -> np.ndarray:
    """Labels or integer indices -> index into `bands`; -1 for unknown or missing (counted by the caller).
    Labels are matched in Arrow, never as Python strings (a million str objects per chunk fragments the heap)."""
    if pa.types.is_integer(band.type):
        codes = np.asarray(pc.fill_null(band, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        return np.where((codes >= 0) & (codes < len(bands)), codes, -1)
    labels = pc.cast(band, pa.string())
    codes = pc.fill_null(pc.index_in(labels, value_set=pa.array(bands, pa.string())), -1)
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)


class ShardSpiller:
    """Appends clean rows to one folder of Parquet parts per shard under `directory` (one part per chunk: no
    long-lived writers, whose buffers grow with the number of shards)."""

    SCHEMA = pa.schema([("obj_id", pa.int64()), ("band", pa.int8()), ("t", pa.float64()), ("mag", pa.float64()),
                        ("err", pa.float64())])

    def __init__(self, directory: Path, n_shards: int) -> None:
        self.directory = directory
        self.n_shards = n_shards
        self.parts: dict[int, int] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, shard: int) -> Path:
        return self.directory / f"shard-{shard:05d}"

    def add(self, chunk: CleanChunk) -> None:
        shards = shard_of(chunk.obj_id, self.n_shards)
        order = np.argsort(shards, kind="stable")
        bounds = np.searchsorted(shards[order], np.arange(self.n_shards + 1))
        for shard in range(self.n_shards):
            rows = order[bounds[shard]:bounds[shard + 1]]
            if len(rows) == 0:
                continue
            table = pa.table([chunk.obj_id[rows], chunk.band[rows], chunk.t[rows], chunk.mag[rows], chunk.err[rows]],
                             schema=self.SCHEMA)
            part = self.parts.get(shard, 0)
            self.path(shard).mkdir(exist_ok=True)
            pq.write_table(table, self.path(shard) / f"part-{part:06d}.parquet")
            self.parts[shard] = part + 1

    def close(self) -> list[int]:
        """The shards that received rows, in order."""
        return sorted(self.parts)


def read_shard(path: Path) -> CleanChunk:
    table = pq.read_table(path, schema=ShardSpiller.SCHEMA)
    return CleanChunk(*(table.column(name).to_numpy() for name in ("obj_id", "band", "t", "mag", "err")))


def concat(chunks: Iterable[CleanChunk]) -> CleanChunk:
    parts = list(chunks)
    return CleanChunk(*(np.concatenate([getattr(part, name) for part in parts])
                        for name in ("obj_id", "band", "t", "mag", "err")))

