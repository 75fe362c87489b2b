"""Shared by the batch tests (single process and Dask): a two-night incremental scenario for --forget-after, a ZTF
model and ZTF-like rows."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mbfast.jobs.local import BatchSummary
from mbfast.engine import Engine
from mbfast.jobs.shards import shard_of


def forget_over_two_nights(tmp_path: Path, model: Path,
                           run: Callable[[Path, Path, Path], BatchSummary]) -> None:
    """Night 1 holds an old object and a recent one; night 2 only a new one, in another of 4 shards. `run(input,
    output, state folder)` classifies a night incrementally with forget_after = 30 days: each night keeps only
    the objects observed within 30 days of its newest row, also in the shard night 2 does not touch."""
    ids = np.arange(1, 200, dtype=np.int64)
    shard = shard_of(ids, 4)
    old, recent = (int(i) for i in ids[shard == 0][:2])
    new = int(ids[shard == 1][0])
    state = tmp_path / "state"

    def night(rows: dict[int, float], name: str) -> BatchSummary:
        objects = [obj for obj in rows for _ in range(3)]
        times = [start + k for start in rows.values() for k in range(3)]
        pq.write_table(pa.table({"obj_id": objects, "band": ["g"] * len(objects), "t": times,
                                 "mag": [20.0] * len(objects), "err": [0.1] * len(objects)}), tmp_path / name)
        return run(tmp_path / name, tmp_path / f"{name}.out", state)

    def held() -> set[int]:
        return {int(obj) for path in state.glob("shard-*.state")
                for obj in Engine.load(model, num_threads=1, state=path).object_ids()}

    first = night({old: 1.0, recent: 100.0}, "night1.parquet")
    assert first.forgotten == 1 and held() == {recent}
    assert "forgotten (not observed recently): 1 objects" in first.lines()
    second = night({new: 200.0}, "night2.parquet")  # shard 0 has no rows tonight: its state is still pruned
    assert second.forgotten == 1 and held() == {new}


def ztf_model(path: Path) -> Path:
    """A random-weight (g, r) model for ZTF, as `mbfast train --survey ztf` tags one."""
    from mbfast.model.config import ModelConfig
    from mbfast.model.layout import random_weights
    from mbfast.model.modelfile import write_model

    config = ModelConfig(survey="ztf", bands=("g", "r"), class_names=("SNIa", "SNII", "AGN"), band_hidden=8,
                         central_hidden=8, classifier_hidden=8, band_head_hidden=8, regression_hidden=8, n_skip=2)
    write_model(path, config, random_weights(config))
    return path


def ztf_alert_rows() -> pa.Table:
    """Detections as ZTF light-curve services give them: text objectId, fid 1 (g) / 2 (r) / 3 (i), per-object ra."""
    names = ["ZTF21aaxtctv"] * 5 + ["ZTF19abvhduf"] * 4 + ["ZTF20acmxnpa"] * 3
    fid = [1, 2, 1, 2, 3, 1, 1, 2, 2, 2, 2, 2]
    mjd = [59300.1, 59300.2, 59302.1, 59303.3, 59304.0, 58700.5, 58702.5, 58703.5, 58704.5, 59100.0, 59101.0, 59102.5]
    magpsf = [18.5, 18.7, 18.4, 18.6, 18.9, 19.9, 19.7, 19.8, 19.6, 17.1, 17.0, 17.2]
    ra = [150.1] * 5 + [33.3] * 4 + [201.7] * 3
    return pa.table({"objectId": names, "fid": fid, "mjd": mjd, "magpsf": magpsf, "sigmapsf": [0.05] * 12, "ra": ra})
