"""Scale batch reclassification out on a Dask cluster.

Rows are repartitioned so that partition k holds exactly the objects of hash shard k (mbfast.shards.shard_of),
each worker loads the model once per process, and each partition is classified like one shard of mbfast.batch.
Outputs and state files are written under temporary names and renamed, so a worker killed mid-partition leaves
nothing half written; Dask retries the partition and duplicates make a repeated incremental step a no-op.
"""
from __future__ import annotations

import functools
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mbfast.batch import (BatchSummary, _classify_chunk, _state_shards, _step_chunk, check_forget_after,
                          forget_in_shards, result_table, shard_state_path)
from mbfast.engine import Engine
from mbfast.shards import RowChecks, clean_chunk, shard_of
from mbfast.sources import CANONICAL, open_source, resolve


@functools.lru_cache(maxsize=4)
def _engine(model: str | None, precision: str = "fp32") -> Engine:
    """One engine per worker process, model and precision (engines are not picklable; each worker loads its own)."""
    return Engine.load(model, num_threads=1, precision=precision)


def _classify_partition(frame: pd.DataFrame, model: str | None, state_dir: str | None,
                        embedding: bool, precision: str) -> pd.DataFrame:
    engine = _engine(model, precision)
    checks = RowChecks()
    chunk = clean_chunk(pa.Table.from_pandas(frame[list(CANONICAL)], preserve_index=False), engine.bands, checks)
    summary = BatchSummary()
    if len(chunk.obj_id) == 0:
        prediction = engine.predict(np.empty(0, np.int64))
    elif state_dir is None:
        prediction = _classify_chunk(engine, chunk, summary)
    else:
        shard = int(frame.index[0])
        state_path = shard_state_path(Path(state_dir), shard)
        stateful = Engine.load(model, num_threads=1, precision=precision,
                               state=state_path if state_path.exists() else None)
        prediction = _step_chunk(stateful, chunk, summary)
        stateful.save_state(state_path)
    return result_table(prediction, engine, embedding).to_pandas()


def classify(frame, model: str | os.PathLike[str] | None = None, n_shards: int | None = None,  # type: ignore[no-untyped-def]
             state_dir: str | os.PathLike[str] | None = None, embedding: bool = False, precision: str = "fp32"):
    """Classify a Dask DataFrame of observation rows (obj_id, band, t, mag, err) -> Dask DataFrame, one row per object.

    Every object is classified whole in one partition (partition k = hash shard k of obj_id). With `state_dir`,
    partition k steps its new rows into the engine state file shard-k (incremental nightly mode).
    """
    n_shards = n_shards or frame.npartitions
    model_path = None if model is None else os.fspath(model)
    if state_dir is not None:
        n_shards = _state_shards(Path(state_dir), n_shards)
    keyed = frame.assign(_shard=frame["obj_id"].map_partitions(lambda ids: pd.Series(
        shard_of(ids.to_numpy(np.int64), n_shards), index=ids.index), meta=("_shard", "int64")))
    # divisions 0, 1, ..., n-1, n-1: partition k holds index value k only
    by_shard = keyed.set_index("_shard", divisions=list(range(n_shards)) + [n_shards - 1])
    meta = result_table(_engine(model_path).predict(np.empty(0, np.int64)), _engine(model_path),
                        embedding).to_pandas()
    return by_shard.map_partitions(_classify_partition, model_path, None if state_dir is None else os.fspath(state_dir),
                                   embedding, precision, meta=meta)


def classify_with_scheduler(input_spec: str | os.PathLike[str], output: str | os.PathLike[str], scheduler: str,
                            model: str | os.PathLike[str] | None = None, columns: dict[str, str] | None = None,
                            state_dir: str | os.PathLike[str] | None = None, n_shards: int | None = None,
                            embedding: bool = False, precision: str = "fp32",
                            forget_after: float | None = None) -> BatchSummary:
    """`mbfast classify --scheduler ADDRESS|local:N`: read with Dask, classify, write a Parquet folder atomically.
    `forget_after` as in mbfast.batch.classify_files: applied to the saved shard states once the workers are done."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    check_forget_after(forget_after, state_dir)
    started = time.perf_counter()
    source = open_source(input_spec, columns)
    paths = [os.fspath(path) for path in source.paths]
    frame = dd.read_csv(paths) if source.format == "csv" else dd.read_parquet(paths)
    names = list(frame.columns)
    frame = frame[[resolve(names, canonical, source.columns, source.paths[0]) for canonical in CANONICAL]]
    frame.columns = list(CANONICAL)
    if scheduler.startswith("local:"):
        cluster = LocalCluster(n_workers=int(scheduler.split(":", 1)[1]), threads_per_worker=1, processes=True)
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler)
    try:
        engine = Engine.load(model, num_threads=1)
        checked = frame.map_partitions(_rejections, engine.bands, meta=pd.Series(dtype="float64")).compute()
        newest = float(checked.loc[["newest_t"]].max())
        rejected = checked.drop("newest_t").groupby(level=0).sum().astype("int64")
        results = classify(frame, model, n_shards=n_shards or max(2, frame.npartitions), state_dir=state_dir,
                           embedding=embedding, precision=precision)
        output = Path(output)
        temp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        shutil.rmtree(temp, ignore_errors=True)
        results.to_parquet(temp, write_index=False)
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(temp, output)
        written = dd.read_parquet(os.fspath(output), columns=[f"n_obs_{band}" for band in engine.bands]).compute()
        rows_in = int(rejected.get("rows_in", 0))
        applied = int(written.to_numpy().sum())
        summary = BatchSummary(objects=len(written), observations=rows_in, applied=applied)
        summary.rejected = {reason: int(count) for reason, count in rejected.items()
                            if reason != "rows_in" and count}
        duplicates = rows_in - sum(summary.rejected.values()) - applied
        summary.skipped = {"duplicate": duplicates} if state_dir is None else {"duplicate or late": duplicates}
        if forget_after is not None:  # check_forget_after: a state folder is given
            state = Path(state_dir)  # type: ignore[arg-type]
            summary.forgotten = forget_in_shards(state, _state_shards(state, None), set(), newest - forget_after,
                                                 model, precision)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _rejections(frame: pd.DataFrame, bands: tuple[str, ...]) -> pd.Series:
    """One partition's rows read, rows rejected by reason, and its newest clean observation time."""
    checks = RowChecks()
    clean = clean_chunk(pa.Table.from_pandas(frame, preserve_index=False), bands, checks)
    newest = float(clean.t.max()) if len(clean.t) else -np.inf
    return pd.Series({"rows_in": checks.rows_in, **checks.rejected, "newest_t": newest}, dtype="float64")


__all__ = ["classify", "classify_with_scheduler"]
