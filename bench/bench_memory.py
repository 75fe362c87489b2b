"""Memory per object: resident bytes an Engine grows by when it holds N objects of the ZTF shape, N = 1e3 .. 1e7,
with h, c stored in fp32 and in fp16 (state_dtype).

Each size runs in a fresh child process (so freed memory of a previous size cannot be reused), which loads the
model, steps one observation for each of N new objects and reports its resident-set growth and Engine.state_bytes_
per_object; the timed figure is that child's whole run. Sizes above --bench-max-objects (default 1e6; 1e4 in a
smoke run) are not measured but extrapolated linearly from the largest measured size (extra_info "extrapolated").
"""
from __future__ import annotations

from pathlib import Path

import pytest

from child import run_child
from mbfast.benchmark.workloads import ZTF_CONFIG
from mbfast.model.counts import model_info

SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
MEASURED: dict[tuple[str, int], float] = {}  # (state dtype, objects) -> resident bytes per object, this session

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from mbfast.engine import Engine
def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()
path, n, state_dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = Engine.load(path, num_threads=1, state_dtype=state_dtype)
before = rss()
start = time.perf_counter()
for first in range(0, n, 250_000):  # arrivals in batches, as a stream brings them: the store grows
    ids = np.arange(first, min(n, first + 250_000), dtype=np.int64) * 7919
    engine.step(ids, np.zeros(len(ids), dtype=np.int8), np.full(len(ids), 60000.0), np.full(len(ids), 20.0),
                np.full(len(ids), 0.05), outputs=())
seconds = time.perf_counter() - start
print(json.dumps({"objects": len(engine), "rss_growth": rss() - before, "insert_seconds": seconds,
                  "state_bytes_per_object": engine.state_bytes_per_object}))
"""


def measure(model: Path, n_objects: int, state_dtype: str) -> dict[str, float]:
    return run_child(_CHILD, model, n_objects, state_dtype)


@pytest.mark.parametrize("state_dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("n_objects", SIZES)
def test_memory_per_object(benchmark, ztf_model: Path, n_objects: int, state_dtype: str,  # noqa: ANN001 (fixture)
                           request: pytest.FixtureRequest) -> None:
    smoke = request.config.getoption("benchmark_disable")
    limit = 10_000 if smoke else int(request.config.getoption("--bench-max-objects"))
    benchmark.group = f"memory/{state_dtype} state"
    info = model_info(ZTF_CONFIG)
    benchmark.extra_info.update(objects=n_objects, state_dtype=state_dtype,
                                recurrent_state_bytes_fp32=info["recurrent_state_bytes_fp32"])
    measured = {objects: per_object for (dtype, objects), per_object in MEASURED.items() if dtype == state_dtype}
    if n_objects > limit:
        if not measured:
            pytest.skip(f"{n_objects} objects is above --bench-max-objects={limit} and nothing smaller was measured")
        largest = max(measured)
        benchmark.extra_info.update(extrapolated=True, from_objects=largest, bytes_per_object=measured[largest],
                                    total_bytes=measured[largest] * n_objects)
        benchmark.pedantic(lambda: None, rounds=1)  # nothing to time: the figure is extrapolated
        return
    result = benchmark.pedantic(measure, args=(ztf_model, n_objects, state_dtype), rounds=1)
    per_object = result["rss_growth"] / n_objects
    MEASURED[state_dtype, n_objects] = per_object
    benchmark.extra_info.update(extrapolated=False, bytes_per_object=per_object, total_bytes=result["rss_growth"],
                                insert_seconds=result["insert_seconds"],
                                state_bytes_per_object=result["state_bytes_per_object"])
    assert result["objects"] == n_objects
    if n_objects >= 100_000:  # small sizes are dominated by allocator granularity
        assert per_object < 3 * result["state_bytes_per_object"] + 150  # vector growth slack + hash map entries
    print(f"\n{n_objects:>10} objects, {state_dtype} state: {per_object:,.0f} resident bytes per object "
          f"(state_bytes_per_object {result['state_bytes_per_object']:,})")
