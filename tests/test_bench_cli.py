"""`mbfast bench`: the report's numbers are consistent with each other and with the ZTF shape's cost, every asked
precision and batch size is timed, and the table names the ratio's reference. Baselines (torch, ONNX Runtime)
are left out here (they compile for minutes): bench_modules is replaced by an empty set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbfast import bench_cli
from mbfast.cli import main
from mbfast.costs import model_info


def test_bench_times_each_precision_and_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench_cli, "bench_modules", lambda: {})
    out = tmp_path / "bench.json"
    assert main(["bench", "--batch", "1", "3", "--threads", "2", "--precision", "bf16", "fp32",
                 "--max-rounds", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    flops = model_info(bench_cli.ZTF_CONFIG)["flops_per_observation"]
    assert report["flops_per_observation"] == flops == 1_418_496
    assert report["num_threads"] == 2 and report["precisions"] == ["bf16", "fp32"]
    assert [(r["batch"], r["implementation"]) for r in report["results"]] == [
        (1, "mbfast-bf16"), (1, "mbfast"), (3, "mbfast-bf16"), (3, "mbfast")]
    for result in report["results"]:
        assert result["obs_per_s"] == pytest.approx(result["batch"] / result["seconds"])
        assert result["gflops"] == pytest.approx(result["obs_per_s"] * flops / 1e9)
        assert result["ceiling_fraction"] is None  # no ceiling measured: no made-up fraction
    assert report["missing"] == ["gemm ceiling", "onnxruntime", "torch", "torch.compile"]
    table = capsys.readouterr().out
    assert "mbfast-bf16 x" in table  # the first precision is the ratio's reference
    ratios = {(int(cells[0]), cells[1]): cells[3] for cells in (line.split() for line in table.splitlines())
              if len(cells) > 3 and cells[0].isdigit()}
    assert set(ratios) == {(1, "mbfast-bf16"), (1, "mbfast"), (3, "mbfast-bf16"), (3, "mbfast")}
    assert ratios[1, "mbfast-bf16"] == ratios[3, "mbfast-bf16"] == "1.00x"  # bf16 against itself
    assert "not run here: gemm ceiling, onnxruntime, torch, torch.compile" in table


def test_bench_refuses_an_unknown_precision(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench_cli, "bench_modules", lambda: {})
    assert main(["bench", "--batch", "1", "--precision", "fp8", "--json", ""]) != 0
    assert "mbfast bench: error: precision on cpu must be one of ('fp32', 'bf16'" in capsys.readouterr().err
