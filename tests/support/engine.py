"""Shared helpers for the engine tests (no tests here): small odd-width configs, random-weight model files
(mbfast.model.layout.random_weights, no torch) and a few real PLAsTiCC light curves."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.model.modelfile import write_model
from mbfast.lightcurves.table import LightCurves
from mbfast.model.layout import random_weights

LSST_BANDS = ("u", "g", "r", "i", "z", "y")


def small_config(bands: tuple[str, ...] = LSST_BANDS, **overrides: object) -> ModelConfig:
    """Odd widths on purpose: they exercise the GEMM's ragged column tiles."""
    settings: dict[str, object] = dict(
        survey="LSST", bands=bands, class_names=tuple(f"class{c}" for c in range(5)),
        band_hidden=10, band_layers=3, central_hidden=12, central_layers=2, translation_layers=2,
        classifier_hidden=20, classifier_layers=2, band_head_hidden=8, band_head_layers=1,
        regression_hidden=9, regression_layers=2,
        regression_targets=(RegressionTarget("redshift", 0.4, 0.25), RegressionTarget("log_mass", 10.0, 1.5)))
    settings.update(overrides)
    return ModelConfig(**settings)  # type: ignore[arg-type]


def write_random_model(path: Path, config: ModelConfig | None = None, seed: int = 0) -> Path:
    config = config or small_config()
    write_model(path, config, random_weights(config, seed))
    return path


@lru_cache(maxsize=1)
def plasticc_sample(n_objects: int = 20, seed: int = 3) -> LightCurves:
    """`n_objects` random PLAsTiCC light curves (LSST ugrizy) of the shipped sample, table order."""
    from mbfast.lightcurves.sample import load_sample

    curves = load_sample().curves
    picks = np.sort(np.random.default_rng(seed).choice(curves.n_objects, size=n_objects, replace=False))
    return curves.select(picks)


def time_ordered_rows(curves: LightCurves) -> np.ndarray:
    """Row indices of `curves` in global time order (objects interleaved, as a survey stream delivers them)."""
    return np.lexsort((curves.band, curves.obj_id, curves.t))
