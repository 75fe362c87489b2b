"""Nightly batch reclassification: whole light curves from Parquet/CSV in, one row of scores per object out.

Memory stays bounded whatever the input size: rows are read in chunks and spilled into hash shards of obj_id
(jobs.shards), then each shard is classified on its own. With `state_dir` the job is incremental: each shard keeps
an engine state file, only the new observations are stepped, and re-running the same night changes nothing
(repeats are duplicates). Outputs are written to a temporary name and renamed, so a killed job leaves no half file.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from mbfast import models
from mbfast.engine import Engine, Prediction, Status
from mbfast.exit_codes import NothingDone
from mbfast.jobs.files import check_output, remove_leftovers, temporary_name
from mbfast.jobs.shards import ShardSpiller, read_shard
from mbfast.lightcurves.rows import KEEP_PREFIX, NAME_COLUMN, CleanChunk, RowChecks, clean_chunk
from mbfast.lightcurves.sources import iter_chunks, open_source
from mbfast.lightcurves.surveys import band_map
from mbfast.lightcurves.table import from_arrays

DEFAULT_SHARD_ROWS = 4_000_000   # about 150 MB of observations per shard in memory
DEFAULT_STATE_SHARDS = 16
DEFAULT_STEP_ROWS = 100_000      # rows per Engine.step call in --state mode (~440 B each while stepped)
MANIFEST = "manifest.json"
SPILL_PREFIX = ".mbfast-shards-"


@dataclass
class BatchSummary:
    objects: int = 0
    observations: int = 0          # rows read
    applied: int = 0               # observations that entered the model
    rejected: dict[str, int] = field(default_factory=dict)  # by reason, before the model
    skipped: dict[str, int] = field(default_factory=dict)   # by engine status (duplicate, late)
    forgotten: int = 0             # objects dropped from the state (forget_after)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.objects / self.seconds if self.seconds > 0 else float("nan")
        out = [f"objects: {self.objects:,}  observations read: {self.observations:,}  applied: {self.applied:,}  "
               f"time: {self.seconds:.1f} s  ({rate:,.0f} objects/s)"]
        out += [f"rejected ({reason}): {count:,}" for reason, count in self.rejected.items() if count]
        out += [f"skipped ({reason}): {count:,}" for reason, count in self.skipped.items() if count]
        if self.forgotten:
            out.append(f"forgotten (not observed recently): {self.forgotten:,} objects")
        return out


def result_table(prediction: Prediction, engine: Engine, embedding: bool, per_object: pa.Table | None = None
                 ) -> pa.Table:
    """obj_id, n_obs per band, prob_<class> per class, predicted class, regression targets [, embedding], then the
    kept columns. obj_id is text when the input's ids were (`per_object` holds them, one row per object)."""
    columns: dict[str, pa.Array] = {"obj_id": pa.array(prediction.obj_id, pa.int64())}
    if per_object is not None and NAME_COLUMN in per_object.column_names:
        columns["obj_id"] = per_object.column(NAME_COLUMN)
    for index, band in enumerate(engine.bands):
        columns[f"n_obs_{band}"] = pa.array(prediction.n_obs[:, index], pa.int32())
    for index, name in enumerate(engine.class_names):
        columns[f"prob_{name}"] = pa.array(prediction.probs[:, index], pa.float32())
    names = np.array(engine.class_names + ("",), dtype=object)
    columns["class"] = pa.array(names[prediction.class_index].tolist(), pa.string())
    for index, target in enumerate(engine.config.regression_targets):
        columns[target.name] = pa.array(prediction.regression[:, index], pa.float32())
    if embedding:
        width = prediction.embedding.shape[1]
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(
            pa.array(prediction.embedding.reshape(-1), pa.float32()), width)
    for name in [] if per_object is None else per_object.column_names:
        if name.startswith(KEEP_PREFIX):
            columns[name[len(KEEP_PREFIX):]] = per_object.column(name)
    return pa.table(columns)


def per_object_values(chunk: CleanChunk, obj_ids: np.ndarray) -> pa.Table | None:
    """One row per object of `obj_ids` (all present in `chunk`) from `chunk.extra`: the values on the object's newest
    row. Two text ids sharing a code (a hash collision) are refused."""
    if chunk.extra is None:
        return None
    order = np.lexsort((chunk.t, chunk.obj_id))
    ids = chunk.obj_id[order]
    last = np.flatnonzero(np.append(ids[1:] != ids[:-1], True))  # each object's newest row, in sorted order
    if NAME_COLUMN in chunk.extra.column_names:
        names = chunk.extra.column(NAME_COLUMN).take(pa.array(order))
        object_of_row = np.searchsorted(ids[last], ids)
        clash = np.flatnonzero(np.asarray(pc.not_equal(names, names.take(pa.array(last[object_of_row]))).to_numpy(
            zero_copy_only=False), dtype=bool))
        if len(clash):
            row = int(clash[0])
            raise ValueError(f"obj_id {names[row].as_py()!r} and {names[int(last[object_of_row[row]])].as_py()!r} "
                             f"have the same code {ids[row]}; rename one")
    rows = order[last[np.searchsorted(ids[last], obj_ids)]]
    return chunk.extra.take(pa.array(rows))


def classify_shard(engine: Engine, chunk: CleanChunk, summary: BatchSummary, embedding: bool = False,
                   state_path: Path | None = None, model: str | os.PathLike[str] | None = None,
                   num_threads: int | None = None, precision: str = "fp32", step_rows: int = DEFAULT_STEP_ROWS,
                   cutoff: float | None = None) -> pa.Table:
    """One shard's clean rows -> its result table (result_table), the step that the local and Dask runners share.

    Without `state_path` the rows are whole light curves classified by `engine`. With it the shard's state file is
    loaded (the model `model` at `precision`), the new rows stepped in time order, objects not observed since
    `cutoff` forgotten, and the file rewritten only when something changed (a rerun of a finished night writes
    nothing). Counts go to `summary`.
    """
    if state_path is None:
        prediction = _classify_chunk(engine, chunk, summary)
    else:
        shard_engine = Engine.load(model, num_threads=num_threads, precision=precision,
                                   state=state_path if state_path.exists() else None)
        prediction, applied = _step_chunk(shard_engine, chunk, summary, step_rows)
        forgotten = shard_engine.forget_before(cutoff) if cutoff is not None else 0
        summary.forgotten += forgotten
        if applied or forgotten:
            shard_engine.save_state(state_path)
    return result_table(prediction, engine, embedding, per_object_values(chunk, prediction.obj_id))


def _classify_chunk(engine: Engine, chunk: CleanChunk, summary: BatchSummary) -> Prediction:
    curves = from_arrays(chunk.obj_id, chunk.band, chunk.t, chunk.mag, chunk.err, engine.bands)
    prediction = engine.classify(curves)
    applied = int(prediction.n_obs.sum())
    summary.applied += applied
    summary.skipped["duplicate"] = summary.skipped.get("duplicate", 0) + len(curves) - applied
    return prediction


def _step_chunk(engine: Engine, chunk: CleanChunk, summary: BatchSummary,
                step_rows: int = DEFAULT_STEP_ROWS) -> tuple[Prediction, int]:
    """Incremental: step the new rows in time order, `step_rows` at a time (an object's rows stay in order across
    calls, so the result equals one call); returns the objects they touched and how many rows were applied."""
    order = np.lexsort((chunk.band, chunk.t, chunk.obj_id))
    counts = np.zeros(len(Status), dtype=np.int64)
    for start in range(0, len(order), step_rows):
        rows = order[start:start + step_rows]
        result = engine.step(chunk.obj_id[rows], chunk.band[rows], chunk.t[rows], chunk.mag[rows], chunk.err[rows],
                             errors="skip", outputs=())
        counts += np.bincount(result.status, minlength=len(Status))
    applied = int(counts[Status.PREDICTED] + counts[Status.WARMING_UP])
    summary.applied += applied
    for status in (Status.DUPLICATE, Status.LATE, Status.INVALID):
        name = status.name.lower()
        summary.skipped[name] = summary.skipped.get(name, 0) + int(counts[status])
    return engine.predict(np.unique(chunk.obj_id)), applied


def shard_state_path(state_dir: Path, shard: int) -> Path:
    return state_dir / f"shard-{shard:05d}.state"


def model_for(model: str | os.PathLike[str] | None, survey: str | None) -> str | os.PathLike[str] | None:
    """The model to use: `model`, else the shipped model for `survey` when this install has it (as mbfast stream
    picks one), else None (the default)."""
    if model is not None or survey is None:
        return model
    name = models.for_survey(survey)
    return name if name is not None and models.shipped_path(name).exists() else None


def check_forget_after(forget_after: float | None, state_dir: str | os.PathLike[str] | None) -> None:
    if forget_after is not None and (state_dir is None or not (forget_after >= 0 and math.isfinite(forget_after))):
        raise ValueError(f"forget_after (--forget-after) needs a state folder (--state, the incremental mode) and "
                         f"a finite number of days >= 0; got {forget_after} days, state folder {state_dir}")


def remove_output_leftovers(output: Path) -> None:
    """Spill folders and temporary outputs that killed runs left beside `output` (their process no longer runs)."""
    remove_leftovers(output.parent, [re.escape(SPILL_PREFIX) + r"(?P<pid>\d+)-.*",
                                     r"\." + re.escape(output.name) + r"\.(?P<pid>\d+)\.tmp"])


def check_state_dir(state_dir: Path) -> None:
    """A --state folder must be a folder this process can write (or one it can create), checked before any work;
    leftovers of killed save_state calls (`NAME.state.tmp-PID-N`) are removed."""
    if state_dir.exists() and not state_dir.is_dir():
        raise ValueError(f"--state {state_dir} is a file; give a folder")
    existing = next((p for p in (state_dir, *state_dir.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--state {state_dir}: cannot write in {existing}")
    remove_leftovers(state_dir, [r"shard-\d+\.state\.tmp-(?P<pid>\d+)-\d+"])


def forget_in_shards(state_dir: Path, n_shards: int, skip: set[int], cutoff: float,
                     model: str | os.PathLike[str] | None, precision: str) -> int:
    """Engine.forget_before(cutoff) in the saved state of every shard outside `skip`; returns objects dropped."""
    forgotten = 0
    for shard in range(n_shards):
        state_path = shard_state_path(state_dir, shard)
        if shard in skip or not state_path.exists():
            continue
        engine = Engine.load(model, num_threads=1, precision=precision, state=state_path)
        dropped = engine.forget_before(cutoff)
        if dropped:
            engine.save_state(state_path)
        forgotten += dropped
    return forgotten


def state_shards(state_dir: Path, requested: int | None) -> int:
    manifest = state_dir / MANIFEST
    if manifest.exists():
        try:
            stored = int(json.loads(manifest.read_text())["n_shards"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{manifest} is not a manifest mbfast wrote ({error!r}); restore it or start a new "
                             f"--state folder") from None
        if requested is not None and requested != stored:
            raise ValueError(f"{state_dir} was made with {stored} shards; got --shards {requested}")
        return stored
    if requested is not None and requested < 1:
        raise ValueError(f"shards must be >= 1, got {requested}")
    state_dir.mkdir(parents=True, exist_ok=True)
    n_shards = requested or DEFAULT_STATE_SHARDS
    manifest.write_text(json.dumps({"n_shards": n_shards}))
    return n_shards


def classify_files(input_spec: str | Path, output: str | Path, model: str | Path | None = None,
                   columns: dict[str, str] | None = None, state_dir: str | Path | None = None,
                   n_shards: int | None = None, shard_rows: int = DEFAULT_SHARD_ROWS, chunk_rows: int = 1_000_000,
                   embedding: bool = False, num_threads: int | None = None, progress: bool = True,
                   precision: str = "fp32", forget_after: float | None = None, survey: str | None = None,
                   keep: tuple[str, ...] = (), strict: bool = False,
                   step_rows: int = DEFAULT_STEP_ROWS) -> BatchSummary:
    """Classify every object of `input_spec` (file, directory or glob) and write one Parquet row per object.

    `survey` names whose band codes the input holds (ZTF fid 1/2/3, ...; surveys.band_map); text obj_ids are
    written back as they came. `keep` names input columns passed through per object (the value on the object's
    newest row). `precision` is Engine.load's ("fp32", "bf16" or "int8"; docs/engine.md). `forget_after` (days,
    incremental mode only) then drops from every shard's state the objects not observed for that long before the
    input's newest observation (Engine.forget_before), so the state of years of nights stays bounded.
    Rows the model cannot use are counted by reason and written to `<output>.rejected.parquet` with their row
    number; nothing is dropped silently. Raises NothingDone (exit 3) when no object could be classified, when
    every row was rejected or, with `strict`, when any row was (then nothing is written but the rejected rows).
    Returns the summary that the CLI prints.
    """
    started = time.perf_counter()
    check_forget_after(forget_after, state_dir)
    if n_shards is not None and n_shards < 1:
        raise ValueError(f"shards must be >= 1, got {n_shards}")
    source = open_source(input_spec, columns)
    output = check_output(output, source.paths)  # a symlink's target; refuses the input, a folder, no permission
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_output_leftovers(output)
    if state_dir is not None:
        state_dir = Path(state_dir)
        check_state_dir(state_dir)
    model = model_for(model, survey)
    engine = Engine.load(model, num_threads=num_threads, precision=precision)
    bands = band_map(engine.bands, survey, engine.config.survey)
    check_keep(keep, engine, embedding)
    summary = BatchSummary()
    checks = RowChecks()
    if state_dir is not None:
        n_shards = state_shards(state_dir, n_shards)
    elif n_shards is None:
        total = source.count_rows()
        if total is None:  # CSV or nested layout: estimate from bytes (~40 bytes per observation)
            total = sum(path.stat().st_size for path in source.paths) // 40
        n_shards = max(1, math.ceil(total / shard_rows))
    rejected_path = output.with_name(output.name + ".rejected.parquet")
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f"{SPILL_PREFIX}{os.getpid()}-") as spill_dir:
        spiller = ShardSpiller(Path(spill_dir), n_shards)
        newest = -math.inf  # the input's newest clean observation: forget_after counts back from it
        with tqdm(desc="reading", unit=" obs", unit_scale=True, disable=not progress) as bar:  # closed on errors too
            for chunk in iter_chunks(source, chunk_rows, keep):
                clean = clean_chunk(chunk, bands, checks, keep)
                newest = max(newest, float(clean.t.max())) if len(clean.t) else newest
                spiller.add(clean)
                bar.update(chunk.num_rows)
        shards = spiller.close()
        write_rejected(checks, rejected_path)
        refuse_if_nothing_to_do(checks, shards, strict, rejected_path)
        cutoff = newest - forget_after if forget_after is not None and len(shards) else None
        temp_output = temporary_name(output)
        writer: pq.ParquetWriter | None = None
        bar = tqdm(total=len(shards), desc="classifying", unit=" shard", disable=not progress)
        try:
            for shard in shards:
                state_path = None if state_dir is None else shard_state_path(state_dir, shard)
                table = classify_shard(engine, read_shard(spiller.path(shard)), summary, embedding, state_path,
                                       model, num_threads, precision, step_rows, cutoff)
                if writer is None:
                    writer = pq.ParquetWriter(temp_output, table.schema)
                writer.write_table(table)
                summary.objects += table.num_rows
                bar.update(1)
                bar.set_postfix(objects_per_s=f"{summary.objects / (time.perf_counter() - started):,.0f}")
            if cutoff is not None:  # shards without new rows lose their stale objects too
                summary.forgotten += forget_in_shards(state_dir, n_shards, set(shards), cutoff, model, precision)
            assert writer is not None  # refuse_if_nothing_to_do: some shard has rows
            writer.close()
            os.replace(temp_output, output)
        finally:
            bar.close()
            Path(temp_output).unlink(missing_ok=True)
    summary.observations = checks.rows_in
    summary.rejected = {reason: count for reason, count in checks.rejected.items() if count}
    summary.seconds = time.perf_counter() - started
    return summary


def check_keep(keep: tuple[str, ...], engine: Engine, embedding: bool) -> None:
    """--keep columns must not take the name of an output column."""
    taken = set(result_table(engine.predict(np.empty(0, np.int64)), engine, embedding).column_names)
    clash = [name for name in keep if name in taken]
    if clash:
        raise ValueError(f"--keep {clash[0]}: the output already has a column of that name")


def write_rejected(checks: RowChecks, path: Path) -> None:
    """The rejected rows as read; a column typed differently in two chunks (a CSV block re-read as text) as text."""
    tables = checks.rejected_tables
    if not tables:
        path.unlink(missing_ok=True)
        return
    kinds: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for column in table.schema:
            kinds.setdefault(column.name, set()).add(column.type)
    mixed = {name for name, types in kinds.items() if len(types - {pa.null()}) > 1}
    if mixed:
        tables = [table.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in mixed else f
                                        for f in table.schema])) for table in tables]
    pq.write_table(pa.concat_tables(tables, promote_options="permissive"), path)


def refuse_if_nothing_to_do(checks: RowChecks, shards: list[int], strict: bool, rejected_path: Path) -> None:
    """NothingDone before any state or output is written: no rows, every row rejected, or --strict and some."""
    if checks.rows_in == 0:
        raise NothingDone("the input holds no observation rows; nothing classified")
    if not shards:
        raise NothingDone(f"every one of the {checks.rows_in:,} rows was rejected ({_reasons(checks)}; first: "
                          f"{checks.first_rejected()}); nothing classified. Rejected rows: {rejected_path}")
    if strict and checks.rows_rejected:
        raise NothingDone(f"--strict: {checks.rows_rejected:,} of {checks.rows_in:,} rows rejected "
                          f"({_reasons(checks)}; first: {checks.first_rejected()}); nothing classified, no state "
                          f"changed. Rejected rows: {rejected_path}")


def _reasons(checks: RowChecks) -> str:
    return ", ".join(f"{reason}: {count:,}" for reason, count in checks.rejected.items() if count)
