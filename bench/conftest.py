"""Benchmark session setup: collects bench_*.py, adds --bench-obs, builds the synthetic tables once, prints ratios.

`pytest bench` runs every benchmark; `pytest bench --benchmark-disable` runs each once as a smoke test.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mbfast.datasets import PLASTICC_DIR, load_plasticc
from mbfast.synth import resample
from mbfast.table import LightCurves

# observations/s of each benchmark in this session, for the summary (name -> obs/s)
THROUGHPUT: dict[str, float] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-obs", type=int, default=10_000_000,
                     help="observations in the synthetic table of the large benchmarks (default 10 M)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # bench files are named bench_*.py, which pytest's default python_files (test_*.py) does not collect;
    # a file named on the command line is already collected by pytest itself
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def synthetic(source: LightCurves, n_obs: int, seed: int) -> LightCurves:
    """About `n_obs` observations resampled from `source` (whole objects, so within one object of n_obs)."""
    mean_length = len(source) / source.n_objects
    return resample(source, max(1, round(n_obs / mean_length)), seed)


@pytest.fixture(scope="session")
def plasticc_curves() -> LightCurves:
    if not (PLASTICC_DIR / "plasticc_train_lightcurves.parquet").exists():
        pytest.skip(f"PLAsTiCC not found in {PLASTICC_DIR}")
    return load_plasticc().curves


@pytest.fixture(scope="session")
def bench_obs(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--bench-obs"))


@pytest.fixture(scope="session")
def large_curves(plasticc_curves: LightCurves, bench_obs: int) -> LightCurves:
    """--bench-obs observations (default 10 M) resampled from PLAsTiCC, sorted by (obj_id, t, band)."""
    return synthetic(plasticc_curves, bench_obs, seed=0)


@pytest.fixture(scope="session")
def small_curves(plasticc_curves: LightCurves, bench_obs: int) -> LightCurves:
    """min(1 M, --bench-obs) observations: the size the slow baselines run on."""
    return synthetic(plasticc_curves, min(1_000_000, bench_obs), seed=1)


@pytest.fixture
def record_throughput(benchmark) -> Callable[[int, str], None]:  # noqa: ANN001 (pytest-benchmark fixture)
    """Call with the observations processed per round, after timing: stores obs/s of the median round in
    benchmark.extra_info and in the session summary under "<group>/<label>" (nothing when disabled)."""
    def record(n_obs: int, label: str) -> None:
        benchmark.extra_info["observations"] = n_obs
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable
            return
        obs_per_s = n_obs / stats.stats.median
        benchmark.extra_info["obs_per_s"] = obs_per_s
        THROUGHPUT[f"{benchmark.group}/{label}"] = obs_per_s
    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not THROUGHPUT:
        return
    terminalreporter.section("throughput (median, observations/s)")
    for name, value in THROUGHPUT.items():
        terminalreporter.write_line(f"{name:<40} {value / 1e6:10.2f} M obs/s")
    for name, value in THROUGHPUT.items():
        group = name.rsplit("/", 1)[0]
        baseline = THROUGHPUT.get(f"{group}/pandas")
        if baseline and name != f"{group}/pandas":
            terminalreporter.write_line(f"{name} / {group}/pandas: {value / baseline:.1f}x")
