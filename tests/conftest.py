"""Shared fixtures: small model configs and random-weight model files made without torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mbfast.config import ModelConfig, RegressionTarget
from mbfast.layout import weight_layout
from mbfast.modelfile import write_model


def random_tensors(config: ModelConfig, seed: int = 0, scale: float = 0.3) -> dict[str, np.ndarray]:
    """Weights for `config` with non-trivial BatchNorm running statistics."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in weight_layout(config):
        if name.endswith("running_var"):
            tensors[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.endswith("running_mean"):
            tensors[name] = rng.normal(0.0, 0.5, shape).astype(np.float32)
        else:
            tensors[name] = rng.normal(0.0, scale, shape).astype(np.float32)
    return tensors


@pytest.fixture
def small_config() -> ModelConfig:
    return ModelConfig(survey="lsst", bands=("u", "g", "r", "i", "z", "y"),
                       class_names=("SNIa", "SNII", "AGN", "EB"), band_hidden=8, band_layers=3,
                       central_hidden=8, central_layers=2, classifier_hidden=8, band_head_hidden=8,
                       regression_hidden=8, regression_targets=(RegressionTarget("redshift", 0.5, 0.3),),
                       n_skip=2)


@pytest.fixture
def small_model_path(tmp_path: Path, small_config: ModelConfig) -> Path:
    path = tmp_path / "small.mbf"
    write_model(path, small_config, random_tensors(small_config))
    return path
