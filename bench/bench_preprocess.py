"""Preprocessing throughput: mbfast.train.preprocess (Numba) against a plain pandas groupby version of the same features.

Inputs are PLAsTiCC curves resampled by lightcurves.synth (bench/conftest.py: --bench-obs, default 10 M observations;
pandas runs on a 1 M subset and is compared per observation). Only the call is timed; outputs are checked after.
"""
from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import pandas as pd
import pytest

from mbfast.model.preprocessed import ModelInputs
from mbfast.train.preprocess import preprocess
from mbfast.lightcurves.table import LightCurves

N_SKIP = 2
GROUP = "preprocess"


def preprocess_pandas(frame: pd.DataFrame, n_bands: int) -> pd.DataFrame:
    """Window rows, colours and dt_central the way one would write them with pandas groupby in an afternoon.

    `frame` columns obj_id, band, t, mag (float64), sorted by (obj_id, t, band). One output row per
    observation that is the 3rd or later of its band, in table order.
    """
    frame = frame.drop_duplicates(["obj_id", "band", "t"]).reset_index(drop=True)
    per_band = frame.groupby(["obj_id", "band"], sort=False)
    frame["log_dt"] = np.log10(per_band["t"].diff())
    frame["dmag"] = per_band["mag"].diff()
    per_band = frame.groupby(["obj_id", "band"], sort=False)
    frame["log_dt_prev"] = per_band["log_dt"].shift()
    frame["dmag_prev"] = per_band["dmag"].shift()
    # cumulative mean magnitude per band, one column per band, forward-filled inside the object
    frame["mean"] = per_band["mag"].cumsum() / (per_band.cumcount() + 1)
    means = frame.pivot(columns="band", values="mean").reindex(columns=range(n_bands))
    means = means.groupby(frame["obj_id"]).ffill()
    for a in range(n_bands):
        for b in range(a + 1, n_bands):
            frame[f"colour_{a}_{b}"] = (means[a] - means[b]).fillna(0.0)
    first_t = frame.groupby("obj_id")["t"].transform("first")
    rows = frame[frame["log_dt_prev"].notna()].copy()
    since_previous_row = rows.groupby("obj_id")["t"].diff().fillna(rows["t"] - first_t[rows.index])
    rows["dt_central"] = np.log10(1.0 + since_previous_row.clip(lower=0.0))
    return rows


def as_frame(curves: LightCurves) -> pd.DataFrame:
    return pd.DataFrame({"obj_id": curves.obj_id, "band": curves.band.astype(np.int64), "t": curves.t,
                         "mag": curves.mag.astype(np.float64)})


def check_against_pandas(inputs: ModelInputs, rows: pd.DataFrame, n_bands: int) -> None:
    """The baseline computes the same features: equal up to float32 rounding."""
    assert len(rows) == len(inputs.band)
    window = rows[["log_dt_prev", "log_dt", "dmag_prev", "dmag"]].to_numpy()
    np.testing.assert_allclose(inputs.rows, window, rtol=1e-6, atol=1e-6)
    colour_names = [f"colour_{a}_{b}" for a in range(n_bands) for b in range(a + 1, n_bands)]
    np.testing.assert_allclose(inputs.colours, rows[colour_names].to_numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inputs.dt_central, rows["dt_central"].to_numpy(), rtol=1e-6, atol=1e-6)


def check_inputs(inputs: ModelInputs, curves: LightCurves) -> None:
    assert inputs.n_objects == curves.n_objects
    assert int(inputs.n_obs.sum()) + inputs.n_duplicates == len(curves)
    assert np.all(np.isfinite(inputs.rows)) and np.all(np.isfinite(inputs.colours))


@pytest.mark.parametrize("table", ["large_curves", "small_curves"])
def test_preprocess_mbfast(benchmark, table: str, request: pytest.FixtureRequest,  # noqa: ANN001 (fixture)
                           record_throughput: Callable[[int, str], None]) -> None:
    curves: LightCurves = request.getfixturevalue(table)
    benchmark.group = GROUP
    preprocess(curves.object(0), N_SKIP)  # compile (or load the cache) outside the timing
    inputs = benchmark.pedantic(preprocess, args=(curves, N_SKIP), rounds=5, warmup_rounds=1)
    record_throughput(len(curves), f"mbfast {len(curves) / 1e6:.0f}M")
    check_inputs(inputs, curves)


def test_preprocess_pandas(benchmark, small_curves: LightCurves,  # noqa: ANN001 (fixture)
                           record_throughput: Callable[[int, str], None]) -> None:
    benchmark.group = GROUP
    frame = as_frame(small_curves)
    n_bands = len(small_curves.bands)
    rows = benchmark.pedantic(preprocess_pandas, args=(frame, n_bands), rounds=3, warmup_rounds=0)
    record_throughput(len(small_curves), "pandas")
    check_against_pandas(preprocess(small_curves, N_SKIP), rows, n_bands)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_preprocess_mbfast_threads(benchmark, small_curves: LightCurves, num_threads: int,  # noqa: ANN001
                                   record_throughput: Callable[[int, str], None]) -> None:
    if num_threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"Numba has {numba.config.NUMBA_NUM_THREADS} thread(s) here")
    benchmark.group = f"{GROUP}/threads"
    preprocess(small_curves.object(0), N_SKIP)
    benchmark.pedantic(preprocess, args=(small_curves, N_SKIP), kwargs={"num_threads": num_threads},
                       rounds=5, warmup_rounds=1)
    record_throughput(len(small_curves), f"mbfast {num_threads} thread(s)")
