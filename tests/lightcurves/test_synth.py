"""mbfast.lightcurves.synth.resample: shapes, unique sorted ids, whole-day shifts, noise within the errors, seeded."""
from __future__ import annotations

import numpy as np
import pytest

from mbfast.train.preprocess import check_sorted
from mbfast.lightcurves.synth import resample
from mbfast.lightcurves.table import LightCurves, from_arrays


@pytest.fixture
def source() -> LightCurves:
    rng = np.random.default_rng(1)
    n_obs = 400
    obj_id = rng.integers(100, 120, n_obs)
    t = 60_000.0 + np.round(rng.uniform(0, 300, n_obs), 3)
    err = rng.uniform(0.01, 0.3, n_obs)
    return from_arrays(obj_id, rng.integers(0, 6, n_obs), t, rng.uniform(17, 24, n_obs), err,
                       ("u", "g", "r", "i", "z", "y"))


def source_index(big: LightCurves, source: LightCurves, k: int) -> int:
    """The source object that synthetic object k copies: same length and bands, times a whole-day shift."""
    one = big.object(k)
    for j in range(source.n_objects):
        candidate = source.object(j)
        if len(candidate) == len(one) and np.array_equal(candidate.band, one.band):
            shift = one.t - candidate.t
            if np.all(shift == shift[0]) and shift[0] == np.round(shift[0]):
                return j
    raise AssertionError(f"synthetic object {k} copies no source object")


def test_shapes_ids_and_order(source: LightCurves) -> None:
    big = resample(source, 50, seed=3)
    assert big.n_objects == 50
    assert big.bands == source.bands
    np.testing.assert_array_equal(big.object_ids, np.arange(50))
    assert len(np.unique(big.object_ids)) == 50
    np.testing.assert_array_equal(np.repeat(big.object_ids, np.diff(big.offsets)), big.obj_id)
    assert (big.obj_id.dtype, big.band.dtype, big.t.dtype, big.mag.dtype, big.err.dtype) == (
        np.int64, np.int8, np.float64, np.float32, np.float32)
    check_sorted(big)


def test_copies_of_sources_with_noise_within_errors(source: LightCurves) -> None:
    big = resample(source, 30, seed=4, max_shift_days=50)
    pulls = []
    for k in range(big.n_objects):
        copied = source.object(source_index(big, source, k))
        one = big.object(k)
        assert abs(one.t[0] - copied.t[0]) <= 50
        np.testing.assert_array_equal(one.err, copied.err)
        pulls.append((one.mag - copied.mag) / copied.err)
    pulls = np.concatenate(pulls)
    assert np.all(np.abs(pulls) < 6.0), f"max |pull| {np.abs(pulls).max():.2f}"
    assert abs(pulls.mean()) < 0.2 and 0.8 < pulls.std() < 1.2, (pulls.mean(), pulls.std())


def test_deterministic_by_seed(source: LightCurves) -> None:
    first, again, other = resample(source, 20, seed=7), resample(source, 20, seed=7), resample(source, 20, seed=8)
    for name in ("obj_id", "band", "t", "mag", "err", "offsets"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name), err_msg=name)
    assert not np.array_equal(first.t, other.t) or not np.array_equal(first.mag, other.mag)


def test_first_id_and_empty_source(source: LightCurves) -> None:
    np.testing.assert_array_equal(resample(source, 3, seed=0, first_id=1000).object_ids, [1000, 1001, 1002])
    assert resample(source, 0, seed=0).n_objects == 0
    empty = LightCurves(np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0), np.zeros(0, np.float32),
                        np.zeros(0, np.float32), np.zeros(1, np.int64), ("g",))
    with pytest.raises(ValueError, match="at least one object"):
        resample(empty, 5, seed=0)


def test_synth_command_writes_the_requested_objects_in_chunks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    from mbfast.lightcurves.sample import load_sample
    from mbfast.lightcurves.synth import write_synthetic

    output = tmp_path / "synth.parquet"
    rows = write_synthetic(output, 250, load_sample().curves, seed=3, objects_per_chunk=100)
    table = pq.read_table(output)
    assert table.num_rows == rows
    assert sorted(set(table.column("obj_id").to_pylist())) == list(range(250))
    assert set(table.column("band").to_pylist()) <= set("ugrizy")
