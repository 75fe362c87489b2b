from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mbfast.jobs.local import classify_files
from mbfast.lightcurves.sample import SAMPLE_CURVES, SAMPLE_DIR

pytest.importorskip("distributed")


@pytest.mark.slow
def test_two_worker_local_cluster_equals_the_single_process_run(tmp_path: Path, small_model_path: Path) -> None:
    from mbfast.jobs.dask import classify_with_scheduler

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
    from mbfast.jobs.local import BatchSummary
    from mbfast.jobs.dask import classify_with_scheduler
    from tests.support.jobs import forget_over_two_nights

    def run(source: Path, output: Path, state: Path) -> BatchSummary:
        return classify_with_scheduler(source, output, "local:2", model=small_model_path, state_dir=state,
                                       n_shards=4, forget_after=30.0)

    forget_over_two_nights(tmp_path, small_model_path, run)


@pytest.mark.slow
def test_the_dask_path_applies_the_local_row_policy(tmp_path: Path, small_model_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One text entry in a number column, one text id among integer ids, engine-bound rows, float ids: the local
    path rejects exactly those rows; the Dask path used to fail the whole job. Both give the same counts, rejected
    rows (with row numbers) and scores."""
    from mbfast.lightcurves import sources
    from mbfast.jobs.dask import classify_with_scheduler

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 300)  # the file's first block says its ids are integers

    lines = ["obj_id,band,t,mag,err"]
    lines += [f"{obj},{band},{t},{20 + 0.1 * k},0.1" for k, (obj, band, t) in
              enumerate((obj, band, 1.0 + step) for obj in (1, 2, 3) for step, band in enumerate("ggrrg"))]
    lines += ["2,g,9.0,abc,0.1", "x7,g,1.0,20.0,0.1", "1,r,1.6e15,20.0,0.1", "3,g,12.0,20.0,-0.1", "1,w,13.0,20,0.1"]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    local = classify_files(tmp_path / "in.csv", tmp_path / "local.parquet", model=small_model_path, progress=False)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (tmp_path / f".dask.{child.pid}.tmp" / "part.0.parquet").mkdir(parents=True)  # left by a killed run
    dask = classify_with_scheduler(tmp_path / "in.csv", tmp_path / "dask", "local:2", model=small_model_path,
                                   n_shards=3)
    assert not (tmp_path / f".dask.{child.pid}.tmp").exists()
    assert local.rejected == dask.rejected == {"obj_id must be an integer or a text id": 1, "unknown band": 1,
                                               "mag must be a number": 1, "t must be within +-1e12 days": 1,
                                               "err must be > 0": 1}
    assert local.objects == dask.objects == 3 and local.applied == dask.applied == 15
    for name in ("row", "reason"):
        assert pq.read_table(tmp_path / "local.parquet.rejected.parquet").column(name).to_pylist() == \
            pq.read_table(tmp_path / "dask.rejected.parquet").column(name).to_pylist(), name
    expected = pq.read_table(tmp_path / "local.parquet").sort_by("obj_id")
    got = pq.read_table(tmp_path / "dask").sort_by("obj_id")
    np.testing.assert_array_equal(got.column("prob_SNIa").to_numpy(), expected.column("prob_SNIa").to_numpy())


@pytest.mark.slow
def test_the_dask_path_reads_ztf_tables_like_the_local_one(tmp_path: Path) -> None:
    from mbfast.jobs.dask import classify_with_scheduler
    from tests.support.jobs import ztf_alert_rows, ztf_model

    model = ztf_model(tmp_path / "ztf.mbf")
    pq.write_table(ztf_alert_rows(), tmp_path / "alerts.parquet")
    options = {"model": model, "survey": "ztf", "keep": ("ra",)}
    local = classify_files(tmp_path / "alerts.parquet", tmp_path / "local.parquet", progress=False, **options)
    dask = classify_with_scheduler(tmp_path / "alerts.parquet", tmp_path / "dask", "local:2", n_shards=2, **options)
    assert local.rejected == dask.rejected == {"band not in the model": 1}
    expected = pq.read_table(tmp_path / "local.parquet").sort_by("obj_id")
    got = pq.read_table(tmp_path / "dask").sort_by("obj_id")
    assert got.column("obj_id").to_pylist() == expected.column("obj_id").to_pylist() == [
        "ZTF19abvhduf", "ZTF20acmxnpa", "ZTF21aaxtctv"]
    assert got.column("ra").to_pylist() == expected.column("ra").to_pylist()
    np.testing.assert_array_equal(got.column("prob_SNIa").to_numpy(), expected.column("prob_SNIa").to_numpy())
