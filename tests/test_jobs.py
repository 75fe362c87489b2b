"""mbfast.jobs through the commands that use it: options refused at parse time, -o checked before any work, the exit
code table of mbfast.exit_codes (docs/batch.md) for classify, leftovers of killed runs removed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mbfast.cli import main
from mbfast.lightcurves.sample import SAMPLE_CURVES, SAMPLE_DIR
from mbfast.engine import Engine
from mbfast.exit_codes import NOT_DONE as EXIT_NOT_DONE
from mbfast.exit_codes import OK as EXIT_DONE
from mbfast.exit_codes import REJECTED as EXIT_SOME_REJECTED
from mbfast.exit_codes import USAGE as EXIT_USAGE

SAMPLE = SAMPLE_DIR / SAMPLE_CURVES


def classify(*arguments: str) -> int:
    return main(["classify", *arguments, "--quiet"])


def rows(tmp_path: Path, name: str = "in.parquet", **changes: list) -> Path:  # type: ignore[type-arg]
    """Two objects of 4 g observations each, with `changes` replacing whole columns."""
    columns = {"obj_id": [1] * 4 + [2] * 4, "band": ["g"] * 8, "t": [1.0, 2.0, 3.0, 4.0] * 2, "mag": [20.0] * 8,
               "err": [0.1] * 8}
    columns.update(changes)
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--shards", "0", "argument --shards: must be >= 1, got 0"),
    ("--shards", "-1", "argument --shards: must be >= 1, got -1"),
    ("--threads", "0", "argument --threads: must be between 1 and 1024, got 0"),
    ("--threads", "100000", "argument --threads: must be between 1 and 1024, got 100000"),
    ("--forget-after", "nan", "argument --forget-after: must be a finite number of days >= 0, got nan"),
    ("--forget-after", "-3", "argument --forget-after: must be a finite number of days >= 0, got -3"),
])
def test_numeric_options_are_refused_when_parsed(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str,
                                                 value: str, message: str) -> None:
    # --shards 0 used to run, read 60,000 rows, apply none and exit 0; -1 raised OverflowError
    with pytest.raises(SystemExit) as exit_info:
        classify(str(SAMPLE), "-o", str(tmp_path / "out.parquet"), "--state", str(tmp_path / "st"), option, value)
    assert exit_info.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "st").exists()


def test_exit_codes_one_per_outcome(tmp_path: Path, small_model_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    model = ["--model", str(small_model_path)]
    out = tmp_path / "out.parquet"
    assert classify(str(rows(tmp_path)), "-o", str(tmp_path / "new" / "folder" / "out.parquet"), *model) == EXIT_DONE
    assert classify(str(rows(tmp_path)), "-o", str(out), *model) == EXIT_DONE
    assert not (tmp_path / "out.parquet.rejected.parquet").exists()
    # 1: done, with a row rejected (listed)
    assert classify(str(rows(tmp_path, band=["g"] * 7 + ["w"])), "-o", str(out), *model) == EXIT_SOME_REJECTED
    assert "rejected rows (with their reason):" in capsys.readouterr().out
    assert pq.read_table(out).num_rows == 2
    # 2: usage, before any work
    assert classify(str(tmp_path / "missing.parquet"), "-o", str(out), *model) == EXIT_USAGE
    # 3: nothing done: every row rejected (the old behaviour: an empty output and exit 0) ...
    out.unlink()
    assert classify(str(rows(tmp_path, band=["w"] * 8)), "-o", str(out), *model) == EXIT_NOT_DONE
    err = capsys.readouterr().err
    assert "every one of the 8 rows was rejected (unknown band: 8; first: row 0 (obj_id 1): unknown band)" in err
    assert not out.exists()
    assert pq.read_table(tmp_path / "out.parquet.rejected.parquet").num_rows == 8
    # ... no rows at all ...
    empty = rows(tmp_path, "empty.parquet", obj_id=[], band=[], t=[], mag=[], err=[])
    assert classify(str(empty), "-o", str(out), *model) == EXIT_NOT_DONE
    assert "the input holds no observation rows" in capsys.readouterr().err
    # ... --strict and one rejected row: nothing classified, no state written ...
    strict_input = rows(tmp_path, band=["g"] * 7 + ["w"])
    assert classify(str(strict_input), "-o", str(out), *model, "--strict", "--state", str(tmp_path / "st")) == 3
    assert "--strict: 1 of 8 rows rejected (unknown band: 1; first: row 7 (obj_id 2): unknown band)" in \
        capsys.readouterr().err
    assert not out.exists() and not list((tmp_path / "st").glob("*.state"))
    # ... or the state not committed (a full disk)
    def full_disk(self: Engine, path: str) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(Engine, "save_state", full_disk)
    assert classify(str(rows(tmp_path)), "-o", str(out), *model, "--state", str(tmp_path / "st")) == EXIT_NOT_DONE
    assert "No space left on device" in capsys.readouterr().err


def test_an_output_that_is_an_input_or_a_folder_is_refused_before_any_work(tmp_path: Path, small_model_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = rows(tmp_path)
    before = source.read_bytes()
    assert classify(str(source), "-o", str(source), "--model", str(small_model_path)) == EXIT_USAGE
    assert f"-o {source} is the input {source}: refusing to overwrite it" in capsys.readouterr().err
    link = tmp_path / "link.parquet"
    link.symlink_to(source)
    assert classify(str(source), "-o", str(link), "--model", str(small_model_path)) == EXIT_USAGE
    assert source.read_bytes() == before
    (tmp_path / "folder").mkdir()
    assert classify(str(source), "-o", str(tmp_path / "folder"), "--model", str(small_model_path)) == EXIT_USAGE
    assert "is a folder; give a file name" in capsys.readouterr().err
    assert classify(str(source), "-o", str(source / "out.parquet"), "--model", str(small_model_path)) == EXIT_USAGE
    assert "cannot write in" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder", "in.parquet", "link.parquet",
                                                                "small.mbf"]  # no spill folder, no temp file


def test_an_output_symlink_is_written_through(tmp_path: Path, small_model_path: Path) -> None:
    target = tmp_path / "scores" / "night.parquet"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "latest.parquet"
    link.symlink_to(target)
    assert classify(str(rows(tmp_path)), "-o", str(link), "--model", str(small_model_path)) == EXIT_DONE
    assert link.is_symlink() and link.resolve() == target
    assert pq.read_table(target).num_rows == 2


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_killed_runs_are_removed_and_a_rerun_writes_no_state(tmp_path: Path,
                                                                          small_model_path: Path) -> None:
    dead, alive = dead_pid(), os.getppid()
    spill, live_spill = tmp_path / f".mbfast-shards-{dead}-x1y2", tmp_path / f".mbfast-shards-{alive}-a"
    (spill / "shard-00000").mkdir(parents=True)
    (spill / "shard-00000" / "part-000000.parquet").write_bytes(b"x" * 1000)
    live_spill.mkdir()
    temp = tmp_path / f".out.parquet.{dead}.tmp"
    temp.write_bytes(b"half")
    state = tmp_path / "st"
    state.mkdir()
    state_temp = state / f"shard-00003.state.tmp-{dead}-0"
    state_temp.write_bytes(b"half a state")
    arguments = [str(rows(tmp_path)), "-o", str(tmp_path / "out.parquet"), "--model", str(small_model_path),
                 "--state", str(state), "--shards", "4"]
    assert classify(*arguments) == EXIT_DONE
    assert not spill.exists() and not temp.exists() and not state_temp.exists()
    assert live_spill.exists()  # a running job's folder is left alone
    saved = {path.name: path.stat().st_mtime_ns for path in state.glob("*.state")}
    assert saved
    assert classify(*arguments) == EXIT_DONE  # the same night again: nothing applied, no state file rewritten
    assert {path.name: path.stat().st_mtime_ns for path in state.glob("*.state")} == saved
    assert sorted(path.name for path in state.iterdir() if not path.name.endswith(".state")) == ["manifest.json"]


def test_a_dask_output_folder_may_not_hold_the_input(tmp_path: Path) -> None:
    from mbfast.jobs.files import check_output

    (tmp_path / "night").mkdir()
    source = rows(tmp_path / "night")  # the Dask path replaces a whole output folder
    with pytest.raises(ValueError, match=f"-o {tmp_path / 'night'} is the input {source}: refusing to overwrite it"):
        check_output(tmp_path / "night", [source], folder=True)
    assert check_output(tmp_path / "scores", [source], folder=True) == (tmp_path / "scores").resolve()
