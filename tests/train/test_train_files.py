"""`mbfast train --data CURVES --labels LABELS --survey S` on one's own files, then resume, evaluate and export
on the same run (issue: training on one's own labelled data). Uses the PLAsTiCC sample shipped with mbfast."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from mbfast.cli import main  # noqa: E402
from mbfast.lightcurves.sample import load_sample  # noqa: E402
from mbfast.train.datasets import rebanded  # noqa: E402
from mbfast.lightcurves.io import write_parquet  # noqa: E402
from mbfast.model.modelfile import read_model  # noqa: E402
from mbfast.lightcurves.surveys import ZTF  # noqa: E402

TINY_FLAGS = ["--band-hidden", "4", "--band-layers", "1", "--central-hidden", "4", "--central-layers", "1",
              "--translation-layers", "1", "--classifier-hidden", "4", "--classifier-layers", "1",
              "--band-head-hidden", "4", "--band-head-layers", "1", "--regression-hidden", "4",
              "--regression-layers", "1", "--batch-size", "32", "--steps-wait", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def own_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample's g and r photometry as a ZTF-like table + a labels CSV with three classes and a redshift."""
    folder = tmp_path_factory.mktemp("own")
    sample = rebanded(load_sample(), {"g": "g", "r": "r"}, ZTF.bands, "ztf")
    names = {"SNIa": "Ia", "SNII": "II", "AGN": "AGN"}
    chosen = np.flatnonzero(np.isin(np.array(sample.class_names)[sample.labels], list(names)))
    kept = sample.subset(chosen)
    write_parquet(kept.curves, folder / "curves.parquet")
    lines = ["obj_id,label,redshift"] + [
        f"{obj_id},{names[kept.class_names[label]]},{'' if np.isnan(z) else z}"
        for obj_id, label, z in zip(kept.curves.object_ids, kept.labels, kept.targets["redshift"])]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "curves.parquet", folder / "labels.csv"


def test_train_resume_evaluate_export_on_own_files(tmp_path: Path, own_files: tuple[Path, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    curves, labels = own_files
    run = tmp_path / "run"
    assert main(["train", str(run), "--data", str(curves), "--labels", str(labels), "--survey", "ztf",
                 "--target", "redshift", "--max-epochs", "1", *TINY_FLAGS]) == 0
    config = read_model(run / "model.mbf").config
    assert config.survey == "ztf" and config.bands == ("g", "r", "i")
    assert config.class_names == ("AGN", "II", "Ia")
    assert [target.name for target in config.regression_targets] == ["redshift"]
    assert main(["train", str(run), "--resume", "--max-epochs", "2"]) == 0
    assert len(json.loads((run / "history.json").read_text())) == 2
    capsys.readouterr()
    assert main(["evaluate", str(run), str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    with np.load(run / "split.npz") as split:
        assert report["n_objects"] == len(split["test"]) > 0
    assert main(["export", str(run), str(tmp_path / "exported.mbf")]) == 0
    assert read_model(tmp_path / "exported.mbf").config.class_names == ("AGN", "II", "Ia")


def test_train_on_files_needs_both_files(tmp_path: Path, own_files: tuple[Path, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    curves, _ = own_files
    assert main(["train", str(tmp_path / "run"), "--data", str(curves), "--max-epochs", "1"]) == 2
    assert "needs the light curves (--data) and the labels (--labels)" in capsys.readouterr().err
