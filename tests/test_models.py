"""The shipped models, chosen by name (mbfast.models), their model cards, and the stream's choice by survey."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import mbfast
from mbfast import models
from mbfast.cli import main
from mbfast.model.modelfile import read_model, write_model

ALERTS = Path(__file__).parent / "data" / "alerts"
CARD_KEYS = {"name", "data", "classes", "recipe", "split", "metrics_simulated_test", "metrics_real", "limits"}


@pytest.mark.parametrize("name, survey, bands", [("lsst", "plasticc", ("u", "g", "r", "i", "z", "y")),
                                                 ("ztf", "ztf", ("g", "r", "i"))])
def test_shipped_models_load_by_name_with_a_card(name: str, survey: str, bands: tuple[str, ...]) -> None:
    engine = mbfast.Engine.load(name)
    assert Path(engine.model_path) == models.shipped_path(name)
    assert engine.bands == bands and engine.config.survey == survey
    card = engine.config.card
    assert set(card) == CARD_KEYS and card["name"] == name
    assert card["classes"] == list(engine.class_names)
    for key in ("macro_recall", "macro_f1", "macro_f1_bf16", "macro_f1_int8"):
        assert 0.0 < card["metrics_simulated_test"][key] <= 1.0
    assert card["metrics_real"]["n_objects"] > 50 and "REAL" in card["metrics_real"]["data"]
    assert models.shipped_path(name).stat().st_size <= 5 << 20  # each shipped model at most 5 MB


def test_default_model_is_lsst() -> None:
    assert Path(mbfast.Engine.load().model_path) == models.shipped_path("lsst") == models.resolve(None)
    assert models.resolve("my/model.mbf") == Path("my/model.mbf")


def test_card_round_trips_and_the_engine_ignores_it(tmp_path: Path, small_model_path: Path) -> None:
    model = read_model(small_model_path)
    with_card = tmp_path / "carded.mbf"
    write_model(with_card, replace(model.config, card={"name": "x", "limits": ["a"]}), model.tensors)
    assert read_model(with_card).config.card == {"name": "x", "limits": ["a"]}
    curves_engine = [mbfast.Engine.load(path) for path in (small_model_path, with_card)]
    rows = dict(obj_ids=[1, 1, 1, 1], band=["g"] * 4, t=[60000.0, 60001.0, 60002.0, 60003.0],
                mag=[19.0, 19.1, 19.3, 19.2], err=[0.05] * 4)
    first, second = (engine.step(**rows).probs for engine in curves_engine)
    np.testing.assert_array_equal(first, second)
    # a file without a card keeps the bytes it had before cards existed: no "card" key in its config JSON
    assert '"card"' not in model.config.to_json()


def test_info_prints_a_shipped_models_card(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "ztf"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["bands"] == ["g", "r", "i"] and shown["card"]["name"] == "ztf"
    assert main(["info", "--model", "no/such/model.mbf"]) == 2


@pytest.mark.parametrize("alerts, classes_of", [("ztf/ztf_v3p3_3_packets_deflate.avro", "ztf"),
                                                ("lsst/rubin_lsstcam_v10_0_25_alerts.avro", "lsst")])
def test_stream_without_model_takes_the_surveys_model(tmp_path: Path, alerts: str, classes_of: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scores.parquet"
    assert main(["stream", str(ALERTS / alerts), "--state", str(tmp_path / "state"), "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["alerts"] > 0
    class_names = mbfast.Engine.load(classes_of).class_names
    assert [name for name in pq.read_schema(out).names if name in class_names] == list(class_names)
