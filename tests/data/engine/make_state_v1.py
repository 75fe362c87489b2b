"""Regenerate the state-format-1 fixture: a tiny random model, a few observations, the saved state and the
predictions it must reproduce. Run from the repo root: python tests/data/engine/make_state_v1.py

The state file is committed so a change of the state byte layout without a format bump (or without a loader for
format 1) fails tests/test_engine_state.py::test_state_format_1_fixture_still_loads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mbfast.engine import Engine
from tests.support.engine import small_config, write_random_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    config = small_config(bands=("g", "r"), band_hidden=3, band_layers=2, central_hidden=4, central_layers=1,
                          translation_layers=1, classifier_hidden=3, classifier_layers=1, band_head_hidden=2,
                          regression_hidden=2, regression_layers=1)
    model = write_random_model(HERE / "tiny_model.mbf", config, seed=7)
    engine = Engine.load(model, num_threads=1)
    rng = np.random.default_rng(7)
    n = 24
    obj_id = rng.integers(1, 4, n)
    band = rng.integers(0, 2, n)
    t = 60000.0 + np.cumsum(rng.uniform(0.1, 3.0, n))
    engine.step(obj_id, band, t, rng.normal(20.0, 0.5, n), rng.uniform(0.02, 0.2, n))
    engine.save_state(HERE / "state_v1.mbs")
    prediction = engine.predict([1, 2, 3])
    np.savez(HERE / "state_v1_expected.npz", probs=prediction.probs, embedding=prediction.embedding,
             regression=prediction.regression, n_obs=prediction.n_obs)


if __name__ == "__main__":
    main()
