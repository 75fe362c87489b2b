"""Hypothesis fuzz of Engine.step with hostile input: it never crashes, a refused call changes nothing, statuses and
outputs stay consistent, and replaying only the accepted rows one by one reproduces the batch exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbfast.engine import Engine, Status
from tests.support.engine import LSST_BANDS, small_config, write_random_model

IDS = st.sampled_from([0, 1, 2, 3, -1, 2**63 - 1, -(2**63)])
BANDS = st.one_of(st.integers(0, 5), st.sampled_from(LSST_BANDS))
TIMES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, 1.0 + 1e-9, 2.0, 3.0]),
                  st.floats(59000.0, 59010.0))
MAGS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(15.0, 25.0))
ERRS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0.0, -0.1, 1e-30, 0.05]))
ROWS = st.lists(st.tuples(IDS, BANDS, TIMES, MAGS, ERRS), max_size=40)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = small_config(band_hidden=6, central_hidden=5, classifier_hidden=7, regression_hidden=3)
    return write_random_model(tmp_path_factory.mktemp("fuzz") / "model.mbf", config)


def columns(rows: list[tuple]) -> tuple[np.ndarray, ...]:
    obj_id = np.array([row[0] for row in rows], dtype=np.int64)
    band = np.array([LSST_BANDS.index(row[1]) if isinstance(row[1], str) else row[1] for row in rows], dtype=np.int8)
    t = np.array([row[2] for row in rows], dtype=np.float64)
    mag = np.array([row[3] for row in rows], dtype=np.float32)
    err = np.array([row[4] for row in rows], dtype=np.float32)
    return obj_id, band, t, mag, err


def state_of(engine: Engine) -> list[np.ndarray]:
    prediction = engine.predict([0, 1, 2, 3, -1, 2**63 - 1, -(2**63)])
    return [np.array(len(engine)), prediction.probs, prediction.embedding, prediction.regression, prediction.n_obs]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(warmup=ROWS, rows=ROWS, skip=st.booleans())
def test_hostile_steps(model_path: Path, warmup: list[tuple], rows: list[tuple], skip: bool) -> None:
    engine = Engine.load(model_path, num_threads=2)
    engine.step(*columns(warmup), errors="skip")
    before = state_of(engine)
    try:
        result = engine.step(*columns(rows), errors="skip" if skip else "raise", outputs=("probs", "embedding"))
    except ValueError as error:
        assert not skip and str(error).startswith("row ")
        for mine, theirs in zip(before, state_of(engine)):
            np.testing.assert_array_equal(mine, theirs)
        return
    status = result.status
    assert set(np.unique(status)) <= {int(s) for s in Status}
    predicted = status == Status.PREDICTED
    assert np.isfinite(result.probs[predicted]).all() and np.isfinite(result.embedding[predicted]).all()
    np.testing.assert_allclose(result.probs[predicted].sum(axis=1), 1.0, atol=1e-5)
    assert np.isnan(result.probs[~predicted]).all()

    # the accepted rows, one call each, into an engine with the same history, give the same outputs
    replay = Engine.load(model_path, num_threads=1)
    replay.step(*columns(warmup), errors="skip")
    accepted = np.flatnonzero((status == Status.PREDICTED) | (status == Status.WARMING_UP))
    obj_id, band, t, mag, err = columns(rows) if rows else (np.zeros(0),) * 5
    for row in accepted:
        single = replay.step(obj_id[row:row + 1], band[row:row + 1], t[row:row + 1], mag[row:row + 1],
                             err[row:row + 1], outputs=("probs", "embedding"))
        assert single.status[0] == status[row]
        np.testing.assert_array_equal(single.probs[0], result.probs[row])
    for mine, theirs in zip(state_of(engine), state_of(replay)):
        np.testing.assert_array_equal(mine, theirs)
