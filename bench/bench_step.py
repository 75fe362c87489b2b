"""Step throughput: Engine.step against PyTorch eager, torch.compile and ONNX Runtime on the same weights.

Each group `step/batch=N/<shape>` holds the four implementations on N rows of N distinct objects, every row a
predicted one (objects pre-warmed with 2 observations per band; each timed round consumes the next pre-generated
observation per object, mbfast.benchmark.workloads.StepRounds). State gather/scatter is inside the timing, input
building is not. Shapes: the paper's ZTF configuration (random weights) and the shipped default model (skipped
until it exists).
extra_info: obs_per_s, gflops (mbfast.model.counts FLOPs per observation) and ceiling_fraction (mbfast.benchmark.roofline).
Baselines get ready window rows (no preprocessing); mbfast also forms them from (t, mag, err).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mbfast.benchmark.workloads import BATCH_SIZES, StepRounds, rounds_for
from mbfast.model.counts import model_info
from mbfast.engine import Engine, Status
from mbfast.model.modelfile import ModelFile



@pytest.fixture(scope="module")
def compiled_band_steps(shape: tuple[str, Path, ModelFile]) -> dict[str, object]:
    """torch.compile'd band steps of this shape, shared by every batch size (dynamic shapes), or the error."""
    torch_step = pytest.importorskip("mbfast.benchmark.torch_step")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {"band_steps": torch_step.compile_stepper(torch_step.TorchStepper(shape[2], 1)).band_steps}
    except Exception as error:  # noqa: BLE001
        return {"error": f"{type(error).__name__}: {error}"}


@pytest.fixture(scope="module")
def onnx_graphs(shape: tuple[str, Path, ModelFile]) -> list[bytes]:
    pytest.importorskip("onnxruntime")
    onnx_step = pytest.importorskip("mbfast.benchmark.onnx_step")
    return onnx_step.export_band_graphs(shape[2])


def run_rounds(benchmark, call: Callable[[int], object], batch: int) -> object:  # noqa: ANN001 (fixture)
    """Time `call(k)` on consecutive rounds k (1 warm-up + rounds_for(batch) timed); returns the last result."""
    counter = iter(range(rounds_for(batch) + 2))

    def setup() -> tuple[tuple[int], dict]:
        return (next(counter),), {}

    return benchmark.pedantic(call, setup=setup, rounds=rounds_for(batch), warmup_rounds=1)


def record(benchmark, record_throughput: Callable[[int, str], None], config: object, batch: int, label: str,  # noqa: ANN001
           ceiling: dict[str, object]) -> None:
    record_throughput(batch, label)
    obs_per_s = benchmark.extra_info.get("obs_per_s")
    if obs_per_s is None:  # --benchmark-disable
        return
    gflops = obs_per_s * model_info(config)["flops_per_observation"] / 1e9  # type: ignore[operator]
    benchmark.extra_info["gflops"] = gflops
    benchmark.extra_info["ceiling_gflops"] = ceiling["gflops"]
    benchmark.extra_info["ceiling_fraction"] = gflops / float(ceiling["gflops"])  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_step_mbfast(benchmark, shape, batch: int, precision: str, bench_threads: int,  # noqa: ANN001
                     gemm_ceiling: dict, record_throughput: Callable[[int, str], None]) -> None:
    name, path, model = shape
    benchmark.group = f"step/batch={batch}/{name}"
    rounds = StepRounds.make(model.config, batch, rounds_for(batch) + 2)
    engine = Engine.load(path, num_threads=bench_threads, precision=precision)
    rounds.warm(engine)
    benchmark.extra_info["cpu_kernel"] = engine.cpu_kernel
    result = run_rounds(benchmark, lambda k: engine.step(*rounds.engine_args(k), outputs=("probs",)), batch)
    label = "mbfast" if precision == "fp32" else f"mbfast-{precision}"
    record(benchmark, record_throughput, model.config, batch, label, gemm_ceiling)
    assert (result.status == Status.PREDICTED).all()
    assert np.isfinite(result.probs).all()


@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_step_torch(benchmark, shape, batch: int, bench_threads: int, gemm_ceiling: dict,  # noqa: ANN001
                    record_throughput: Callable[[int, str], None]) -> None:
    torch = pytest.importorskip("torch")
    from mbfast.benchmark.torch_step import TorchStepper

    name, _, model = shape
    benchmark.group = f"step/batch={batch}/{name}"
    torch.set_num_threads(bench_threads)
    stepper = TorchStepper(model, batch)
    args = [torch.from_numpy(a) for a in StepRounds.make(model.config, batch, 1).baseline_args(0)]
    probs = run_rounds(benchmark, lambda k: stepper.step(*args), batch)
    record(benchmark, record_throughput, model.config, batch, "torch", gemm_ceiling)
    assert torch.isfinite(probs).all()


@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_step_torch_compile(benchmark, shape, batch: int, bench_threads: int, gemm_ceiling: dict,  # noqa: ANN001
                            compiled_band_steps: dict, record_throughput: Callable[[int, str], None]) -> None:
    torch = pytest.importorskip("torch")
    from mbfast.benchmark.torch_step import TorchStepper

    name, _, model = shape
    benchmark.group = f"step/batch={batch}/{name}"
    if "error" in compiled_band_steps:
        pytest.skip(f"torch.compile failed here: {compiled_band_steps['error']}")
    torch.set_num_threads(bench_threads)
    stepper = TorchStepper(model, batch)
    stepper.band_steps = compiled_band_steps["band_steps"]
    args = [torch.from_numpy(a) for a in StepRounds.make(model.config, batch, 1).baseline_args(0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stepper.step(*args)  # compiles (or specialises for this size) outside the timing
        except Exception as error:  # noqa: BLE001
            pytest.skip(f"torch.compile failed here: {type(error).__name__}: {error}")
    probs = run_rounds(benchmark, lambda k: stepper.step(*args), batch)
    record(benchmark, record_throughput, model.config, batch, "torch.compile", gemm_ceiling)
    assert torch.isfinite(probs).all()


@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_step_onnxruntime(benchmark, shape, batch: int, bench_threads: int, gemm_ceiling: dict,  # noqa: ANN001
                          onnx_graphs: list[bytes], record_throughput: Callable[[int, str], None]) -> None:
    from mbfast.benchmark.onnx_step import OnnxStepper

    name, _, model = shape
    benchmark.group = f"step/batch={batch}/{name}"
    stepper = OnnxStepper(model, batch, bench_threads, graphs=onnx_graphs)
    args = StepRounds.make(model.config, batch, 1).baseline_args(0)
    probs = run_rounds(benchmark, lambda k: stepper.step(*args), batch)
    record(benchmark, record_throughput, model.config, batch, "onnxruntime", gemm_ceiling)
    assert np.isfinite(probs).all()
