"""GPU step throughput: Engine.step on CUDA against PyTorch CUDA eager on the same weights (docs/cuda.md).

Group `step/batch=N/<shape>/cuda` holds mbfast (device="cuda", fp32 and bf16) and torch (mbfast.benchmark.torch_step's
BandStep modules moved to the GPU, states in GPU tensors) on N rows of N distinct objects, every row a predicted one
(mbfast.benchmark.workloads.StepRounds; objects pre-warmed outside the timing). Timed: one call from host arrays to host
outputs: mbfast validates, forms window rows, copies rows in and outputs out; torch gets ready window rows and copies
them in and the probabilities out. Skips without a CUDA GPU (torch's part also without torch.cuda).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import mbfast
from mbfast.benchmark.workloads import StepRounds, rounds_for
from mbfast.engine import Engine, Status

pytestmark = pytest.mark.skipif(not mbfast.cuda_available(), reason="needs a CUDA GPU")
BATCHES = (1_000, 10_000, 100_000, 1_000_000)


def run_rounds(benchmark, call: Callable[[int], object], batch: int) -> object:  # noqa: ANN001 (fixture)
    """Time `call(k)` on consecutive rounds k (1 warm-up + rounds_for(batch) timed); returns the last result."""
    counter = iter(range(rounds_for(batch) + 2))

    def setup() -> tuple[tuple[int], dict]:
        return (next(counter),), {}

    return benchmark.pedantic(call, setup=setup, rounds=rounds_for(batch), warmup_rounds=1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch", BATCHES)
def test_step_cuda_mbfast(benchmark, shape, batch: int, precision: str,  # noqa: ANN001 (fixtures)
                          record_throughput: Callable[[int, str], None]) -> None:
    name, path, model = shape
    benchmark.group = f"step/batch={batch}/{name}/cuda"
    rounds = StepRounds.make(model.config, batch, rounds_for(batch) + 2)
    engine = Engine.load(path, num_threads=1, device="cuda", precision=precision)
    rounds.warm(engine)
    result = run_rounds(benchmark, lambda k: engine.step(*rounds.engine_args(k), outputs=("probs",)), batch)
    record_throughput(batch, "mbfast" if precision == "fp32" else f"mbfast-{precision}")
    assert (result.status == Status.PREDICTED).all()
    assert np.isfinite(result.probs).all()


@pytest.mark.parametrize("batch", BATCHES)
def test_step_cuda_torch(benchmark, shape, batch: int,  # noqa: ANN001 (fixtures)
                         record_throughput: Callable[[int, str], None]) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    from mbfast.benchmark.torch_step import TorchStepper

    name, _, model = shape
    benchmark.group = f"step/batch={batch}/{name}/cuda"
    device = torch.device("cuda")
    stepper = TorchStepper(model, batch).to(device)
    host_args = [torch.from_numpy(a) for a in StepRounds.make(model.config, batch, 1).baseline_args(0)]

    def step(_: int) -> torch.Tensor:
        return stepper.step(*(a.to(device) for a in host_args)).cpu()  # .cpu() waits for the GPU

    probs = run_rounds(benchmark, step, batch)
    record_throughput(batch, "torch")
    assert torch.isfinite(probs).all()
