"""Benchmark session setup: collects bench_*.py, adds --bench-obs / --bench-threads, builds the synthetic tables
and measures the GEMM ceiling once, prints throughput and ratios.

`pytest bench` runs every benchmark; `pytest bench --benchmark-disable` runs each once as a smoke test.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mbfast.benchmark.workloads import ZTF_CONFIG
from mbfast.model.layout import random_weights
from mbfast.lightcurves.sample import load_sample
from mbfast.train.datasets import load_plasticc, shared_data_dir
from mbfast.engine import DEFAULT_MODEL
from mbfast.model.modelfile import ModelFile, read_model, write_model
from mbfast.lightcurves.synth import resample
from mbfast.lightcurves.table import LightCurves

# observations/s of each benchmark in this session, for the summary (name -> (median, best round))
THROUGHPUT: dict[str, tuple[float, float]] = {}
CEILING: dict[str, object] = {}  # the GEMM ceiling measured in this session (gemm_ceiling), for the summary
SOURCE: list[str] = []  # what the synthetic tables were resampled from, for the summary


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-obs", type=int, default=10_000_000,
                     help="observations in the synthetic table of the large benchmarks (default 10 M)")
    parser.addoption("--bench-curves", type=int, default=100_000,
                     help="whole light curves classified by bench_classify.py (default 100 k)")
    parser.addoption("--bench-max-objects", type=int, default=1_000_000,
                     help="largest engine measured by bench_memory.py; larger sizes are extrapolated (default 1e6)")
    parser.addoption("--bench-threads", type=int, default=None,
                     help="threads of mbfast and of every baseline in the step benchmarks (default: all CPUs)")


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


@pytest.fixture(scope="module", params=("ztf", "default"))
def shape(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, ModelFile]:
    """The two model shapes of the step benchmarks: the paper's ZTF configuration with random weights, and the
    shipped default model."""
    if request.param == "default":
        path = DEFAULT_MODEL
    else:
        path = tmp_path_factory.mktemp("ztf") / "ztf.mbf"
        write_model(path, ZTF_CONFIG, random_weights(ZTF_CONFIG))
    return request.param, path, read_model(path)


@pytest.fixture(scope="session")
def ztf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The paper's ZTF shape with random weights, for the benchmarks that only need its shape."""
    path = tmp_path_factory.mktemp("ztf_model") / "ztf.mbf"
    write_model(path, ZTF_CONFIG, random_weights(ZTF_CONFIG))
    return path


@pytest.fixture(scope="session")
def plasticc_curves() -> LightCurves:
    """What the synthetic tables are resampled from: the full PLAsTiCC training set where the full data sets are
    (MBFAST_SHARED_DATA or ../shared/data; a file missing there is an error), else the shipped 308-object sample,
    whose length distribution differs (22 objects per class): the summary says which."""
    if shared_data_dir().is_dir():
        curves = load_plasticc().curves
        SOURCE.append(f"the PLAsTiCC training set ({curves.n_objects} objects)")
    else:
        curves = load_sample().curves
        SOURCE.append(f"the shipped PLAsTiCC sample ({curves.n_objects} objects; set MBFAST_SHARED_DATA to the "
                      f"full data sets to resample the whole training set)")
    return curves


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


@pytest.fixture(scope="session")
def bench_threads(request: pytest.FixtureRequest) -> int:
    threads = request.config.getoption("--bench-threads")
    return int(threads) if threads else len(os.sched_getaffinity(0))


@pytest.fixture(scope="session")
def gemm_ceiling(request: pytest.FixtureRequest) -> dict[str, object]:
    """mbfast.benchmark.roofline in a child process: 4096^2 fp32 GFLOP/s (1024^2 in a --benchmark-disable smoke run)."""
    from mbfast.benchmark.roofline import gemm_ceiling as measure

    smoke = request.config.getoption("benchmark_disable")
    ceiling = measure(1024 if smoke else 4096)
    blas = ceiling["blas"][0] if ceiling["blas"] else {}
    CEILING.update(gflops=ceiling["gflops"], n=ceiling["n"], kernel=blas.get("architecture"))
    return ceiling


@pytest.fixture
def record_throughput(benchmark) -> Callable[[int, str], None]:  # noqa: ANN001 (pytest-benchmark fixture)
    """Call with the observations processed per round, after timing: stores obs/s of the median and of the
    best round in benchmark.extra_info and in the session summary under "<group>/<label>" (not when disabled)."""
    def record(n_obs: int, label: str) -> None:
        benchmark.extra_info["observations"] = n_obs
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable
            return
        median, best = n_obs / stats.stats.median, n_obs / stats.stats.min
        benchmark.extra_info["obs_per_s"] = median
        benchmark.extra_info["obs_per_s_best"] = best
        THROUGHPUT[f"{benchmark.group}/{label}"] = (median, best)
    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SOURCE:
        terminalreporter.write_line(f"synthetic light curves resampled from {SOURCE[0]}")
    if not THROUGHPUT:
        return
    terminalreporter.section("throughput, M observations/s (median round, best round)")
    for name, (median, best) in THROUGHPUT.items():
        terminalreporter.write_line(f"{name:<40} {median / 1e6:8.2f} {best / 1e6:8.2f}")
    for name, (median, best) in THROUGHPUT.items():
        group = name.rsplit("/", 1)[0]
        baseline = THROUGHPUT.get(f"{group}/pandas")
        if baseline and name != f"{group}/pandas":
            terminalreporter.write_line(f"{name} / {group}/pandas: {median / baseline[0]:.1f}x (median), "
                                        f"{best / baseline[1]:.1f}x (best)")
        mbfast = THROUGHPUT.get(f"{group}/mbfast")
        if group.startswith(("step/", "classify/")) and mbfast and name != f"{group}/mbfast":
            terminalreporter.write_line(f"{group}: mbfast / {name.rsplit('/', 1)[1]}: {mbfast[0] / median:.2f}x "
                                        f"(median), {mbfast[1] / best:.2f}x (best)")
    if CEILING:
        terminalreporter.write_line(f"GEMM ceiling: {CEILING['gflops']:.1f} GFLOP/s ({CEILING['n']}^2 fp32, "
                                    f"OpenBLAS kernel {CEILING['kernel']})")
