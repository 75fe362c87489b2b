from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mbfast.batch import BatchSummary, classify_files
from mbfast.cli import main
from mbfast.datasets import SAMPLE_CURVES, SAMPLE_DIR, load_sample
from mbfast.engine import Engine
from tests.batch_support import forget_over_two_nights


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE_DIR / SAMPLE_CURVES


def test_classify_equals_engine_classify_whatever_the_sharding(tmp_path: Path, small_model_path: Path,
                                                               sample_path: Path) -> None:
    sample = load_sample()
    expected = Engine.load(small_model_path, num_threads=1).classify(sample.curves)
    for n_shards in (1, 5):
        output = tmp_path / f"scores{n_shards}.parquet"
        summary = classify_files(sample_path, output, model=small_model_path, n_shards=n_shards, chunk_rows=3000,
                                 progress=False)
        table = pq.read_table(output)
        order = np.argsort(table.column("obj_id").to_numpy())
        assert summary.objects == sample.curves.n_objects == table.num_rows
        assert summary.observations == len(sample.curves)
        np.testing.assert_array_equal(table.column("obj_id").to_numpy()[order], expected.obj_id)
        probs = np.stack([table.column(f"prob_{name}").to_numpy() for name in ("SNIa", "SNII", "AGN", "EB")], 1)
        np.testing.assert_array_equal(probs[order], expected.probs)
        np.testing.assert_array_equal(table.column("n_obs_g").to_numpy()[order], expected.n_obs[:, 1])


def test_bad_rows_are_reported_not_dropped_silently(tmp_path: Path, small_model_path: Path) -> None:
    rows = pa.table({"obj_id": [1, 1, 1, 1, 2, 2], "band": ["g", "g", "g", "w", "r", "r"],
                     "t": [1.0, 2.0, 3.5, 4.0, 1.0, 1.0], "mag": [20.0, 20.1, 19.9, 20.0, 18.0, 18.0],
                     "err": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]})
    pq.write_table(rows, tmp_path / "in.parquet")
    output = tmp_path / "out.parquet"
    summary = classify_files(tmp_path / "in.parquet", output, model=small_model_path, progress=False)
    assert summary.rejected == {"unknown band": 1}
    assert summary.skipped["duplicate"] == 1
    rejected = pq.read_table(tmp_path / "out.parquet.rejected.parquet")
    assert rejected.column("reason").to_pylist() == ["unknown band"]
    table = pq.read_table(output)
    assert table.column("obj_id").to_pylist() == [1, 2]
    assert table.column("class").to_pylist()[1] == ""  # object 2 never reached a 3rd observation
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("block_bytes", [1 << 20, 200])  # one CSV block, or the bad entries in later blocks
def test_entries_that_are_not_numbers_reject_their_row_only(tmp_path: Path, small_model_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, block_bytes: int) -> None:
    from mbfast import sources

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", block_bytes)
    good = pa.table({"obj_id": [1] * 6 + [2] * 4, "band": ["g", "r"] * 5,
                     "t": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 1.0, 1.5, 2.0, 2.5],
                     "mag": [20.0, 20.1, 19.9, 20.2, 20.0, 19.8, 18.0, 18.1, 18.2, 18.3], "err": [0.1] * 10})
    lines = ["obj_id,band,t,mag,err"] + [f"{o},{b},{t},{m},{e}" for o, b, t, m, e in zip(*good.to_pydict().values())]
    lines += ["1,g,4.0,abc,0.1", "2,r,3.0,18.0,0.1x", "2,g,later,18.0,0.1", "1,r,5.0,20.0,NA"]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    summary = classify_files(tmp_path / "in.csv", tmp_path / "out.parquet", model=small_model_path, progress=False)
    assert summary.rejected == {"t not a number": 1, "mag not a number": 1, "err not a number": 1,
                                "err not finite": 1}  # "NA" is a missing value
    rejected = pq.read_table(tmp_path / "out.parquet.rejected.parquet")
    assert sorted(zip(rejected.column("reason").to_pylist(), rejected.column("row").to_pylist())) == [
        ("err not a number", 11), ("err not finite", 13), ("mag not a number", 10), ("t not a number", 12)]
    pq.write_table(good, tmp_path / "good.parquet")  # the rows that do parse give what the clean file gives
    classify_files(tmp_path / "good.parquet", tmp_path / "good_out.parquet", model=small_model_path, progress=False)
    got, want = pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "good_out.parquet")
    assert got.column_names == want.column_names
    for name in got.column_names:  # NaN probabilities (object 2 never predicted) compare equal here
        np.testing.assert_array_equal(got.column(name).to_numpy(), want.column(name).to_numpy(), err_msg=name)


def test_a_malformed_csv_line_is_an_error_naming_the_file(tmp_path: Path, small_model_path: Path) -> None:
    (tmp_path / "in.csv").write_text("obj_id,band,t,mag,err\n1,g,1.0,20.0,0.1\n1,r,2.0,20.0,0.1,7\n")
    with pytest.raises(ValueError, match=r"in\.csv: CSV parse error: Expected 5 columns, got 6"):
        classify_files(tmp_path / "in.csv", tmp_path / "out.parquet", model=small_model_path, progress=False)
    assert not (tmp_path / "out.parquet").exists()


def test_fractional_obj_ids_are_rejected_not_truncated(tmp_path: Path, small_model_path: Path) -> None:
    rows = pa.table({"obj_id": [1.0, 1.0, 1.5, float("nan"), None], "band": ["g"] * 5, "t": [1.0, 2.0, 3.0, 4.0, 5.0],
                     "mag": [20.0] * 5, "err": [0.1] * 5})
    pq.write_table(rows, tmp_path / "in.parquet")
    summary = classify_files(tmp_path / "in.parquet", tmp_path / "out.parquet", model=small_model_path,
                             progress=False)
    assert summary.rejected == {"obj_id missing": 1, "obj_id not an integer": 2}
    assert pq.read_table(tmp_path / "out.parquet").column("obj_id").to_pylist() == [1]


def test_incremental_state_applies_new_nights_and_a_rerun_changes_nothing(tmp_path: Path, small_model_path: Path,
                                                                         sample_path: Path) -> None:
    table = pq.read_table(sample_path)
    t = table.column("t").to_numpy()
    cut = np.median(t)
    first, second = tmp_path / "night1.parquet", tmp_path / "night2.parquet"
    pq.write_table(table.filter(pa.array(t <= cut)), first)
    pq.write_table(table.filter(pa.array(t > cut)), second)
    state = tmp_path / "state"
    classify_files(first, tmp_path / "s1.parquet", model=small_model_path, state_dir=state, n_shards=3,
                   progress=False)
    classify_files(second, tmp_path / "s2.parquet", model=small_model_path, state_dir=state, progress=False)
    state_bytes = {path.name: path.read_bytes() for path in state.glob("*.state")}
    rerun = classify_files(second, tmp_path / "s2b.parquet", model=small_model_path, state_dir=state,
                           progress=False)
    # the last observation of each band repeats exactly (duplicate); older history is not after the band's
    # last time (late): either way nothing is applied
    assert rerun.applied == 0
    assert rerun.skipped["duplicate"] + rerun.skipped["late"] == int(np.sum(t > cut))
    assert {path.name: path.read_bytes() for path in state.glob("*.state")} == state_bytes
    np.testing.assert_array_equal(pq.read_table(tmp_path / "s2.parquet").column("prob_SNIa").to_numpy(),
                                  pq.read_table(tmp_path / "s2b.parquet").column("prob_SNIa").to_numpy())
    # two nights stepped incrementally == the whole light curves classified at once
    whole = Engine.load(small_model_path).classify(load_sample().curves)
    night2 = pq.read_table(tmp_path / "s2.parquet")
    index = {obj: row for row, obj in enumerate(whole.obj_id.tolist())}
    rows = [index[obj] for obj in night2.column("obj_id").to_pylist()]
    np.testing.assert_allclose(night2.column("prob_SNIa").to_numpy(), whole.probs[rows, 0], rtol=0, atol=1e-6)


def test_forget_after_drops_stale_objects_from_every_shard_state(tmp_path: Path, small_model_path: Path) -> None:
    def run(source: Path, output: Path, state: Path) -> BatchSummary:
        return classify_files(source, output, model=small_model_path, state_dir=state, n_shards=4, forget_after=30.0,
                              progress=False)

    forget_over_two_nights(tmp_path, small_model_path, run)
    with pytest.raises(ValueError, match=r"forget_after \(--forget-after\) needs a state folder"):
        classify_files(tmp_path / "night1.parquet", tmp_path / "x.parquet", model=small_model_path,
                       forget_after=30.0, progress=False)


def test_a_crash_mid_run_leaves_no_partial_output_and_a_rerun_finishes_the_same(tmp_path: Path, small_model_path: Path,
                                                                                sample_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker dying after some shards were saved: no output file, no temp files, state files whole; rerunning
    the night gives what one clean run gives (shards already applied see their rows as repeats)."""
    clean_state, crash_state = tmp_path / "clean", tmp_path / "crash"
    clean = classify_files(sample_path, tmp_path / "clean.parquet", model=small_model_path, state_dir=clean_state,
                           n_shards=4, progress=False)
    original_save = Engine.save_state
    saved: list[str] = []

    def save_then_die(self: Engine, path: str) -> None:
        original_save(self, path)
        saved.append(str(path))
        if len(saved) == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Engine, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        classify_files(sample_path, tmp_path / "crash.parquet", model=small_model_path, state_dir=crash_state,
                       n_shards=4, progress=False)
    assert not (tmp_path / "crash.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(list(crash_state.glob("*.state"))) == 2
    monkeypatch.setattr(Engine, "save_state", original_save)
    rerun = classify_files(sample_path, tmp_path / "crash.parquet", model=small_model_path, state_dir=crash_state,
                           progress=False)
    assert rerun.objects == clean.objects
    for path in clean_state.glob("*.state"):
        assert (crash_state / path.name).read_bytes() == path.read_bytes(), path.name
    expected = pq.read_table(tmp_path / "clean.parquet").sort_by("obj_id")
    got = pq.read_table(tmp_path / "crash.parquet").sort_by("obj_id")
    np.testing.assert_array_equal(got.column("prob_SNIa").to_numpy(), expected.column("prob_SNIa").to_numpy())


def test_precision_reaches_every_engine_of_the_run(tmp_path: Path, small_model_path: Path, sample_path: Path) -> None:
    # through the CLI, in one-pass and in incremental (--state) mode: the scores are those of an int8 engine
    sample = load_sample()
    int8 = Engine.load(small_model_path, num_threads=1, precision="int8").classify(sample.curves)
    fp32 = Engine.load(small_model_path, num_threads=1).classify(sample.curves)
    assert (int8.probs != fp32.probs).any()  # the test can tell the two apart
    for extra in ([], ["--state", str(tmp_path / "state")]):
        output = tmp_path / f"int8{len(extra)}.parquet"
        assert main(["classify", str(sample_path), "-o", str(output), "--model", str(small_model_path),
                     "--precision", "int8", "--quiet", *extra]) == 0
        table = pq.read_table(output).sort_by("obj_id")
        np.testing.assert_array_equal(table.column("obj_id").to_numpy(), int8.obj_id)
        probs = np.stack([table.column(f"prob_{name}").to_numpy() for name in ("SNIa", "SNII", "AGN", "EB")], 1)
        np.testing.assert_array_equal(probs, int8.probs, err_msg=f"classify {' '.join(extra)}")


def test_unknown_precision_is_refused_by_the_command_line(tmp_path: Path, sample_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", str(sample_path), "-o", str(tmp_path / "out.parquet"), "--precision", "fp8"])
    assert exit_info.value.code == 2
    assert "argument --precision: invalid choice: 'fp8'" in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists()
