from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mbfast.jobs.local import BatchSummary, classify_files
from mbfast.cli import main
from mbfast.lightcurves.sample import SAMPLE_CURVES, SAMPLE_DIR, load_sample
from mbfast.engine import Engine
from mbfast.lightcurves.table import from_arrays
from tests.support.jobs import forget_over_two_nights, ztf_alert_rows, ztf_model


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
    from mbfast.lightcurves import sources

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", block_bytes)
    good = pa.table({"obj_id": [1] * 6 + [2] * 4, "band": ["g", "r"] * 5,
                     "t": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 1.0, 1.5, 2.0, 2.5],
                     "mag": [20.0, 20.1, 19.9, 20.2, 20.0, 19.8, 18.0, 18.1, 18.2, 18.3], "err": [0.1] * 10})
    lines = ["obj_id,band,t,mag,err"] + [f"{o},{b},{t},{m},{e}" for o, b, t, m, e in zip(*good.to_pydict().values())]
    lines += ["1,g,4.0,abc,0.1", "2,r,3.0,18.0,0.1x", "2,g,later,18.0,0.1", "1,r,5.0,20.0,NA"]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    summary = classify_files(tmp_path / "in.csv", tmp_path / "out.parquet", model=small_model_path, progress=False)
    assert summary.rejected == {"t must be a number": 1, "mag must be a number": 1, "err must be a number": 1,
                                "err is missing": 1}  # "NA" is a missing value
    rejected = pq.read_table(tmp_path / "out.parquet.rejected.parquet")
    assert sorted(zip(rejected.column("reason").to_pylist(), rejected.column("row").to_pylist())) == [
        ("err is missing", 13), ("err must be a number", 11), ("mag must be a number", 10), ("t must be a number", 12)]
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
    assert summary.rejected == {"obj_id is missing": 1, "obj_id must be an integer or a text id": 2}
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


def test_rows_beyond_the_engine_bounds_are_rejected_with_their_reason(tmp_path: Path, small_model_path: Path) -> None:
    # t in milliseconds and a sentinel magnitude used to pass the row checks, then be skipped by the engine and
    # counted as duplicates, with no rejected file
    rows = pa.table({"obj_id": [1, 1, 1, 1, 2], "band": ["g"] * 5, "t": [1.0, 2.0, 3.0, 1.6e15, 4.0],
                     "mag": [20.0, 20.1, 19.9, 20.0, -1e5], "err": [0.1] * 5})
    pq.write_table(rows, tmp_path / "in.parquet")
    summary = classify_files(tmp_path / "in.parquet", tmp_path / "out.parquet", model=small_model_path,
                             progress=False)
    assert summary.rejected == {"t must be within +-1e12 days": 1, "mag must be within +-1e4": 1}
    assert summary.skipped.get("duplicate", 0) == 0 and summary.applied == 3
    rejected = pq.read_table(tmp_path / "out.parquet.rejected.parquet")
    assert rejected.column("reason").to_pylist() == ["t must be within +-1e12 days", "mag must be within +-1e4"]
    assert rejected.column("row").to_pylist() == [3, 4]


def test_float_ids_beyond_2_53_are_rejected_never_rounded(tmp_path: Path, small_model_path: Path) -> None:
    # pandas' int64-with-nulls: Rubin diaObjectIds as float64; 169645854020337671 and ...672 are the same float
    ids = [169645854020337671.0] * 3 + [169645854020337672.0] * 3 + [12.0] * 3
    rows = pa.table({"obj_id": ids, "band": ["g"] * 9, "t": [1.0, 2.0, 3.0] * 3, "mag": [20.0] * 9, "err": [0.1] * 9})
    pq.write_table(rows, tmp_path / "in.parquet")
    summary = classify_files(tmp_path / "in.parquet", tmp_path / "out.parquet", model=small_model_path,
                             progress=False)
    assert summary.rejected == {"obj_id must be an exact integer": 6}
    assert pq.read_table(tmp_path / "out.parquet").column("obj_id").to_pylist() == [12]
    assert pq.read_table(tmp_path / "out.parquet.rejected.parquet").column("row").to_pylist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"row 0: obj_id must be an exact integer, got 1.6964585402033766e\+17"):
        from_arrays(np.array(ids), np.array(["g"] * 9), np.arange(9.0), np.full(9, 20.0), np.full(9, 0.1),
                    ("g",))


def test_real_ztf_tables_text_ids_fid_codes_and_kept_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    """The first hour of a ZTF broker: objectId text, fid 1/2/3, mjd/magpsf/sigmapsf, ra passed through."""
    model = ztf_model(tmp_path / "ztf.mbf")
    rows = ztf_alert_rows()
    pq.write_table(rows, tmp_path / "alerts.parquet")
    out = tmp_path / "scores.parquet"
    base = ["classify", str(tmp_path / "alerts.parquet"), "-o", str(out), "--model", str(model), "--quiet"]
    mapping = "obj_id=objectId,band=fid,t=mjd,mag=magpsf,err=sigmapsf"
    # without --survey the integer fid used to be taken as an index into (g, r): fid 1 -> r, fid 2 rejected
    assert main([*base, "--column", mapping]) == 2
    assert ("the band column holds integer codes (1, ...), which mean a different band in each survey; name the "
            "survey that wrote them: --survey ztf|lsst|ps1|gaia|plasticc") in capsys.readouterr().err
    assert main([*base, "--column", mapping, "--survey", "ztf", "--keep", "ra"]) == 1  # the fid 3 (i) row
    table = pq.read_table(out).sort_by("obj_id")
    assert table.column("obj_id").to_pylist() == ["ZTF19abvhduf", "ZTF20acmxnpa", "ZTF21aaxtctv"]
    assert table.column("n_obs_g").to_pylist() == [2, 0, 2]
    assert table.column("n_obs_r").to_pylist() == [2, 3, 2]
    assert table.column("ra").to_pylist() == [33.3, 201.7, 150.1]
    rejected = pq.read_table(str(out) + ".rejected.parquet")
    assert rejected.column("reason").to_pylist() == ["band not in the model"]
    assert rejected.column("obj_id").to_pylist() == ["ZTF21aaxtctv"] and rejected.column("band").to_pylist() == [3]
    # repeated flags read the same; Python's Engine.classify of the DataFrame gives the same scores
    repeated = [f"--column={item}" for item in mapping.split(",")]
    assert main([*base[:3], str(tmp_path / "again.parquet"), *base[4:], *repeated, "--survey", "ztf"]) == 1
    again = pq.read_table(tmp_path / "again.parquet").sort_by("obj_id")
    frame = rows.to_pandas()
    frame = frame[frame.fid != 3]
    scores = Engine.load(model).classify(frame, survey="ztf").to_pandas().sort_index()
    assert scores.index.tolist() == table.column("obj_id").to_pylist()
    for name in ("SNIa", "SNII", "AGN"):
        np.testing.assert_array_equal(again.column(f"prob_{name}").to_numpy(), scores[name].to_numpy(np.float32))
    # a survey none of whose bands the model has is refused, naming both
    assert main([*base, "--column", mapping, "--survey", "gaia"]) == 2
    assert "the model has none of gaia's bands (BP RP); its bands are ztf: g r" in capsys.readouterr().err


def test_text_ids_keep_their_state_across_nights(tmp_path: Path) -> None:
    model = ztf_model(tmp_path / "ztf.mbf")
    rows = ztf_alert_rows().filter(pa.array([fid != 3 for fid in ztf_alert_rows().column("fid").to_pylist()]))
    night = np.array(rows.column("mjd").to_pylist()) < 59303.0  # ZTF21aaxtctv has rows on both sides
    pq.write_table(rows.filter(pa.array(night)), tmp_path / "n1.parquet")
    pq.write_table(rows.filter(pa.array(~night)), tmp_path / "n2.parquet")
    for name in ("n1", "n2"):
        classify_files(tmp_path / f"{name}.parquet", tmp_path / f"{name}.out.parquet", model=model, survey="ztf",
                       state_dir=tmp_path / "st", n_shards=2, progress=False)
    second = pq.read_table(tmp_path / "n2.out.parquet")
    assert second.column("obj_id").to_pylist() == ["ZTF21aaxtctv"]
    whole = Engine.load(model).classify(rows.to_pandas(), survey="ztf")
    index = whole.names.tolist().index("ZTF21aaxtctv")
    assert second.column("n_obs_g").to_pylist() == [2] and second.column("n_obs_r").to_pylist() == [2]
    np.testing.assert_allclose(second.column("prob_SNIa").to_numpy(), whole.probs[index:index + 1, 0], atol=1e-6)


def test_state_shards_are_stepped_in_bounded_calls(tmp_path: Path, small_model_path: Path, sample_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    whole = classify_files(sample_path, tmp_path / "one.parquet", model=small_model_path, state_dir=tmp_path / "a",
                           n_shards=2, progress=False)
    sizes: list[int] = []
    step = Engine.step

    def recording_step(self: Engine, obj_ids: np.ndarray, *args: object, **kwargs: object) -> object:
        sizes.append(len(obj_ids))
        return step(self, obj_ids, *args, **kwargs)

    monkeypatch.setattr(Engine, "step", recording_step)
    chunked = classify_files(sample_path, tmp_path / "many.parquet", model=small_model_path,
                             state_dir=tmp_path / "b", n_shards=2, progress=False, step_rows=1000)
    assert max(sizes) == 1000 and sum(sizes) == chunked.observations > 2 * 1000
    assert chunked.applied == whole.applied
    for path in (tmp_path / "a").glob("*.state"):
        assert (tmp_path / "b" / path.name).read_bytes() == path.read_bytes()


def test_input_problems_are_one_line_errors_before_any_work(tmp_path: Path, small_model_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dup.csv").write_text("obj_id,band,t,t,mag,err\n1,g,1.0,2.0,20.0,0.1\n")
    assert main(["classify", str(tmp_path / "dup.csv"), "-o", str(tmp_path / "out.parquet"), "--model",
                 str(small_model_path)]) == 2
    error = f"mbfast classify: error: {tmp_path / 'dup.csv'}: the header names column 't' twice\n"
    assert capsys.readouterr().err == error
    (tmp_path / "good.csv").write_text("obj_id,band,t,mag,err\n1,g,1.0,20.0,0.1\n")
    assert main(["classify", str(tmp_path / "good.csv"), "-o", str(tmp_path / "out.parquet"), "--state",
                 str(tmp_path / "dup.csv")]) == 2
    assert capsys.readouterr().err.endswith("dup.csv is a file; give a folder\n")
    assert not list(tmp_path.glob(".mbfast-shards-*"))


def test_a_timestamp_t_is_read_as_mjd(tmp_path: Path, small_model_path: Path) -> None:
    mjd = np.array([60000.25, 60001.5, 60003.125, 60004.0])
    rows = {"obj_id": [4] * 4, "band": ["g", "r", "g", "g"], "mag": [20.0, 20.1, 19.9, 20.0], "err": [0.1] * 4}
    pq.write_table(pa.table({**rows, "t": mjd}), tmp_path / "mjd.parquet")
    unix_ns = ((mjd - 40587.0) * 86400e9).astype(np.int64)
    pq.write_table(pa.table({**rows, "t": pa.array(unix_ns, pa.timestamp("ns", tz="UTC"))}), tmp_path / "ts.parquet")
    for name in ("mjd", "ts"):
        classify_files(tmp_path / f"{name}.parquet", tmp_path / f"{name}.out", model=small_model_path, progress=False)
    assert pq.read_table(tmp_path / "ts.out").equals(pq.read_table(tmp_path / "mjd.out"))


def test_survey_without_model_takes_the_shipped_model_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mbfast import models

    pq.write_table(ztf_alert_rows(), tmp_path / "alerts.parquet")
    run = ["classify", str(tmp_path / "alerts.parquet"), "-o", str(tmp_path / "out.parquet"), "--survey", "ztf",
           "--quiet"]
    monkeypatch.setattr(models, "DATA_DIR", tmp_path / "none")  # no ZTF model in this install: the default (LSST)
    assert main(run) == 2
    (tmp_path / "shipped").mkdir()
    ztf_model(tmp_path / "shipped" / "ztf.mbf")
    monkeypatch.setattr(models, "DATA_DIR", tmp_path / "shipped")
    assert main(run) == 1  # the ZTF (g, r) model: only the fid 3 row is rejected
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 3


@pytest.mark.parametrize("text", ["", "{}", "not json"])
def test_a_broken_state_manifest_is_named(tmp_path: Path, small_model_path: Path, sample_path: Path,
                                         text: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match=r"manifest\.json is not a manifest mbfast wrote"):
        classify_files(sample_path, tmp_path / "out.parquet", model=small_model_path, state_dir=state,
                       progress=False)
