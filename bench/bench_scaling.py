"""Step throughput against the number of objects the engine holds: N = 1e3 .. 1e7, ZTF shape, fp32.

A broker's engine holds every live object, and each call touches a few thousand of them scattered through the
store: once the store outgrows the caches, gathering and scattering their state comes from DRAM. Each size runs
in a fresh child process, which loads the model, warms N objects with 2 observations per band (so every later row
is a predicted one), then times rounds of min(N, 4096) distinct objects drawn at random, each given its next
observation in a random band. Sizes above --bench-max-objects (default 1e6; 1e4 in a smoke run) are skipped:
1e7 objects hold ~89 GB of fp32 state.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from child import run_child
from mbfast.benchmark.workloads import ZTF_CONFIG
from mbfast.model.counts import model_info

SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
ROWS_PER_CALL = 4096
ROUNDS = 20

_CHILD = r"""
import json, sys, time
import numpy as np
from mbfast.engine import Engine, Status
path, n, threads, rows_per_call, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
engine = Engine.load(path, num_threads=threads)
n_bands = len(engine.bands)
ids = np.arange(n, dtype=np.int64) * 7919 + 1
for first in range(0, n, 250_000):  # 2 observations per band: the next one in any band is predicted
    part = ids[first:first + 250_000]
    for j in range(2 * n_bands):
        engine.step(part, np.full(len(part), j % n_bands, dtype=np.int8), np.full(len(part), 60000.0 + j),
                    np.full(len(part), 20.0, dtype=np.float32), np.full(len(part), 0.05, dtype=np.float32), outputs=())
rng = np.random.default_rng(0)
batch = min(n, rows_per_call)
seconds, predicted = [], 0
for k in range(rounds + 1):  # round 0 is a warm-up
    chosen = ids[rng.choice(n, size=batch, replace=False)]
    band = rng.integers(0, n_bands, size=batch).astype(np.int8)
    t = np.full(batch, 60000.0 + 2 * n_bands + k)
    mag = (20.0 + 0.2 * rng.standard_normal(batch)).astype(np.float32)
    err = np.full(batch, 0.05, dtype=np.float32)
    start = time.perf_counter()
    result = engine.step(chosen, band, t, mag, err, outputs=("probs",))
    if k:
        seconds.append(time.perf_counter() - start)
        predicted += int((result.status == Status.PREDICTED).sum())
print(json.dumps({"objects": len(engine), "rows": batch * rounds, "predicted": predicted,
                  "obs_per_s": batch / float(np.median(seconds)), "obs_per_s_best": batch / min(seconds),
                  "state_bytes": len(engine) * engine.state_bytes_per_object}))
"""


def measure(model: Path, n_objects: int, threads: int) -> dict[str, float]:
    return run_child(_CHILD, model, n_objects, threads, ROWS_PER_CALL, ROUNDS)


@pytest.mark.parametrize("n_objects", SIZES)
def test_step_throughput_by_objects_held(benchmark, ztf_model: Path, n_objects: int, bench_threads: int,  # noqa: ANN001
                                         request: pytest.FixtureRequest) -> None:
    smoke = request.config.getoption("benchmark_disable")
    limit = 10_000 if smoke else int(request.config.getoption("--bench-max-objects"))
    if n_objects > limit:
        state_gb = n_objects * model_info(ZTF_CONFIG)["recurrent_state_bytes_fp32"] / 1e9  # type: ignore[operator]
        pytest.skip(f"{n_objects} objects hold > {state_gb:.0f} GB of state: above --bench-max-objects={limit}")
    benchmark.group = "step-scaling/ztf"
    result = benchmark.pedantic(measure, args=(ztf_model, n_objects, bench_threads), rounds=1)
    assert result["objects"] == n_objects
    assert result["predicted"] == result["rows"]  # every timed row ran the model
    flops = model_info(ZTF_CONFIG)["flops_per_observation"]
    benchmark.extra_info.update(objects=n_objects, threads=bench_threads, rows_per_call=min(n_objects, ROWS_PER_CALL),
                                obs_per_s=result["obs_per_s"], obs_per_s_best=result["obs_per_s_best"],
                                gflops=result["obs_per_s"] * flops / 1e9,  # type: ignore[operator]
                                state_bytes=result["state_bytes"])
    print(f"\n{n_objects:>10} objects held: {result['obs_per_s']:,.0f} obs/s (median call), "
          f"{result['state_bytes'] / 1e9:.2f} GB of state")
