"""Scale batch reclassification out on a Dask cluster.

Rows are repartitioned so that partition k holds exactly the objects of hash shard k (mbfast.jobs.shards.shard_of),
each worker loads the model once per process, and each partition is classified like one shard of mbfast.jobs.local.
Outputs and state files are written under temporary names and renamed, so a worker killed mid-partition leaves
nothing half written; Dask retries the partition and duplicates make a repeated incremental step a no-op.
Rows pass the local path's checks (lightcurves.rows.clean_chunk), and the two paths are tested on the same inputs.
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
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mbfast.engine import Engine
from mbfast.jobs.files import check_output, temporary_name
from mbfast.jobs.local import (BatchSummary, check_forget_after, check_keep, check_state_dir, classify_shard,
                               forget_in_shards, model_for, refuse_if_nothing_to_do, remove_output_leftovers,
                               result_table, shard_state_path, state_shards, write_rejected)
from mbfast.jobs.shards import shard_of
from mbfast.lightcurves import sources
from mbfast.lightcurves.rows import KEEP_PREFIX, NAME_COLUMN, RowChecks, clean_chunk, id_codes, ids_are_names
from mbfast.lightcurves.sources import INTEGER_IDS_KEY, Source, open_source, resolve
from mbfast.lightcurves.surveys import BandMap, band_map
from mbfast.lightcurves.fields import FIELDS


@functools.lru_cache(maxsize=4)
def _engine(model: str | None, precision: str = "fp32") -> Engine:
    """One engine per worker process, model and precision (engines are not picklable; each worker loads its own)."""
    return Engine.load(model, num_threads=1, precision=precision)


def _arrow(frame: pd.DataFrame, integer_ids: bool) -> pa.Table:
    """A partition as the Arrow chunk mbfast.lightcurves.rows.clean_chunk takes (the local path's row checks)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata({INTEGER_IDS_KEY: b"1"} if integer_ids else {})


def _classify_partition(frame: pd.DataFrame, model: str | None, state_dir: str | None, embedding: bool,
                        precision: str, bands: BandMap | None, keep: tuple[str, ...],
                        integer_ids: bool) -> pd.DataFrame:
    engine = _engine(model, precision)
    checks = RowChecks()
    chunk = clean_chunk(_arrow(frame[[*FIELDS, *keep]], integer_ids), bands or engine.bands, checks, keep)
    if len(chunk.obj_id) == 0:
        return _empty_result(engine, embedding, frame, keep, integer_ids)
    state_path = None if state_dir is None else shard_state_path(Path(state_dir), int(frame.index[0]))
    return classify_shard(engine, chunk, BatchSummary(), embedding, state_path, model, 1, precision).to_pandas()


def _empty_result(engine: Engine, embedding: bool, frame: pd.DataFrame, keep: tuple[str, ...],
                  integer_ids: bool) -> pd.DataFrame:
    """The result columns with no rows, typed as a partition's: obj_id as text when the ids are names, kept columns
    as in the input."""
    rows = _arrow(frame[["obj_id", *keep]].iloc[:0], integer_ids)
    per_object = {NAME_COLUMN: pa.array([], pa.string())} if ids_are_names(rows) else {}
    per_object.update({KEEP_PREFIX + name: rows.column(name) for name in keep})
    return result_table(engine.predict(np.empty(0, np.int64)), engine, embedding,
                        pa.table(per_object) if per_object else None).to_pandas()


def classify(frame, model: str | os.PathLike[str] | None = None, n_shards: int | None = None,  # type: ignore[no-untyped-def]
             state_dir: str | os.PathLike[str] | None = None, embedding: bool = False, precision: str = "fp32",
             survey: str | None = None, keep: tuple[str, ...] = (), integer_ids: bool = False):
    """Classify a Dask DataFrame of observation rows (obj_id, band, t, mag, err) -> Dask DataFrame, one row per object.

    Every object is classified whole in one partition (partition k = hash shard k of obj_id). With `state_dir`,
    partition k steps its new rows into the engine state file shard-k (incremental nightly mode). Rows pass the
    local path's checks (lightcurves.rows.clean_chunk; rejected ones are left out here: classify_with_scheduler counts
    and lists them); `survey`, `keep` and text obj_ids as in mbfast.jobs.local.classify_files. `integer_ids`: the ids
    are integers even where a partition holds them as text (a CSV read as text).
    """
    n_shards = n_shards or frame.npartitions
    model_path = None if model is None else os.fspath(model)
    engine = _engine(model_path)
    bands = band_map(engine.bands, survey, engine.config.survey)
    if state_dir is not None:
        n_shards = state_shards(Path(state_dir), n_shards)

    def shard_column(ids: pd.Series) -> pd.Series:
        codes = id_codes(_arrow(ids.to_frame("obj_id"), integer_ids))[0]
        return pd.Series(shard_of(codes, n_shards), index=ids.index)

    keyed = frame.assign(_shard=frame["obj_id"].map_partitions(shard_column, meta=("_shard", "int64")))
    # divisions 0, 1, ..., n-1, n-1: partition k holds index value k only
    by_shard = keyed.set_index("_shard", divisions=list(range(n_shards)) + [n_shards - 1])
    meta = _empty_result(engine, embedding, frame._meta, keep, integer_ids)
    return by_shard.map_partitions(_classify_partition, model_path, None if state_dir is None else os.fspath(state_dir),
                                   embedding, precision, bands, keep, integer_ids, meta=meta)


def classify_with_scheduler(input_spec: str | os.PathLike[str], output: str | os.PathLike[str], scheduler: str,
                            model: str | os.PathLike[str] | None = None, columns: dict[str, str] | None = None,
                            state_dir: str | os.PathLike[str] | None = None, n_shards: int | None = None,
                            embedding: bool = False, precision: str = "fp32", forget_after: float | None = None,
                            survey: str | None = None, keep: tuple[str, ...] = (),
                            strict: bool = False) -> BatchSummary:
    """`mbfast classify --scheduler ADDRESS|local:N`: read with Dask, classify, write a Parquet folder atomically.

    The rows pass the local path's checks: rejected ones are counted and written, with their reason and row number,
    to `<output>.rejected.parquet`, and `strict` and the nothing-classified cases end as they do there
    (NothingDone). `forget_after` as in mbfast.jobs.local.classify_files: applied to the saved shard states once the
    workers are done."""
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    check_forget_after(forget_after, state_dir)
    started = time.perf_counter()
    source = open_source(input_spec, columns)
    output = check_output(output, source.paths, folder=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_output_leftovers(output)
    if state_dir is not None:
        check_state_dir(Path(state_dir))
    model = model_for(model, survey)
    engine = Engine.load(model, num_threads=1)
    bands = band_map(engine.bands, survey, engine.config.survey)
    check_keep(keep, engine, embedding)
    frame, integer_ids = _read(source, keep)
    if scheduler.startswith("local:"):
        cluster = LocalCluster(n_workers=int(scheduler.split(":", 1)[1]), threads_per_worker=1, processes=True)
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler)
    try:
        parts = dask.compute(*[dask.delayed(_check_partition)(part, bands, integer_ids)
                               for part in frame.to_delayed()])
        checks = RowChecks()
        tables = []
        newest = max((part[3] for part in parts), default=-np.inf)  # forget_after counts back from it
        for rows_in, rejected, table, _ in parts:  # partition order = input order: row numbers as the local path's
            checks.rows_in += rows_in
            for reason, count in rejected.items():
                checks.rejected[reason] += count
            if table is not None:
                tables.append(table.set_column(table.column_names.index("row"), "row",
                                               pc.add(table.column("row"), checks.rows_in - rows_in)))
        checks.rejected_tables = tables
        rejected_path = output.with_name(output.name + ".rejected.parquet")
        write_rejected(checks, rejected_path)
        refuse_if_nothing_to_do(checks, [0] if checks.rows_rejected < checks.rows_in else [], strict,
                                 rejected_path)
        results = classify(frame, model, n_shards=n_shards or max(2, frame.npartitions), state_dir=state_dir,
                           embedding=embedding, precision=precision, survey=survey, keep=keep,
                           integer_ids=integer_ids)
        temp = temporary_name(output)
        shutil.rmtree(temp, ignore_errors=True)
        results.to_parquet(temp, write_index=False)
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(temp, output)
        written = dd.read_parquet(os.fspath(output), columns=[f"n_obs_{band}" for band in engine.bands]).compute()
        applied = int(written.to_numpy().sum())
        summary = BatchSummary(objects=len(written), observations=checks.rows_in, applied=applied)
        summary.rejected = {reason: count for reason, count in checks.rejected.items() if count}
        duplicates = checks.rows_in - checks.rows_rejected - applied
        summary.skipped = {"duplicate": duplicates} if state_dir is None else {"duplicate or late": duplicates}
        if forget_after is not None:  # check_forget_after: a state folder is given
            state = Path(state_dir)  # type: ignore[arg-type]
            summary.forgotten = forget_in_shards(state, state_shards(state, None), set(), newest - forget_after,
                                                 model, precision)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _read(source: Source, keep: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The input as a Dask DataFrame with the canonical columns and `keep`, and whether its ids are integers held as
    text. CSV number columns are read as text, so one bad entry rejects its row (as in lightcurves.sources), not the job;
    the first block of the first file says whether the ids are integers, as the local reader decides."""
    import dask.dataframe as dd

    paths = [os.fspath(path) for path in source.paths]
    if source.format == "csv":
        block = pa_csv.ReadOptions(block_size=sources.CSV_BLOCK_BYTES)
        first = pa_csv.open_csv(source.paths[0], read_options=block)
        names = first.schema.names
        picked = {canonical: resolve(names, canonical, source.columns, source.paths[0]) for canonical in FIELDS}
        integer_ids = pa.types.is_integer(first.schema.field(picked["obj_id"]).type)
        text = {picked[name]: "object" for name in ("obj_id", "t", "mag", "err")}
        frame = dd.read_csv(paths, dtype=text, keep_default_na=False, na_values=["", "NA", "NaN", "nan", "null"])
    else:
        frame = dd.read_parquet(paths)
        names = list(frame.columns)
        picked = {canonical: resolve(names, canonical, source.columns, source.paths[0]) for canonical in FIELDS}
        integer_ids = False
    missing = [name for name in keep if name not in names]
    if missing:
        raise ValueError(f"{source.paths[0]}: no column {missing[0]!r} to keep (--keep); columns are {names}")
    frame = frame[[*picked.values(), *keep]]
    frame.columns = [*FIELDS, *keep]
    return frame, integer_ids


def _check_partition(frame: pd.DataFrame, bands: BandMap, integer_ids: bool
                     ) -> tuple[int, dict[str, int], pa.Table | None, float]:
    """One partition's rows read, rows rejected by reason, the rejected rows (row numbers from the partition's
    start) and its newest clean observation time."""
    checks = RowChecks()
    clean = clean_chunk(_arrow(frame[list(FIELDS)], integer_ids), bands, checks)
    tables = checks.rejected_tables
    newest = float(clean.t.max()) if len(clean.t) else -np.inf
    return checks.rows_in, checks.rejected, pa.concat_tables(tables) if tables else None, newest


__all__ = ["classify", "classify_with_scheduler"]
