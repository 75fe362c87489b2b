"""Engine (C++ core) against the NumPy reference, stream against batch, and its API and input checks.

Random-weight model files (no torch) on real PLAsTiCC light curves; tolerances fp32 vs float64 reference:
rtol 1e-5, atol 1e-6. Stream/batch/thread-count comparisons are exact.
"""
from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import mbfast
from mbfast import _core
from mbfast.engine import STATE_FORMAT_VERSION, Engine, Status
from mbfast.model.layout import FORMAT_VERSION, LAYOUT_REVISION, random_weights
from mbfast.model.modelfile import read_model, write_model
from mbfast.model.reference import ReferenceModel, preprocess_reference
from mbfast.lightcurves.table import from_arrays
from tests.support.engine import LSST_BANDS, plasticc_sample, small_config, time_ordered_rows, write_random_model

ALL_OUTPUTS = ("probs", "embedding", "regression")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("model") / "random.mbf")


def stream(engine: Engine, curves: mbfast.LightCurves, rows: np.ndarray, **kwargs: object) -> mbfast.engine.StepResult:
    return engine.step(curves.obj_id[rows], curves.band[rows], curves.t[rows], curves.mag[rows], curves.err[rows],
                       **kwargs)


def snapshot(engine: Engine, obj_ids: np.ndarray) -> tuple[int, list[np.ndarray]]:
    prediction = engine.predict(obj_ids)
    return len(engine), [prediction.probs, prediction.embedding, prediction.regression, prediction.n_obs]


def assert_same_snapshot(before: tuple[int, list[np.ndarray]], after: tuple[int, list[np.ndarray]]) -> None:
    assert before[0] == after[0]
    for mine, theirs in zip(before[1], after[1]):
        np.testing.assert_array_equal(mine, theirs)


# ------------------------------------------------------------------------------------------------------------------
# values both languages must agree on
# ------------------------------------------------------------------------------------------------------------------

def test_core_constants_match_python() -> None:
    assert _core.MODEL_FORMAT_VERSION == FORMAT_VERSION
    assert _core.LAYOUT_REVISION == LAYOUT_REVISION
    assert _core.STATE_FORMAT_VERSION == STATE_FORMAT_VERSION
    assert dict(_core.STATUS_CODES) == {status.name.lower(): status.value for status in Status}


def test_engine_is_exported() -> None:
    assert mbfast.Engine is Engine
    assert "Engine" in mbfast.__all__


# ------------------------------------------------------------------------------------------------------------------
# parity with mbfast.model.reference at every step
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_threads", [1, 2])
def test_step_matches_reference_at_every_step(model_path: Path, num_threads: int) -> None:
    curves = plasticc_sample()
    engine = Engine.load(model_path, num_threads=num_threads)
    rows = time_ordered_rows(curves)
    result = stream(engine, curves, rows, outputs=ALL_OUTPUTS)
    reference = ReferenceModel(read_model(model_path))
    inputs = preprocess_reference(curves, n_skip=2)
    stream_obj = curves.obj_id[rows]
    max_diff = {name: 0.0 for name in ALL_OUTPUTS}
    for k in range(curves.n_objects):
        expected = reference.run_object(inputs, k)
        predicted = np.flatnonzero((stream_obj == curves.object_ids[k]) & (result.status == Status.PREDICTED))
        assert len(predicted) == len(expected), f"object {k}: {len(predicted)} predictions, reference {len(expected)}"
        for name in ALL_OUTPUTS:
            want = np.array([getattr(step, name) for step in expected]).reshape(len(expected), -1)
            got = getattr(result, name)[predicted]
            if want.size:
                max_diff[name] = max(max_diff[name], float(np.abs(got - want).max()))
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"object {k} {name}")
    print(f"maxdiff engine vs reference: {max_diff}")
    assert (result.status == Status.PREDICTED).sum() == len(inputs.band)


def test_warming_up_until_third_observation_of_a_band(model_path: Path) -> None:
    engine = Engine.load(model_path, num_threads=1)
    result = engine.step([7] * 7, ["g", "g", "r", "g", "r", "r", "g"], [1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0],
                         [20.0, 20.1, 19.5, 20.2, 19.6, 19.4, 20.0], [0.1] * 7)
    assert list(result.status_names) == ["warming_up", "warming_up", "warming_up", "predicted", "warming_up",
                                         "predicted", "predicted"]
    assert np.isnan(result.probs[result.status != Status.PREDICTED]).all()
    assert np.allclose(result.probs[result.status == Status.PREDICTED].sum(axis=1), 1.0, atol=1e-6)
    prediction = engine.predict([7, 8])
    np.testing.assert_array_equal(prediction.probs[0], result.probs[-1])
    assert prediction.class_index[0] == np.argmax(result.probs[-1]) and prediction.class_index[1] == -1
    assert np.isnan(prediction.probs[1]).all()
    np.testing.assert_array_equal(prediction.n_obs, [[0, 4, 3, 0, 0, 0], [0] * 6])


# ------------------------------------------------------------------------------------------------------------------
# stream == batch == classify, independent of threads (exact)
# ------------------------------------------------------------------------------------------------------------------

def test_stream_batch_and_classify_agree_exactly(model_path: Path) -> None:
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    whole = Engine.load(model_path, num_threads=2)
    batch = stream(whole, curves, rows, outputs=ALL_OUTPUTS)

    one_by_one = Engine.load(model_path, num_threads=1)
    single = [stream(one_by_one, curves, rows[i:i + 1], outputs=ALL_OUTPUTS) for i in range(len(rows))]
    for name in ("status",) + ALL_OUTPUTS:
        np.testing.assert_array_equal(np.concatenate([getattr(part, name) for part in single]), getattr(batch, name),
                                      err_msg=name)

    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(np.arange(1, len(rows)), size=30, replace=False))
    chunked = Engine.load(model_path, num_threads=2)
    parts = [stream(chunked, curves, part, outputs=ALL_OUTPUTS) for part in np.split(rows, cuts)]
    for name in ("status",) + ALL_OUTPUTS:
        np.testing.assert_array_equal(np.concatenate([getattr(part, name) for part in parts]), getattr(batch, name),
                                      err_msg=name)

    table = whole.classify(curves)
    ids = curves.object_ids
    for engine in (whole, one_by_one, chunked):
        current = engine.predict(ids)
        for name in ("probs", "embedding", "regression", "n_obs", "class_index"):
            np.testing.assert_array_equal(getattr(table, name), getattr(current, name), err_msg=name)
    assert len(whole) == curves.n_objects


@pytest.mark.parametrize("options", [{}, {"state_dtype": "fp16"}, {"precision": "int8"}], ids=str)
def test_predict_returns_each_objects_last_step_outputs(model_path: Path, options: dict[str, str]) -> None:
    """predict recomputes the embedding from the stored central h (the store keeps no copy on the CPU): it must be
    the embedding of the object's last predicted row exactly, with 16-bit state too (the heads see the rounded h)."""
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    engine = Engine.load(model_path, num_threads=2, **options)
    result = stream(engine, curves, rows, outputs=ALL_OUTPUTS)
    predicted = np.flatnonzero(result.status == Status.PREDICTED)
    last_row = {int(obj): row for row, obj in zip(predicted, curves.obj_id[rows][predicted])}  # later rows win
    ids = np.array(sorted(last_row), dtype=np.int64)
    prediction = engine.predict(ids)
    for name in ALL_OUTPUTS:
        np.testing.assert_array_equal(getattr(prediction, name), getattr(result, name)[[last_row[i] for i in ids]],
                                      err_msg=name)
    engine.step([-1, -1], ["g", "r"], [60000.0, 60000.5], [20.0, 20.1], [0.1, 0.1])  # still warming up: NaN
    warming = engine.predict([-1])
    assert np.isnan(warming.embedding).all() and np.isnan(warming.probs).all() and warming.n_obs.sum() == 2


def test_classify_drops_equal_time_repeats_like_the_reference(model_path: Path) -> None:
    curves = from_arrays(np.array([1] * 6), np.array(["r"] * 6), np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0]),
                         np.array([20.0, 20.5, 21.0, 20.2, 20.1, 20.3]), np.full(6, 0.1), LSST_BANDS)
    engine = Engine.load(model_path, num_threads=1)
    table = engine.classify(curves)
    reference = ReferenceModel(read_model(model_path)).run_object(preprocess_reference(curves, 2), 0)
    np.testing.assert_allclose(table.probs[0], reference[-1].probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(table.n_obs[0], [0, 0, 5, 0, 0, 0])
    assert len(engine) == 0  # classify leaves the engine's own state alone


def streamed_engine(model_path: Path) -> tuple[Engine, mbfast.LightCurves]:
    """An engine that has stepped every observation of the PLAsTiCC sample, and the sample."""
    curves = plasticc_sample()
    engine = Engine.load(model_path, num_threads=2)
    stream(engine, curves, time_ordered_rows(curves))
    return engine, curves


def test_forget_and_len(model_path: Path) -> None:
    engine, curves = streamed_engine(model_path)
    ids = curves.object_ids
    kept = ids[1::2]
    before = engine.predict(kept)
    assert engine.forget(np.concatenate([ids[::2], [-12345]])) == len(ids[::2])
    assert len(engine) == len(kept)
    after = engine.predict(kept)
    np.testing.assert_array_equal(before.probs, after.probs)
    assert (engine.predict(ids[::2]).n_obs == 0).all()
    # a forgotten object starts over
    first = int(ids[0])
    result = engine.step([first], ["r"], [60000.0], [20.0], [0.1])
    assert result.status_names[0] == "warming_up"


def test_forget_before_drops_only_objects_not_seen_since(model_path: Path) -> None:
    engine, curves = streamed_engine(model_path)
    ids = curves.object_ids
    newest = np.array([curves.t[curves.offsets[k]:curves.offsets[k + 1]].max() for k in range(curves.n_objects)])
    cutoff = float(np.median(newest))
    kept = ids[newest >= cutoff]
    before = engine.predict(kept)
    assert engine.forget_before(cutoff) == int((newest < cutoff).sum()) > 0
    assert sorted(engine.object_ids().tolist()) == sorted(kept.tolist()) and len(engine) == len(kept)
    after = engine.predict(kept)
    for name in ("probs", "embedding", "regression", "n_obs"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name), err_msg=name)
    gone = int(ids[newest < cutoff][0])
    assert engine.step([gone], ["r"], [cutoff + 1.0], [20.0], [0.1]).status_names[0] == "warming_up"
    assert engine.forget_before(-1e9) == 0
    with pytest.raises(ValueError, match="t must be a finite MJD"):
        engine.forget_before(float("nan"))


@pytest.mark.parametrize("n_ids, rounds", [(24, 300), (5000, 40)])
def test_objects_come_and_go(model_path: Path, tmp_path: Path, n_ids: int, rounds: int) -> None:
    """The obj_id -> slot table (open addressing, backward-shift deletion) against a Python dict: ids (consecutive,
    negative, extreme, random) stepped, forgotten, returning, saved and loaded, over many rounds; the small pool
    keeps a 32-entry table crowded, so probe runs often wrap around its end."""
    rng = np.random.default_rng(11)
    pool = np.unique(np.concatenate([np.arange(n_ids * 3 // 5), -np.arange(1, n_ids // 10),
                                     rng.integers(-2**62, 2**62, n_ids * 3 // 10),
                                     [np.iinfo(np.int64).min, np.iinfo(np.int64).max]])).astype(np.int64)
    engine = Engine.load(model_path, num_threads=2)
    counts: dict[int, int] = {}
    for round_ in range(rounds):
        ids = rng.choice(pool, size=int(rng.integers(1, len(pool) * 3 // 10)), replace=False)
        bands = rng.integers(0, len(engine.bands), len(ids)).astype(np.int8)
        engine.step(ids, bands, np.full(len(ids), 60000.0 + round_), np.full(len(ids), 20.0, np.float32),
                    np.full(len(ids), 0.1, np.float32), outputs=())
        for obj in ids.tolist():
            counts[obj] = counts.get(obj, 0) + 1
        gone = rng.choice(pool, size=int(rng.integers(0, len(pool) // 6)), replace=False)
        assert engine.forget(gone) == sum(obj in counts for obj in gone.tolist())
        for obj in gone.tolist():
            counts.pop(obj, None)
        if round_ % 20 == 19:  # the table is rebuilt from the file's obj_id column
            engine.save_state(tmp_path / "state.mbs")
            engine = Engine.load(model_path, num_threads=2, state=tmp_path / "state.mbs")
        assert len(engine) == len(counts)
        np.testing.assert_array_equal(engine.predict(pool).n_obs.sum(axis=1), [counts.get(obj, 0) for obj in pool])


# ------------------------------------------------------------------------------------------------------------------
# bad input: structural errors and row errors name row and field; nothing applied
# ------------------------------------------------------------------------------------------------------------------

@pytest.fixture()
def warm_engine(model_path: Path) -> Engine:
    engine = Engine.load(model_path, num_threads=1)
    engine.step([1, 1, 1, 2], ["g", "g", "g", "r"], [1.0, 2.0, 3.0, 1.5], [20.0, 20.1, 20.2, 19.0],
                [0.1, 0.1, 0.1, 0.2])
    return engine


@pytest.mark.parametrize(("columns", "message"), [
    (([1, 2], ["g"], [4.0, 5.0], [20.0, 20.0], [0.1, 0.1]), "mismatched lengths"),
    (([1], ["q"], [4.0], [20.0], [0.1]), r"row 0 \(obj_id 1\): unknown band 'q'"),
    (([1, 3], ["g", 7], [4.0, 5.0], [20.0, 20.0], [0.1, 0.1]), "unknown band"),
    (([1, 3], [1, 9], [4.0, 5.0], [20.0, 20.0], [0.1, 0.1]), r"row 1 \(obj_id 3\): band must be in 0..5"),
    (([1.5], ["g"], [4.0], [20.0], [0.1]), "obj_id must be integers"),
    (([1], ["g"], ["soon"], [20.0], [0.1]), "t must be numbers"),
    (([1], ["g"], [4.0 + 1j], [20.0], [0.1]), "t must be real numbers"),
    (([[1]], [["g"]], [[4.0]], [[20.0]], [[0.1]]), "'obj_id' must be 1-d"),
    (([1], [0.5], [4.0], [20.0], [0.1]), "band must be labels"),
])
def test_structural_errors_raise_and_leave_state_untouched(warm_engine: Engine, columns: tuple,
                                                            message: str) -> None:
    before = snapshot(warm_engine, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=message):
        warm_engine.step(*columns)
    assert_same_snapshot(before, snapshot(warm_engine, np.array([1, 2, 3])))


def masked(values: list, row: int) -> np.ma.MaskedArray:
    mask = np.zeros(len(values), dtype=bool)
    mask[row] = True
    return np.ma.array(values, mask=mask)


def rows_of(n: int) -> dict[str, list]:
    """n rows of object 7 in band g, one a day."""
    return {"obj_ids": [7] * n, "band": ["g"] * n, "t": [60000.0 + k for k in range(n)], "mag": [20.0] * n,
            "err": [0.1] * n}


# The input policy of Engine.step (docs/engine.md "Input types"), issue 18.12: one rule per column, whatever the
# container and whatever the number of rows (calls of up to 16 rows and longer ones convert bands differently).
@pytest.mark.parametrize("n", [3, 20])
@pytest.mark.parametrize(("field", "make", "message"), [
    ("band", lambda v: [label.encode() for label in v],
     r"^row 0 \(obj_id 7\): band must not be bytes, got b'g'; decode them first$"),
    ("band", lambda v: np.array(v, dtype="S"), r"^row 0 \(obj_id 7\): band must not be bytes, got b'g'; decode them "
                                               r"first$"),
    ("band", lambda v: np.array(v[:-1] + [b"g"], dtype=object),
     r"^row \d+ \(obj_id 7\): band must be an int, float or str, got bytes b'g'; decode them first$"),
    ("band", lambda v: [True] * len(v), r"^band must not be booleans, got dtype bool$"),
    ("t", lambda v: np.array(v, dtype=np.float16),
     r"^t must be float64 \(or float32 or integers\), got float16, which cannot hold an MJD$"),
    ("t", lambda v: np.array([True] + v[1:], dtype=object),
     r"^row 0 \(obj_id 7\): t must be an int, float or str, got bool True$"),
    ("mag", lambda v: [True] * len(v), r"^mag must not be booleans, got dtype bool$"),
    ("err", lambda v: np.ones(len(v), dtype=bool), r"^err must not be booleans, got dtype bool$"),
    ("obj_ids", lambda v: [True] * len(v), r"^obj_id must not be booleans, got dtype bool$"),
    ("t", lambda v: masked(v, 2), r"^row 2 \(obj_id 7\): t is masked; drop or fill masked rows first$"),
    ("band", lambda v: masked(v, 1), r"^row 1 \(obj_id 7\): band is masked; drop or fill masked rows first$"),
    ("obj_ids", lambda v: masked(v, 0), r"^row 0 \(obj_id 7\): obj_id is masked; drop or fill masked rows first$"),
    ("err", lambda v: masked(v, 1), r"^row 1 \(obj_id 7\): err is masked; drop or fill masked rows first$"),
    ("band", lambda v: np.array(v[:-1] + [1], dtype=object), r"^row \d+ \(obj_id 7\): band mixes str and int values$"),
    ("t", lambda v: np.array(v).reshape(1, -1), r"^'t' must be 1-d, got shape \(1, \d+\)$"),
])
def test_input_policy_refusals(warm_engine: Engine, n: int, field: str, make: object, message: str) -> None:
    columns = rows_of(n)
    columns[field] = make(columns[field])  # type: ignore[operator]
    before = snapshot(warm_engine, np.array([1, 2, 7]))
    with pytest.raises(ValueError, match=message):
        warm_engine.step(**columns)
    with pytest.raises(ValueError, match=message):  # structural: refused even when bad rows are skipped
        warm_engine.step(**columns, errors="skip")
    assert_same_snapshot(before, snapshot(warm_engine, np.array([1, 2, 7])))


@pytest.mark.parametrize("n", [3, 20])
@pytest.mark.parametrize(("field", "make"), [
    ("band", lambda v: np.array(v, dtype=object)),  # object arrays convert as the list of the same values does
    ("band", lambda v: np.array([1] * len(v), dtype=object)),
    ("band", lambda v: [1] * len(v)),
    ("band", lambda v: np.ones(len(v), dtype=np.uint8)),
    ("obj_ids", lambda v: np.array(v, dtype=object)),
    ("obj_ids", lambda v: np.array(v, dtype=np.uint16)),
    ("t", lambda v: np.array(v, dtype=object)),
    ("t", lambda v: [int(value) for value in v]),
    ("t", lambda v: np.array(v, dtype=np.float32)),  # 60000 + k is exact in float32
    ("mag", lambda v: np.array(v, dtype=np.float16)),
    ("err", lambda v: np.ma.array(v, mask=np.zeros(len(v), dtype=bool))),  # a mask with nothing masked
    ("t", lambda v: np.ma.array(v)),
])
def test_input_policy_equivalents(model_path: Path, n: int, field: str, make: object) -> None:
    expected = Engine.load(model_path, num_threads=1).step(**rows_of(n), outputs=ALL_OUTPUTS)
    columns = rows_of(n)
    columns[field] = make(columns[field])  # type: ignore[operator]
    got = Engine.load(model_path, num_threads=1).step(**columns, outputs=ALL_OUTPUTS)
    for name in ("status",) + ALL_OUTPUTS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


def test_scalars_are_one_row(model_path: Path) -> None:
    engine = Engine.load(model_path, num_threads=1)
    result = engine.step(np.int64(4), "g", np.float64(60000.0), 20.0, np.array(0.1))
    assert list(result.status_names) == ["warming_up"]
    assert engine.predict(4).n_obs.tolist() == [[0, 1, 0, 0, 0, 0]]


def test_band_labels_as_a_numpy_array_take_the_same_path_as_codes(model_path: Path) -> None:
    # the alert readers' layout: exact numeric columns, band as a NumPy str array (converted alone)
    columns = (np.array([1, 1, 1, 1], np.int64), np.array([0.0, 1.0, 2.0, 3.0]),
               np.array([20.0, 20.1, 19.9, 20.2], np.float32), np.full(4, 0.1, np.float32))
    labels = np.array(["g", "g", "g", "i"])
    with_codes = Engine.load(model_path, num_threads=1).step(columns[0], np.array([1, 1, 1, 3], np.int8),
                                                             *columns[1:], outputs=ALL_OUTPUTS)
    with_labels = Engine.load(model_path, num_threads=1).step(columns[0], labels, *columns[1:], outputs=ALL_OUTPUTS)
    for name in ("status",) + ALL_OUTPUTS:
        np.testing.assert_array_equal(getattr(with_labels, name), getattr(with_codes, name), err_msg=name)
    engine = Engine.load(model_path, num_threads=1)
    with pytest.raises(ValueError, match=r"row 2 \(obj_id 1\): unknown band 'w'"):
        engine.step(columns[0], np.array(["g", "g", "w", "i"]), *columns[1:])
    assert len(engine) == 0


@pytest.mark.parametrize(("field", "value", "message", "status"), [
    ("err", -0.02, r"row 2 \(obj_id 1\): err must be > 0, got -0.02", Status.INVALID),
    ("err", 0.0, r"row 2 \(obj_id 1\): err must be > 0, got 0", Status.INVALID),
    ("mag", np.nan, r"row 2 \(obj_id 1\): mag must be finite, got nan", Status.INVALID),
    ("t", np.inf, r"row 2 \(obj_id 1\): t must be finite, got inf", Status.INVALID),
    ("mag", 1e40, r"^row 2 \(obj_id 1\): mag must be a finite number that float32 can hold \(magnitude 1.4e-45 to "
                  r"3.4e38\), got 1e\+40$", Status.INVALID),
    ("err", 1e-300, r"^row 2 \(obj_id 1\): err must be a finite number that float32 can hold \(magnitude 1.4e-45 "
                    r"to 3.4e38\), got 1e-300$", Status.INVALID),
    ("mag", -2e4, r"row 2 \(obj_id 1\): mag must be within \+-10000, got -20000", Status.INVALID),
    ("t", 3e12, r"row 2 \(obj_id 1\): t must be within \+-1e12 days, got 3e\+12", Status.INVALID),
    ("t", 2.5, r"row 2 \(obj_id 1\): t must be after the last observation of band 'g' \(t=3\), got 2.5",
     Status.LATE),
])
def test_row_errors(warm_engine: Engine, field: str, value: float, message: str, status: Status) -> None:
    columns = {"obj_ids": [5, 2, 1, 2], "band": ["r", "r", "g", "r"], "t": [1.0, 2.0, 4.0, 3.0],
               "mag": [20.0, 19.1, 20.3, 19.2], "err": [0.1, 0.1, 0.1, 0.1]}
    columns[field][2] = value
    ids = np.array([1, 2, 5])
    before = snapshot(warm_engine, ids)
    with pytest.raises(ValueError, match=message):
        warm_engine.step(**columns)
    assert_same_snapshot(before, snapshot(warm_engine, ids))

    result = warm_engine.step(**columns, errors="skip")
    assert list(result.status) == [Status.WARMING_UP, Status.WARMING_UP, status, Status.PREDICTED]
    assert len(warm_engine) == 3
    np.testing.assert_array_equal(warm_engine.predict(ids).n_obs[:, 1], [3, 0, 0])


def test_duplicates_and_late_rows(warm_engine: Engine) -> None:
    before = snapshot(warm_engine, np.array([1, 2]))
    result = warm_engine.step([1, 1, 1, 2], ["g", "g", "g", "r"], [3.0, 2.0, 3.0, 1.5], [20.2, 20.1, 20.5, 19.0],
                              [0.1, 0.1, 0.1, 0.2], errors="skip")
    # exact repeat of the last obs; older history (not checkable cheaply) is late; same t other mag is late
    assert list(result.status_names) == ["duplicate", "late", "late", "duplicate"]
    assert_same_snapshot(before, snapshot(warm_engine, np.array([1, 2])))
    # duplicates never raise
    result = warm_engine.step([1], ["g"], [3.0], [20.2], [0.1])
    assert result.status_names[0] == "duplicate"
    assert_same_snapshot(before, snapshot(warm_engine, np.array([1, 2])))


def test_invalid_only_rows_create_no_object(warm_engine: Engine) -> None:
    result = warm_engine.step([99], ["g"], [np.nan], [20.0], [0.1], errors="skip")
    assert result.status_names[0] == "invalid"
    assert len(warm_engine) == 2


def test_step_argument_checks(warm_engine: Engine) -> None:
    with pytest.raises(ValueError, match="errors must be"):
        warm_engine.step([1], ["g"], [9.0], [20.0], [0.1], errors="ignore")
    with pytest.raises(ValueError, match="unknown outputs"):
        warm_engine.step([1], ["g"], [9.0], [20.0], [0.1], outputs=("logits",))
    empty = warm_engine.step([], [], [], [], [], outputs=ALL_OUTPUTS)
    assert empty.probs.shape == (0, 5) and empty.embedding.shape == (0, 12) and empty.regression.shape == (0, 2)
    single = warm_engine.step(1, "g", 9.0, 20.0, 0.1, outputs="embedding")
    assert single.probs is None and single.embedding.shape == (1, 12)


# ------------------------------------------------------------------------------------------------------------------
# model files
# ------------------------------------------------------------------------------------------------------------------

def test_missing_default_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mbfast.engine, "DEFAULT_MODEL", tmp_path / "absent.mbf")
    with pytest.raises(FileNotFoundError, match=r"no model file at .*absent\.mbf \(shipped models: lsst, ztf\)"):
        Engine.load()


def test_model_file_problems_are_refused(model_path: Path, tmp_path: Path) -> None:
    data = bytearray(model_path.read_bytes())
    corrupt = tmp_path / "corrupt.mbf"
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum mismatch"):
        Engine.load(corrupt)

    newer = tmp_path / "newer.mbf"
    bumped = bytearray(data)
    bumped[8:12] = struct.pack("<I", FORMAT_VERSION + 1)
    newer.write_bytes(bytes(bumped))
    with pytest.raises(ValueError, match=f"model file format {FORMAT_VERSION + 1} is newer than this mbfast "
                                         f"\\(reads up to {FORMAT_VERSION}\\); upgrade mbfast"):
        Engine.load(newer)

    truncated = tmp_path / "truncated.mbf"
    truncated.write_bytes(bytes(data[:1000]))
    with pytest.raises(ValueError, match="checksum|truncated"):
        Engine.load(truncated)

    with pytest.raises(ValueError, match="bad magic"):
        (tmp_path / "other.mbf").write_bytes(b"not a model at all")
        Engine.load(tmp_path / "other.mbf")


def test_model_tensor_mismatch_lists_every_problem(tmp_path: Path) -> None:
    # a valid container whose config says regression_hidden 8 while its tensors were made for 9 (write_model would
    # refuse it, so the config JSON is patched and the CRC recomputed)
    config = small_config()
    path = write_random_model(tmp_path / "model.mbf", config)
    data = bytearray(path.read_bytes()[:-4])
    old = b'"regression_hidden": 9'
    new = b'"regression_hidden": 8'
    assert old in data
    data = data.replace(old, new)
    data += struct.pack("<I", zlib.crc32(bytes(data)))
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"mis-shaped central.regressors.0.layers.0.linear.weight: expected "
                                         r"\(8, 28\), got \(9, 28\)") as error:
        Engine.load(path)
    assert str(error.value).count("mis-shaped") == 22  # 11 tensors per target, 2 targets: all listed at once


def test_python_and_cpp_read_the_same_model(model_path: Path, tmp_path: Path) -> None:
    engine = Engine.load(model_path, num_threads=1)
    assert engine.config == read_model(model_path).config
    assert engine.bands == LSST_BANDS and engine.class_names == small_config().class_names
    # a rewrite of the same tensors is the same model
    copy = tmp_path / "copy.mbf"
    write_model(copy, engine.config, random_weights(engine.config))
    assert copy.read_bytes() == model_path.read_bytes()


def test_non_finite_weights_and_bad_config_values_are_refused(tmp_path: Path) -> None:
    """Issue 18.10: such a model used to load and predict NaN for every row."""
    config = small_config()
    tensors = random_weights(config)
    tensors["central.stack.lstm.1.weight_hh_l0"] = tensors["central.stack.lstm.1.weight_hh_l0"].copy()
    tensors["central.stack.lstm.1.weight_hh_l0"][2, 5] = np.nan
    path = tmp_path / "nan.mbf"
    write_model(path, config, tensors)
    message = f"{path}: tensor central.stack.lstm.1.weight_hh_l0 holds nan at flat index 29; every weight must be finite"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Engine.load(path)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        read_model(path)
    for field, value, shown in (("layernorm_eps", float("nan"), "nan"), ("batchnorm_eps", -1.0, "-1"),
                                ("layernorm_eps", 0.0, "0")):
        hostile = small_config()       # ModelConfig refuses such a value: write the file another producer could
        object.__setattr__(hostile, field, value)
        path = write_random_model(tmp_path / f"{field}.mbf", hostile)
        with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: model config field '{field}' must be a finite "
                                             f"number > 0, got {shown}$"):
            Engine.load(path)
    tensors = random_weights(config)
    tensors["central.classifier.layers.1.norm.running_var"] = np.full(20, -1.0, dtype=np.float32)
    path = tmp_path / "var.mbf"
    write_model(path, config, tensors)
    with pytest.raises(ValueError, match=r"var.mbf: central.classifier.layers.1.norm.running_var holds -1 at index 0: "
                                         r"BatchNorm needs running_var \+ batchnorm_eps > 0$"):
        Engine.load(path)
