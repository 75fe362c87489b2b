"""Split clean rows into hash shards of obj_id, so every object lands whole in one shard.

Used by the local batch job (spill shards to disk, then classify one shard at a time in bounded memory), by the
incremental mode (one engine state file per shard) and by the Dask runner (one shard per partition).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mbfast.lightcurves.rows import CleanChunk
from mbfast.lightcurves.fields import FIELDS


def shard_of(obj_id: np.ndarray, n_shards: int) -> np.ndarray:
    """Stable shard index (same in every process and run): splitmix64 finaliser of the obj_id, modulo n_shards."""
    x = np.asarray(obj_id, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(n_shards)).astype(np.int64)


class ShardSpiller:
    """Appends clean rows to one folder of Parquet parts per shard under `directory` (one part per chunk: no
    long-lived writers, whose buffers grow with the number of shards)."""

    SCHEMA = pa.schema(list(zip(FIELDS, (pa.int64(), pa.int8(), pa.float64(), pa.float64(), pa.float64()))))

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
            if chunk.extra is not None:
                extra = chunk.extra.take(pa.array(rows))
                for name in extra.column_names:
                    table = table.append_column(name, extra.column(name))
            part = self.parts.get(shard, 0)
            self.path(shard).mkdir(exist_ok=True)
            pq.write_table(table, self.path(shard) / f"part-{part:06d}.parquet")
            self.parts[shard] = part + 1

    def close(self) -> list[int]:
        """The shards that received rows, in order."""
        return sorted(self.parts)


def read_shard(path: Path) -> CleanChunk:
    table = pq.read_table(path)
    fixed = ShardSpiller.SCHEMA.names
    extra = table.drop_columns(fixed) if table.num_columns > len(fixed) else None
    table = table.select(fixed).cast(ShardSpiller.SCHEMA)
    return CleanChunk(*(table.column(name).to_numpy() for name in fixed), extra=extra)
