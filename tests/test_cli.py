from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mbfast.cli import main
from mbfast.lightcurves.sample import SAMPLE_DIR


def test_demo_classifies_the_shipped_sample_with_the_default_model(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "demo.parquet"
    assert main(["demo", "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    table = pq.read_table(output)
    assert table.num_rows == 308
    assert "objects: 308" in printed
    held_out = [line for line in printed.splitlines() if "held-out test objects" in line]
    accuracy = float(held_out[0].rsplit(":", 1)[1])
    assert accuracy > 3 / 14  # well above chance (1/14) for the shipped model on unseen objects


def test_demo_without_output_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    assert list(tmp_path.iterdir()) == []
    printed = capsys.readouterr().out
    assert "objects: 308" in printed and "wrote" not in printed


def test_classify_command_reports_bad_input_with_exit_code_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["classify", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "out.parquet")]) == 2
    assert "missing.parquet does not exist" in capsys.readouterr().err


def test_info_runs_as_a_console_script() -> None:
    result = subprocess.run([sys.executable, "-m", "mbfast.cli", "info"], capture_output=True, text=True, check=True)
    info = json.loads(result.stdout)
    assert set(info) >= {"cuda", "cuda_available", "simd", "compiler"}


def test_default_model_metadata_lists_its_held_out_objects() -> None:
    meta = json.loads((SAMPLE_DIR / "lsst.json").read_text())
    assert len(meta["split"]["test_obj_ids"]) == meta["split"]["test"]
