"""Shared fixtures: small model configs and random-weight model files made without torch."""
from __future__ import annotations

from pathlib import Path

from collections.abc import Iterator

import pytest

from mbfast.bench_cli import random_weights as random_tensors
from mbfast.config import ModelConfig, RegressionTarget
from mbfast.modelfile import write_model


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


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny torch models: one thread is fastest, and several spin-wait badly on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
