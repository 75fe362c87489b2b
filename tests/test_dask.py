from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mbfast.batch import classify_files
from mbfast.datasets import SAMPLE_CURVES, SAMPLE_DIR

pytest.importorskip("distributed")


@pytest.mark.slow
def test_two_worker_local_cluster_equals_the_single_process_run(tmp_path: Path, small_model_path: Path) -> None:
    from mbfast.dask import classify_with_scheduler

    source = SAMPLE_DIR / SAMPLE_CURVES
    single = tmp_path / "single.parquet"
    # int8 on both sides: the precision has to reach the workers' engines for the scores to match
    classify_files(source, single, model=small_model_path, progress=False, precision="int8")
    distributed = tmp_path / "distributed"
    summary = classify_with_scheduler(source, distributed, "local:2", model=small_model_path, n_shards=4,
                                      precision="int8")
    expected = pq.read_table(single).sort_by("obj_id")
    got = pq.read_table(distributed).sort_by("obj_id")
    assert summary.objects == expected.num_rows == got.num_rows
    assert summary.observations == summary.applied == pq.ParquetFile(source).metadata.num_rows
    for name in expected.column_names:
        np.testing.assert_array_equal(got.column(name).to_numpy(zero_copy_only=False),
                                      expected.column(name).to_numpy(zero_copy_only=False), err_msg=name)
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.slow
def test_forget_after_with_a_local_cluster(tmp_path: Path, small_model_path: Path) -> None:
    from mbfast.batch import BatchSummary
    from mbfast.dask import classify_with_scheduler
    from tests.batch_support import forget_over_two_nights

    def run(source: Path, output: Path, state: Path) -> BatchSummary:
        return classify_with_scheduler(source, output, "local:2", model=small_model_path, state_dir=state,
                                       n_shards=4, forget_after=30.0)

    forget_over_two_nights(tmp_path, small_model_path, run)
