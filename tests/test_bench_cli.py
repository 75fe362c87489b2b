"""`mbfast bench`: the report's numbers are consistent with each other and with the ZTF shape's cost, every asked
precision and batch size is timed, the table names the ratio's reference, each baseline that cannot run is named
with its reason, and nothing is written unless asked. The baselines ship in mbfast.benchmark; the timing tests
leave them out (they compile for minutes) by hiding their packages."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mbfast.benchmark.quick import bench_modules
from mbfast.benchmark.workloads import ZTF_CONFIG
from mbfast.cli import main
from mbfast.model.counts import model_info


@pytest.fixture
def no_baselines(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch, onnx, onnxruntime and threadpoolctl fail to import, as where the extras are not installed."""
    for package in ("torch", "onnx", "onnxruntime", "threadpoolctl"):
        monkeypatch.setitem(sys.modules, package, None)


def test_baselines_load_from_the_installed_package() -> None:
    modules, missing = bench_modules()
    assert missing == {}
    assert {name: module.__name__ for name, module in modules.items()} == {  # type: ignore[attr-defined]
        "roofline": "mbfast.benchmark.roofline", "torch_step": "mbfast.benchmark.torch_step",
        "onnx_step": "mbfast.benchmark.onnx_step"}


@pytest.mark.usefixtures("no_baselines")
def test_bench_times_each_precision_and_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--batch", "1", "3", "--threads", "2", "--precision", "bf16", "fp32",
                 "--max-rounds", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    flops = model_info(ZTF_CONFIG)["flops_per_observation"]
    assert report["flops_per_observation"] == flops == 1_418_496
    assert report["num_threads"] == 2 and report["precisions"] == ["bf16", "fp32"]
    assert [(r["batch"], r["implementation"]) for r in report["results"]] == [
        (1, "mbfast-bf16"), (1, "mbfast"), (3, "mbfast-bf16"), (3, "mbfast")]
    for result in report["results"]:
        assert result["obs_per_s"] == pytest.approx(result["batch"] / result["seconds"])
        assert result["gflops"] == pytest.approx(result["obs_per_s"] * flops / 1e9)
        assert result["ceiling_fraction"] is None  # no ceiling measured: no made-up fraction
    hint = "(pip install 'mbfast[train,bench]')"
    torch_reason = f"import of torch halted; None in sys.modules {hint}"
    assert report["missing"] == {"gemm ceiling": f"import of threadpoolctl halted; None in sys.modules {hint}",
                                 "torch": torch_reason, "torch.compile": torch_reason, "onnxruntime": torch_reason}
    table = capsys.readouterr().out
    assert "mbfast-bf16 x" in table  # the first precision is the ratio's reference
    ratios = {(int(cells[0]), cells[1]): cells[3] for cells in (line.split() for line in table.splitlines())
              if len(cells) > 3 and cells[0].isdigit()}
    assert set(ratios) == {(1, "mbfast-bf16"), (1, "mbfast"), (3, "mbfast-bf16"), (3, "mbfast")}
    assert ratios[1, "mbfast-bf16"] == ratios[3, "mbfast-bf16"] == "1.00x"  # bf16 against itself
    assert f"not run here:\n  gemm ceiling: import of threadpoolctl halted" in table
    assert f"\n  torch.compile: {torch_reason}\n" in table


@pytest.mark.usefixtures("no_baselines")
def test_bench_writes_nothing_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--batch", "2", "--max-rounds", "1"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "wrote" not in capsys.readouterr().out


@pytest.mark.usefixtures("no_baselines")
def test_bench_refuses_an_unknown_precision(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--batch", "1", "--precision", "fp8"]) != 0
    assert "mbfast bench: error: precision on cpu must be one of ('fp32', 'bf16'" in capsys.readouterr().err
