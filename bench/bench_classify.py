"""Whole-light-curve throughput: Engine.classify on synthetic curves resampled from PLAsTiCC (mbfast.lightcurves.synth),
against the same model and weights in PyTorch eager.

The ZTF model sizes (mbfast.benchmark.workloads.ZTF_CONFIG) with PLAsTiCC's six LSST bands, random weights.
Default 100 k curves (--bench-curves; a --benchmark-disable smoke run uses 200). Only classify is timed; outputs
checked after.
extra_info: obs/s (observations in the table), curves/s, GFLOP/s of the predicted rows and the ceiling fraction.

The baseline is what a broker would otherwise run for a nightly reclassification: mbfast.train.preprocess (Numba) and the
training model's whole-sequence forward (mbfast.train.loop.predict: padded batches of 512 objects of similar
length, eval mode, no autograd) on the weights read back from the same file; its final probabilities are checked
against Engine.classify's.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mbfast.benchmark.workloads import ZTF_CONFIG
from mbfast.model.layout import random_weights
from mbfast.model.counts import model_info
from mbfast.engine import Engine
from mbfast.model.modelfile import write_model
from mbfast.lightcurves.synth import resample
from mbfast.lightcurves.table import LightCurves


@pytest.fixture(scope="module")
def curves(request: pytest.FixtureRequest, plasticc_curves: LightCurves) -> LightCurves:
    smoke = request.config.getoption("benchmark_disable")
    n_curves = 200 if smoke else int(request.config.getoption("--bench-curves"))
    return resample(plasticc_curves, n_curves, seed=2)


@pytest.fixture(scope="module")
def model_path(curves: LightCurves, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ZTF sizes with the curves' bands, random weights: the one file both implementations read."""
    config = dataclasses.replace(ZTF_CONFIG, survey="lsst", bands=tuple(curves.bands))
    path = tmp_path_factory.mktemp("classify") / "lsst_ztf_sizes.mbf"
    write_model(path, config, random_weights(config))
    return path


@pytest.fixture(scope="module")
def mbfast_probs() -> dict[str, np.ndarray]:
    """Engine.classify's final probabilities, kept for the baseline's parity check."""
    return {}


def test_classify_mbfast(benchmark, curves: LightCurves, model_path: Path, bench_threads: int,  # noqa: ANN001
                         gemm_ceiling: dict, record_throughput: Callable[[int, str], None],
                         mbfast_probs: dict[str, np.ndarray]) -> None:
    engine = Engine.load(model_path, num_threads=bench_threads)
    config = engine.config
    benchmark.group = f"classify/curves={curves.n_objects}"
    prediction = benchmark.pedantic(engine.classify, args=(curves,), rounds=3, warmup_rounds=0)
    record_throughput(len(curves), "mbfast")
    # predicted rows = observations from the 3rd of their band on (repeats at equal t aside, a few)
    n_obs = prediction.n_obs.astype(np.int64)
    window_rows = int(np.maximum(n_obs - 2, 0).sum())
    benchmark.extra_info["curves"] = curves.n_objects
    benchmark.extra_info["window_rows"] = window_rows
    if "obs_per_s" in benchmark.extra_info:
        seconds = len(curves) / benchmark.extra_info["obs_per_s"]
        gflops = window_rows * model_info(config)["flops_per_observation"] / seconds / 1e9  # type: ignore[operator]
        benchmark.extra_info.update(curves_per_s=curves.n_objects / seconds, gflops=gflops,
                                    ceiling_fraction=gflops / float(gemm_ceiling["gflops"]))
    assert len(prediction) == curves.n_objects
    has_row = (n_obs >= 3).any(axis=1)
    assert np.isfinite(prediction.probs[has_row]).all()
    mbfast_probs["probs"] = prediction.probs


def test_classify_torch(benchmark, curves: LightCurves, model_path: Path, bench_threads: int,  # noqa: ANN001
                        record_throughput: Callable[[int, str], None], mbfast_probs: dict[str, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    from mbfast.train.export import load_torch_model
    from mbfast.train.loop import predict
    from mbfast.train.preprocess import preprocess

    torch.set_num_threads(bench_threads)
    model = load_torch_model(model_path)

    def classify() -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            inputs = preprocess(curves, model.config.n_skip, num_threads=bench_threads)
            objects = np.flatnonzero(inputs.n_rows > 0)
            return objects, predict(model, inputs, objects).final_probs

    benchmark.group = f"classify/curves={curves.n_objects}"
    objects, final = benchmark.pedantic(classify, rounds=1, warmup_rounds=0)
    record_throughput(len(curves), "torch")
    if "probs" in mbfast_probs:  # the same computation: Engine.classify's probabilities to float32 rounding
        np.testing.assert_allclose(final, mbfast_probs["probs"][objects], rtol=0, atol=1e-4)
