"""An engine holding a million objects: state grows as objects arrive, and the memory per object is what
state_bytes_per_object says (plus the obj_id -> slot hash map)."""
from __future__ import annotations

import resource
from pathlib import Path

import numpy as np

from mbfast.engine import Engine, Status
from tests.support.engine import small_config, write_random_model

N_OBJECTS = 1_000_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def test_million_objects(tmp_path: Path) -> None:
    config = small_config(bands=("g", "r"), band_hidden=8, band_layers=2, central_hidden=8, central_layers=1)
    engine = Engine.load(write_random_model(tmp_path / "model.mbf", config), num_threads=2)
    before = rss_bytes()
    ids = np.arange(N_OBJECTS, dtype=np.int64) * 7919
    for start in range(0, N_OBJECTS, 250_000):  # arrivals in a few batches: capacity grows
        part = ids[start:start + 250_000]
        result = engine.step(part, np.zeros(len(part), dtype=np.int8), np.full(len(part), 60000.0),
                             np.full(len(part), 20.0), np.full(len(part), 0.1), outputs=())
        assert (result.status == Status.WARMING_UP).all()
    assert len(engine) == N_OBJECTS
    grown = rss_bytes() - before
    per_object = grown / N_OBJECTS
    print(f"{N_OBJECTS} objects: {grown / 2**20:.0f} MiB resident, {per_object:.0f} B/object "
          f"(state arrays {engine.state_bytes_per_object} B/object)")
    assert per_object < 3 * engine.state_bytes_per_object + 150  # vector growth slack + hash map entries
    # a full step still works at this size, and forgetting half shrinks the count
    result = engine.step(ids[:3], [0, 0, 0], [60001.0] * 3, [20.1] * 3, [0.1] * 3)
    assert (result.status == Status.WARMING_UP).all()
    assert engine.forget(ids[::2]) == N_OBJECTS // 2
    assert len(engine) == N_OBJECTS // 2
