"""Shared fixtures: small model configs and random-weight model files made without torch; where the full data
sets are (tests/support/shared_data.py)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.model.layout import random_weights
from mbfast.model.modelfile import write_model
from tests.support.shared_data import VARIABLE, locate


def pytest_configure(config: pytest.Config) -> None:
    # the loaders (mbfast.train.datasets.shared_data_dir) read the folder the tests' shared_data() checked
    where = locate()
    if where.expected:
        os.environ[VARIABLE] = str(where.folder)


def pytest_report_header(config: pytest.Config) -> str:
    where = locate()
    if where.expected:
        return f"full data sets: {where.folder} ({where.found_by}); missing data fails"
    return f"full data sets: none ({VARIABLE} unset, no ../shared/data): the tests that need them skip"


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
    write_model(path, small_config, random_weights(small_config))
    return path


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny torch models: one thread is fastest, and several spin-wait badly on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
