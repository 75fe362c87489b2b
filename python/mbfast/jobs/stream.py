"""Replay alert files through an Engine: read, order by time, deduplicate, step, score each alert, save state.

One call of `replay` is one batch (e.g. one night of alert files). The engine state is committed atomically at
the end of the batch, with a record of the files it consumed (by content), so a crashed batch is simply run again
and gives the same scores; the state folder is locked meanwhile, so two runs on it apply their batches in turn. `score_alerts` is the same step and scoring for rows read any other way (Kafka messages
through mbfast.alerts.read_messages), the caller keeping the state. This module does not decode packets
(mbfast.alerts) nor run the model (mbfast.engine).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mbfast import _core
from mbfast.alerts import AlertProblem, AlertRows, ZtfCuts, read_alerts
from mbfast.engine import Status
from mbfast.lightcurves.surveys import SURVEYS

# Engine.step status names indexed by code, as the engine defines them; then the per-alert statuses replay adds
STEP_STATUSES = tuple(sorted(_core.STATUS_CODES, key=_core.STATUS_CODES.__getitem__))
CUT = "cut"               # the alert's own detection failed the reader's cuts (mbfast.alerts)
NO_OBJECT = "no_object"   # LSST alert without a diaObjectId (a solar-system source)
PROGRESS_FILE = "replay.json"
PROGRESS_VERSION = 1
LOCK_FILE = "lock"  # flock'ed for a whole batch: one replay at a time per state folder

__all__ = ["CommitError", "ReplayResult", "check_paths", "register", "replay", "score_alerts"]


class CommitError(RuntimeError):
    """The batch was scored but its state could not be committed; the previous state is still in force."""


@dataclass
class ReplayResult:
    """What one replay batch did.

    scores : pa.Table, one row per alert (A), ordered by alert time: obj_id int64, object string (ZTF objectId,
        else null), alert_id int64, t float64 MJD of the alert's detection, status string, class string (the
        most probable class, null without probabilities), one float32 column per class name (probabilities
        after the alert's detection was applied, null while the object has none), file string, packet int32.
    problems : packets that could not be read.  skipped : detections dropped by the reader's cuts, by reason.
    rows_read : detections read (history repeats included);  rows_stepped : unique ones sent to Engine.step.
    conflicts : repeated detections (same obj_id, band, t) whose mag or err differ from the copy kept.
    step_counts : Engine.step status -> rows;  files_already_done : files skipped because the state has them.
    files_repeated : files skipped because an earlier file of the same call has the same bytes.
    duplicate_alerts : alert packets (same alert id) read again after their first copy; scored once.
    forgotten : objects dropped by `forget_after`.
    committed : the state folder now holds this batch (False without one, or when nothing had to change).
    """

    scores: pa.Table
    problems: list[AlertProblem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_stepped: int = 0
    conflicts: int = 0
    step_counts: dict[str, int] = field(default_factory=dict)
    files_already_done: list[str] = field(default_factory=list)
    files_repeated: list[str] = field(default_factory=list)
    duplicate_alerts: int = 0
    forgotten: int = 0
    committed: bool = False


def replay(paths: Iterable[str | os.PathLike[str]], engine: Any, state_dir: str | os.PathLike[str] | None = None,
           scores_path: str | os.PathLike[str] | None = None, *, cuts: ZtfCuts | None = None,
           skip_done: bool = True, forget_after: float | None = None) -> ReplayResult:
    """Read alert files, step their detections through `engine` in time order and score every alert.

    Parameters
    ----------
    paths : iterable of paths
        Alert files (see mbfast.alerts.read_alerts): one survey, matching the engine's model. A file with the
        same bytes as an earlier one of the call is read once (`files_repeated`).
    engine : mbfast.Engine
        Its state is loaded from `state_dir` first when that holds one, and advanced in place.
    state_dir : path, optional
        Where the engine state and the list of consumed files live; written atomically after the batch. The
        folder is locked for the whole call: a second replay on it waits until the first one is done.
    scores_path : path, optional
        Parquet file for `ReplayResult.scores`, written atomically (temporary file, then rename).
    cuts : ZtfCuts, optional
        ZTF detection cuts (default `ZtfCuts()`).
    skip_done : bool
        Skip files the state in `state_dir` already consumed (same SHA-256, whatever their path), so a batch re-run
        after its state was committed changes nothing. A file with a problem (a packet that could not be read) is
        never recorded as consumed: each run reads it again and reports the problem again. With False the
        recorded files are stepped again; the engine then reports their rows as duplicate or late and the state
        is unchanged.
    forget_after : float, optional
        Days: after stepping, forget every object whose newest detection is more than this many days older than
        the newest detection of the batch (Engine.forget_before), before the state is committed. Bounds the
        state of a stream that runs for years; a forgotten object that comes back starts afresh.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ValueError
        Before any work: a path that cannot be used (check_paths), an unreadable replay.json.
    CommitError
        The state could not be written (e.g. the disk is full); the previous state stays in force.

    Notes
    -----
    Detections are deduplicated on (obj_id, band, t) across the packets of the batch (each ZTF packet repeats
    30 days of history, each LSST packet 12 months), keeping the copy from the earliest alert; rows are then
    stepped in (t, obj_id, band) order. An alert's probabilities are the object's right after its detection
    was applied, so they do not depend on how a night is split into batches as long as the batches follow
    each other in time.
    """
    paths = [Path(path) for path in paths]
    state = Path(state_dir) if state_dir is not None else None
    check_paths(paths, state, scores_path)
    with _locked(state):
        progress = _load_progress(state, engine)
        done = {entry["sha256"] for entry in progress["files"]}
        todo: list[Path] = []
        digests: dict[Path, dict[str, Any]] = {}
        seen: set[str] = set()
        already: list[str] = []
        repeated: list[str] = []
        for path in paths:
            digest = _digest(path)
            if digest["sha256"] in seen:
                repeated.append(str(path))
            elif skip_done and digest["sha256"] in done:
                already.append(str(path))
            else:
                todo.append(path)
                digests[path] = digest
            seen.add(digest["sha256"])

        rows = read_alerts(todo, cuts=cuts)
        result = score_alerts(rows, engine, forget_after=forget_after)
        result.files_already_done = already
        result.files_repeated = repeated
        if scores_path is not None and (todo or not already):
            _write_atomic_parquet(result.scores, Path(scores_path))
        with_problems = {problem.file for problem in rows.problems}
        consumed = [digests[path] for path in todo if str(path) not in with_problems]
        if state is not None and (consumed or result.rows_stepped or result.forgotten):
            _commit(state, engine, progress, progress["files"] + consumed)
            result.committed = True
    return result


def check_paths(paths: Iterable[Path], state: Path | None, scores_path: str | os.PathLike[str] | None) -> None:
    """Raise ValueError, before any work, for a path replay could not use: a missing or unreadable alert file,
    a folder given as one, a state folder that is a file or not writable, an output that is a folder, is not
    writable, or is one of the alert files."""
    paths = list(paths)
    for path in paths:
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, not an alert file")
        if not path.is_file():
            raise ValueError(f"{path}: no such alert file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{path}: alert file not readable")
    if state is not None:
        if state.exists() and not state.is_dir():
            raise ValueError(f"--state {state}: is a file, not a state folder")
        _check_writable_folder(state, f"state folder {state}")
    if scores_path is not None:
        scores = Path(scores_path)
        if scores.is_dir():
            raise ValueError(f"output {scores}: is a folder; name the Parquet file to write")
        if any(scores.resolve() == path.resolve() for path in paths):
            raise ValueError(f"output {scores}: is one of the alert files; it would be overwritten")
        _check_writable_folder(scores.resolve().parent, f"output {scores}: folder")


def _check_writable_folder(folder: Path, what: str) -> None:
    """The folder, or the nearest existing folder above it (it would be created there), must be writable."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: {existing} is not writable")


@contextmanager
def _locked(state: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on the state folder (created if needed); wait, saying so, while another run has it."""
    if state is None:
        yield
        return
    state.mkdir(parents=True, exist_ok=True)
    with open(state / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            print(f"mbfast stream: state folder {state} is in use by another run (pid {holder}); waiting for it "
                  "to finish", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def score_alerts(rows: AlertRows, engine: Any, *, forget_after: float | None = None) -> ReplayResult:
    """Step alert rows (read_alerts, or read_messages for a Kafka consumer) through `engine` and score every
    alert: one replay batch without files or a state folder. A consumer saves the engine state (Engine.save_state)
    and then commits its offsets; after a crash between the two, the replayed detections are not applied again
    (the engine reports them as duplicate or late).

    `forget_after` (days) then forgets the objects not detected for that long before the batch's newest
    detection (Engine.forget_before). Rows keep the order and deduplication rules of `replay`. An alert read more
    than once (same ZTF candid or LSST alert id, e.g. a Kafka message delivered twice) is scored once, from its
    first copy; `duplicate_alerts` counts the others.
    """
    class_names = tuple(engine.class_names)
    result = ReplayResult(scores=_empty_scores(class_names), problems=list(rows.problems), skipped=dict(rows.skipped),
                          rows_read=len(rows))
    if not rows.n_alerts:  # nothing was read (the survey of an unreadable file is unknown): nothing to step
        return result
    _check_survey(rows, engine)
    rows, result.duplicate_alerts = _first_copy_of_each_alert(rows)
    result.scores = _step_and_score(rows, engine, class_names, result)
    if forget_after is not None and len(rows):
        result.forgotten = engine.forget_before(float(np.max(rows.t)) - forget_after)
    return result


def _first_copy_of_each_alert(rows: AlertRows) -> tuple[AlertRows, int]:
    """`rows` with only the first (read-order) copy of each alert id among its alerts, and how many were dropped.

    The detections of the dropped copies stay: they are the same detections, deduplicated when stepped."""
    _, first = np.unique(rows.alert_alert_id, return_index=True)
    if len(first) == rows.n_alerts:
        return rows, 0
    keep = np.sort(first)
    alerts = {name: getattr(rows, name)[keep] for name in ("alert_obj_id", "alert_alert_id", "alert_t", "alert_row",
                                                            "alert_file", "alert_packet")}
    return replace(rows, **alerts), rows.n_alerts - len(keep)


def _step_and_score(rows: AlertRows, engine: Any, class_names: tuple[str, ...], result: ReplayResult) -> pa.Table:
    n_classes = len(class_names)
    # unique detections: (obj_id, band, t), the copy from the earliest alert (alert t, file, packet) kept
    alert_t_of_row = _alert_time_of_rows(rows)
    order = np.lexsort((rows.packet, rows.file, alert_t_of_row, rows.t, rows.band, rows.obj_id))
    key_change = np.ones(len(order), dtype=bool)
    if len(order):
        key_change[1:] = ((np.diff(rows.obj_id[order]) != 0) | (np.diff(rows.band[order]) != 0)
                          | (np.diff(rows.t[order]) != 0))
    unique_rows = order[key_change]                                   # (U,) row index of each representative
    representative = np.empty(len(rows), dtype=np.int64)              # (R,) unique index of every row
    representative[order] = np.cumsum(key_change) - 1
    first = unique_rows[representative[order]]
    result.conflicts = int(((rows.mag[order] != rows.mag[first]) | (rows.err[order] != rows.err[first])).sum())

    # step order: time, then object and band; the engine applies rows of one call in order
    step_order = unique_rows[np.lexsort((rows.band[unique_rows], rows.obj_id[unique_rows], rows.t[unique_rows]))]
    obj_id = rows.obj_id[step_order]
    band = _engine_bands(rows, engine)[rows.band[step_order]]
    before = _probs_before(engine, np.unique(obj_id), n_classes)
    status, probs = _engine_step(engine, obj_id, band, rows.t[step_order], rows.mag[step_order],
                                 rows.err[step_order], n_classes)
    result.rows_stepped = len(step_order)
    result.step_counts = {name: int((status == code).sum()) for code, name in enumerate(STEP_STATUSES)}
    after = _forward_fill(obj_id, status == Status.PREDICTED, probs, before)  # (U, C) object probs after each row

    # per alert: the step of the unique row holding its own detection
    step_of_unique = np.empty(len(step_order), dtype=np.int64)
    step_of_unique[representative[step_order]] = np.arange(len(step_order))
    n_alerts = rows.n_alerts
    has_row = rows.alert_row >= 0
    step = np.full(n_alerts, -1, dtype=np.int64)
    step[has_row] = step_of_unique[representative[rows.alert_row[has_row]]]
    alert_status = np.where(rows.alert_obj_id == 0, NO_OBJECT, CUT).astype(object)
    alert_status[has_row] = np.asarray(STEP_STATUSES, dtype=object)[status[step[has_row]]]
    alert_probs = np.full((n_alerts, n_classes), np.nan, dtype=np.float32)
    alert_probs[has_row] = after[step[has_row]]
    # an alert whose detection was cut still reports its object's probabilities so far (none if it is new)
    cut = ~has_row & (rows.alert_obj_id != 0)
    if cut.any():
        alert_probs[cut] = _probs_at_alert(rows, cut, obj_id, rows.t[step_order], after, before)
    return _scores_table(rows, alert_status, alert_probs, class_names)


def _probs_at_alert(rows: AlertRows, which: np.ndarray, step_obj: np.ndarray, step_t: np.ndarray,
                    after: np.ndarray, before: dict[int, np.ndarray]) -> np.ndarray:
    """(W, C) object probabilities after its last stepped row with t <= the alert's t, for alerts `which`."""
    query_obj, query_t = rows.alert_obj_id[which], rows.alert_t[which]
    n_steps, n_queries = len(step_obj), len(query_obj)
    obj = np.concatenate([step_obj, query_obj])
    # stepped rows sort before a query at the same t, and among themselves in step order
    kind = np.r_[np.zeros(n_steps, dtype=np.int8), np.ones(n_queries, dtype=np.int8)]
    seq = np.r_[np.arange(n_steps), np.full(n_queries, n_steps)]
    order = np.lexsort((seq, kind, np.concatenate([step_t, query_t]), obj))
    last = _last_in_group(obj[order], np.where(kind[order] == 0, order, -1))
    out = np.full((n_queries, after.shape[1]), np.nan, dtype=np.float32)
    positions = np.flatnonzero(kind[order] == 1)
    queries = order[positions] - n_steps
    for query, step in zip(queries, last[positions]):
        if step >= 0:
            out[query] = after[step]
        elif int(query_obj[query]) in before:
            out[query] = before[int(query_obj[query])]
    return out


def _last_in_group(key: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Running maximum of `source` (-1 = none) that restarts wherever the sorted `key` changes."""
    n = len(key)
    if not n:
        return source
    group = np.cumsum(np.r_[True, key[1:] != key[:-1]]) - 1
    # offset each group above every earlier one, so that a maximum cannot leak into the next group
    offset = group * (int(source.max(initial=-1)) + 2)
    return np.maximum.accumulate(offset + source + 1) - offset - 1


def _alert_time_of_rows(rows: AlertRows) -> np.ndarray:
    """(R,) t of the alert that carried each row; (file, packet) names an alert."""
    alert_key = (rows.alert_file.astype(np.int64) << 32) | rows.alert_packet.astype(np.int64)
    row_key = (rows.file.astype(np.int64) << 32) | rows.packet.astype(np.int64)
    order = np.argsort(alert_key, kind="stable")
    return rows.alert_t[order[np.searchsorted(alert_key[order], row_key)]]


def _forward_fill(obj_id: np.ndarray, predicted: np.ndarray, probs: np.ndarray,
                  before: dict[int, np.ndarray]) -> np.ndarray:
    """(U, C): for each stepped row, the probabilities of its object after that row (NaN if none yet)."""
    by_object = np.lexsort((np.arange(len(obj_id)), obj_id))          # rows grouped by object, in step order
    last = _last_in_group(obj_id[by_object], np.where(predicted[by_object], by_object, -1))
    out = np.full(probs.shape, np.nan, dtype=np.float32)
    has = last >= 0
    out[by_object[has]] = probs[last[has]]
    for row in by_object[~has]:
        prior = before.get(int(obj_id[row]))
        if prior is not None:
            out[row] = prior
    return out


def _scores_table(rows: AlertRows, status: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]) -> pa.Table:
    order = np.lexsort((rows.alert_packet, rows.alert_file, rows.alert_t))
    probs = probs[order]
    has = ~np.isnan(probs).any(axis=1)
    best = np.full(len(order), None, dtype=object)
    best[has] = np.asarray(class_names, dtype=object)[np.argmax(probs[has], axis=1)]
    columns: dict[str, Any] = {
        "obj_id": pa.array(rows.alert_obj_id[order], pa.int64()),
        "object": pa.array([rows.names.get(int(obj)) for obj in rows.alert_obj_id[order]], pa.string()),
        "alert_id": pa.array(rows.alert_alert_id[order], pa.int64()),
        "t": pa.array(rows.alert_t[order], pa.float64()),
        "status": pa.array(status[order].tolist(), pa.string()),
        "class": pa.array(best.tolist(), pa.string()),
    }
    for c, name in enumerate(class_names):
        columns[name] = pa.array(probs[:, c], pa.float32(), mask=~has)
    columns["file"] = pa.array([rows.files[f] for f in rows.alert_file[order]], pa.string())
    columns["packet"] = pa.array(rows.alert_packet[order], pa.int32())
    return pa.table(columns)


def _empty_scores(class_names: tuple[str, ...]) -> pa.Table:
    fields = [("obj_id", pa.int64()), ("object", pa.string()), ("alert_id", pa.int64()), ("t", pa.float64()),
              ("status", pa.string()), ("class", pa.string())]
    fields += [(name, pa.float32()) for name in class_names] + [("file", pa.string()), ("packet", pa.int32())]
    return pa.schema(fields).empty_table()


# --- the engine boundary: the only functions that call the engine --------------------------------------------

def _engine_config(engine: Any) -> Any:
    return engine.config


def _check_survey(rows: AlertRows, engine: Any) -> None:
    """The model's survey must be the alerts' one or share its band system (PLAsTiCC simulates LSST's ugrizy), so a
    ZTF model never steps LSST g r i by label alone."""
    survey = getattr(_engine_config(engine), "survey", None)
    if survey is None or survey == rows.survey.name:
        return
    model_bands = SURVEYS[survey].bands if survey in SURVEYS else None
    if model_bands != rows.survey.bands:
        raise ValueError(f"the model is for {survey} but the alerts are {rows.survey.name}")


def _engine_bands(rows: AlertRows, engine: Any) -> np.ndarray:
    """(B_survey,) int8: the model's band index of each survey band."""
    bands = tuple(_engine_config(engine).bands)
    missing = [label for label in rows.survey.bands if label not in bands]
    used = {rows.survey.bands[code] for code in np.unique(rows.band)}
    if used & set(missing):
        raise ValueError(f"the model's bands ({' '.join(bands)}) lack {' '.join(sorted(used & set(missing)))}")
    return np.array([bands.index(label) if label in bands else -1 for label in rows.survey.bands], dtype=np.int8)


def _probs_before(engine: Any, obj_ids: np.ndarray, n_classes: int) -> dict[int, np.ndarray]:
    """Probabilities of the known objects among obj_ids before the batch (objects without one are left out)."""
    if not len(obj_ids):
        return {}
    probs = np.asarray(engine.predict(obj_ids).probs, dtype=np.float32).reshape(len(obj_ids), n_classes)
    has = ~np.isnan(probs).any(axis=1)
    return {int(obj): probs[k] for k, obj in enumerate(obj_ids) if has[k]}


def _engine_step(engine: Any, obj_id: np.ndarray, band: np.ndarray, t: np.ndarray, mag: np.ndarray,
                 err: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(U,) int8 status codes and (U, C) float32 probabilities (rows not predicted: NaN)."""
    if not len(obj_id):
        return np.zeros(0, dtype=np.int8), np.zeros((0, n_classes), dtype=np.float32)
    out = engine.step(obj_id, band, t, mag, err, errors="skip")
    status = np.asarray(out.status, dtype=np.int8)
    probs = np.asarray(out.probs, dtype=np.float32).copy()
    probs[status != Status.PREDICTED] = np.nan
    return status, probs


# --- state and progress -------------------------------------------------------------------------------------

def _digest(path: Path) -> dict[str, Any]:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def _load_progress(state: Path | None, engine: Any) -> dict[str, Any]:
    """The state folder's record, loading its engine state into `engine`; an empty record if none.

    Also removes what killed runs left behind (temporary state and record files, a state file the record does not
    name): the caller holds the folder's lock, so no other run is writing them.
    """
    empty = {"version": PROGRESS_VERSION, "state": None, "batches": 0, "files": []}
    if state is None:
        return empty
    record = state / PROGRESS_FILE
    progress = empty
    if record.exists():
        try:
            progress = json.loads(record.read_text())
            if progress.get("version") != PROGRESS_VERSION:
                raise ValueError(f"replay record version {progress.get('version')} (this mbfast reads "
                                 f"{PROGRESS_VERSION})")
            if not (isinstance(progress.get("batches"), int) and isinstance(progress.get("files"), list)
                    and all(isinstance(entry, dict) and "sha256" in entry for entry in progress["files"])
                    and (progress.get("state") is None or isinstance(progress["state"], str))):
                raise ValueError("not a replay record (state, batches, files)")
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise ValueError(f"{record}: unreadable, {exc}; restore it or start a new state folder") from None
    for leftover in state.iterdir():
        name = leftover.name
        if (".state.tmp-" in name or name == PROGRESS_FILE + ".tmp"
                or (name.startswith("engine-") and name.endswith(".state") and name != progress["state"])):
            leftover.unlink(missing_ok=True)
    if progress["state"] is not None:
        engine.load_state(str(state / progress["state"]))
    return progress


def _commit(state: Path, engine: Any, progress: dict[str, Any], files: list[dict[str, Any]]) -> None:
    """Save the engine to a new state file, then atomically point the record at it, then drop the old file.

    A crash before the rename leaves the previous (state, files) pair in force, so re-running the batch is safe.
    """
    batch = progress["batches"] + 1
    name = f"engine-{batch:06d}.state"
    temporary = state / (PROGRESS_FILE + ".tmp")
    try:
        engine.save_state(str(state / name))
        record = {"version": PROGRESS_VERSION, "state": name, "batches": batch, "files": files}
        temporary.write_text(json.dumps(record, indent=1))
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, state / PROGRESS_FILE)
    except (OSError, RuntimeError) as exc:
        if progress["state"] != name:
            (state / name).unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
        raise CommitError(f"state folder {state}: the batch was scored but its state was not saved ({exc}); "
                          "the previous state is kept, run the batch again") from exc
    if progress["state"] is not None and progress["state"] != name:
        (state / progress["state"]).unlink(missing_ok=True)


def _write_atomic_parquet(table: pa.Table, path: Path) -> None:
    path = path.resolve()  # through a symlink to its target: the rename would otherwise replace the link
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
