from __future__ import annotations

import pytest

import numpy as np

from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.model.layout import weight_layout


def test_json_round_trip_keeps_every_field(small_config: ModelConfig) -> None:
    assert ModelConfig.from_json(small_config.to_json()) == small_config


def test_colour_pairs_are_lexicographic_and_final_width_counts_them() -> None:
    config = ModelConfig(survey="ztf", bands=("g", "r", "i"), class_names=("a", "b"), central_hidden=16)
    assert config.colour_pairs == ((0, 1), (0, 2), (1, 2))
    assert config.final_width == 16 + 3 + 1


def test_unknown_config_field_is_refused(small_config: ModelConfig) -> None:
    text = small_config.to_json().replace('"band_hidden"', '"future_field": 1, "band_hidden"')
    with pytest.raises(ValueError, match="unknown fields \\['future_field'\\]"):
        ModelConfig.from_json(text)


@pytest.mark.parametrize("field, value", [("band_hidden", 0), ("n_skip", -1), ("bands", ("g", "g")),
                                          ("layernorm_eps", 0.0), ("batchnorm_eps", float("nan"))])
def test_bad_config_values_raise(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        arguments: dict[str, object] = {"survey": "ztf", "bands": ("g", "r"), "class_names": ("a", "b")}
        ModelConfig(**{**arguments, field: value})


def test_band_lstm_parameter_count_of_the_paper_ztf_shape() -> None:
    """ZTF shape (L=3, H=128), counted by hand: layer 1 4H(4 + H) + 8H, layers 2-3 4H(2H) + 8H each
    (two bias vectors per LSTM as PyTorch stores them)."""
    config = ModelConfig(survey="ztf", bands=("g", "r"), class_names=tuple("abcdefghijklmno"), band_hidden=128,
                         band_layers=3, central_hidden=128, central_layers=2,
                         regression_targets=(RegressionTarget("teff", 5000.0, 1000.0),))
    sizes = dict(weight_layout(config))
    lstm = sum(int(np.prod(shape)) for name, shape in sizes.items()
               if name.startswith("bands.0.stack.lstm"))
    hidden = 128
    assert lstm == 4 * hidden * (4 + hidden) + 8 * hidden + 2 * (4 * hidden * 2 * hidden + 8 * hidden)


def test_the_engine_reads_exactly_the_config_fields_python_writes() -> None:
    from dataclasses import fields

    from mbfast import _core
    assert sorted(_core.CONFIG_FIELDS) == sorted(field.name for field in fields(ModelConfig))
