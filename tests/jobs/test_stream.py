"""mbfast.jobs.stream.replay on real alert fixtures: ordering, deduplication, idempotence, split batches, restarts.

Every test runs mbfast.Engine, on small models with random weights: what is checked is the engine's step rules
(duplicate, late, warming up) and replay's bookkeeping around them, not a model's accuracy.
"""
from __future__ import annotations

import argparse
import fcntl
import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mbfast import Engine, exit_codes
from mbfast.alerts import ZtfCuts, read_alerts
from mbfast.cli import main
from mbfast.model.config import ModelConfig
from mbfast.model.layout import random_weights
from mbfast.model.modelfile import write_model
from mbfast.cli.stream import register
from mbfast.jobs.stream import LOCK_FILE, STEP_STATUSES, replay

DATA = Path(__file__).parents[1] / "data" / "alerts"
ZTF_FILES = [DATA / "ztf" / name for name in ("ztf_v3p3_ZTF19abvhduf.avro", "ztf_v3p3_3_packets_deflate.avro",
                                              "fink_ztf_v4p02_8_alerts.parquet", "kafka_snappy_8_packets.avro")]
LSST_PARQUET = DATA / "lsst" / "rubin_lsstcam_v10_0_25_alerts.parquet"
CLASSES = ("SNIa", "SNII", "AGN", "RRL")


def write_random_model(directory: Path, survey: str) -> Path:
    """A small model with random weights for `survey`: the real engine's step rules, not a model's accuracy."""
    bands = ("g", "r", "i") if survey == "ztf" else ("u", "g", "r", "i", "z", "y")
    config = ModelConfig(survey=survey, bands=bands, class_names=CLASSES, band_hidden=8, central_hidden=8,
                         classifier_hidden=8, band_head_hidden=8, regression_hidden=8)
    path = directory / f"{survey}.mbf"
    write_model(path, config, random_weights(config))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("models")
    return {survey: write_random_model(directory, survey) for survey in ("ztf", "lsst")}


@pytest.fixture
def ztf_engine(models: dict[str, Path]) -> Callable[[], Engine]:
    return lambda: Engine.load(models["ztf"], num_threads=1)


@pytest.fixture
def lsst_engine(models: dict[str, Path]) -> Callable[[], Engine]:
    return lambda: Engine.load(models["lsst"], num_threads=1)


def assert_current_probs(scores: pa.Table, engine: object) -> None:
    """Alerts whose detections were all applied before report their object's current probabilities."""
    probs = np.stack([scores.column(name).to_numpy(zero_copy_only=False) for name in CLASSES], axis=1)
    current = engine.predict(scores.column("obj_id").to_numpy()).probs  # type: ignore[attr-defined]
    np.testing.assert_array_equal(probs, current)


def scores_without_files(table: pa.Table) -> pa.Table:
    return table.drop_columns(["file"])


def test_scores_one_row_per_alert_in_time_order(tmp_path: Path, ztf_engine: Callable[[], Engine]) -> None:
    out = tmp_path / "scores.parquet"
    result = replay(ZTF_FILES, ztf_engine(), scores_path=out)
    scores = pq.read_table(out)
    assert scores.equals(result.scores)
    # 1 + 3 + 8 + 8 packets; ZTF19abvhduf's (candid 1048197683315015009) is in the first two files: scored once
    assert scores.num_rows == 1 + 3 + 8 + 8 - 1 and result.duplicate_alerts == 1
    assert scores.column("alert_id").to_pylist().count(1048197683315015009) == 1
    assert scores.column_names == ["obj_id", "object", "alert_id", "t", "status", "class", *CLASSES,
                                   "file", "packet"]
    t = scores.column("t").to_numpy()
    assert (np.diff(t) >= 0).all()
    assert set(scores.column("status").to_pylist()) <= {*STEP_STATUSES, "cut"}
    assert scores.column("object").to_pylist()[0].startswith("ZTF")
    # rows with a class have probabilities summing to 1
    probs = np.stack([scores.column(name).to_numpy(zero_copy_only=False) for name in CLASSES], axis=1)
    has = ~np.isnan(probs).any(axis=1)
    assert has.any()
    np.testing.assert_allclose(probs[has].sum(axis=1), 1.0, rtol=1e-6)
    assert [c is not None for c in scores.column("class").to_pylist()] == has.tolist()


def test_history_repeated_across_packets_is_stepped_once(ztf_engine: Callable[[], Engine]) -> None:
    """ZTF19abvhduf's packet is in two files: its 18 detections are stepped once and its alert scored once, from
    the first file."""
    result = replay(ZTF_FILES[:2], ztf_engine())
    assert result.rows_read == 18 + 19 and result.rows_stepped == 19
    assert result.step_counts["late"] == result.step_counts["duplicate"] == 0
    scores = result.scores.to_pylist()
    same = [row for row in scores if row["object"] == "ZTF19abvhduf"]
    assert len(same) == 1 and same[0]["status"] == "predicted" and same[0]["file"] == str(ZTF_FILES[0])
    assert result.scores.num_rows == 3 and result.duplicate_alerts == 1


def test_replaying_the_same_alerts_again_changes_nothing(tmp_path: Path,
                                                        ztf_engine: Callable[[], Engine]) -> None:
    state = tmp_path / "state"
    engine = ztf_engine()
    first = replay(ZTF_FILES, engine, state_dir=state)
    assert first.step_counts["predicted"] > 0
    saved = (state / "engine-000001.state").read_bytes()
    again = replay(ZTF_FILES, engine, state_dir=state, skip_done=False)
    assert (state / "engine-000002.state").read_bytes() == saved
    assert not (state / "engine-000001.state").exists()
    assert again.step_counts["predicted"] == again.step_counts["warming_up"] == 0
    statuses = set(again.scores.column("status").to_pylist())
    assert statuses <= {"duplicate", "late", "cut"}
    assert_current_probs(again.scores, engine)
    skipped = replay(ZTF_FILES, ztf_engine(), state_dir=state)
    assert skipped.files_already_done == [str(path) for path in ZTF_FILES] and skipped.scores.num_rows == 0


def split_by_time(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    table = pq.read_table(source)
    t = np.array([row["midpointMjdTai"] for row in table.column("diaSource").to_pylist()])
    cut = np.median(t)
    early, late = tmp_path / "early.parquet", tmp_path / "late.parquet"
    pq.write_table(table.filter(pa.array(t < cut)), early)
    pq.write_table(table.filter(pa.array(t >= cut)), late)
    return early, late


def earlier_alerts(tmp_path: Path, groups: list[list[int]], window: int = 3) -> list[Path]:
    """Files of alerts like those ZTF19abvhduf had before its fixture packet: prv[k] as candidate and the
    `window` detections before it as history (shorter than ZTF's 30 days, so that a later batch needs the
    state of an earlier one). One file per group of k values (0 <= k <= 20).
    """
    with open(DATA / "ztf" / "ztf_v3p3_ZTF19abvhduf.avro", "rb") as handle:
        reader = fastavro.reader(handle)
        packet = next(iter(reader))
        schema = reader.writer_schema
    history = packet["prv_candidates"] + [packet["candidate"]]
    files = []
    for number, group in enumerate(groups):
        records = []
        for k in group:
            candidate = {**packet["candidate"], **{key: value for key, value in history[k].items()
                                                   if key in packet["candidate"] and value is not None}}
            records.append({**packet, "candid": candidate["candid"], "candidate": candidate,
                            "prv_candidates": packet["prv_candidates"][max(0, k - window):k]})
        path = tmp_path / f"ZTF19abvhduf_{number}.avro"
        with open(path, "wb") as handle:
            fastavro.writer(handle, fastavro.parse_schema(schema), records)
        files.append(path)
    return files


@pytest.mark.parametrize("survey", ["ztf_one_object", "ztf", "lsst"])
def test_two_batches_with_save_and_load_equal_one_pass(tmp_path: Path, survey: str, ztf_engine: Callable[[], Engine],
                                                      lsst_engine: Callable[[], Engine]) -> None:
    if survey == "lsst":
        early, late = split_by_time(LSST_PARQUET, tmp_path)
        make = lsst_engine
    elif survey == "ztf_one_object":
        early, late = earlier_alerts(tmp_path, [[4, 8, 9], [13, 17, 20]])
        make = ztf_engine
    else:
        table = pq.read_table(ZTF_FILES[2])
        t = np.array([row["jd"] for row in table.column("candidate").to_pylist()])
        early, late = tmp_path / "early.parquet", tmp_path / "late.parquet"
        pq.write_table(table.filter(pa.array(t < np.median(t))), early)
        pq.write_table(table.filter(pa.array(t >= np.median(t))), late)
        make = ztf_engine
    one = replay([early, late], make())
    state = tmp_path / "state"
    first = replay([early], make(), state_dir=state)
    second = replay([late], make(), state_dir=state)       # a new engine: state comes from disk
    assert one.rows_stepped > 0
    joined = pa.concat_tables([first.scores, second.scores]).drop_columns(["file"])
    assert joined.equals(scores_without_files(one.scores))
    if survey == "ztf_one_object":  # the second batch continues the first one's object
        assert one.scores.num_rows == 6
        assert second.scores.column("status").to_pylist() == ["predicted"] * 3
        assert not replay([late], make()).scores.drop_columns(["file"]).equals(joined.slice(3))


def test_one_batch_per_alert_equals_one_pass_with_cut_alerts(tmp_path: Path,
                                                             ztf_engine: Callable[[], Engine]) -> None:
    """An alert whose own detection is cut (rb < 0.9 here) reports its object's probabilities up to its time.

    Full history (as in ZTF packets) so that no detection first shows up after later ones were applied.
    """
    files = earlier_alerts(tmp_path, [[k] for k in range(3, 21)], window=20)
    cuts = ZtfCuts(min_rb=0.9)
    one = replay(files, ztf_engine(), cuts=cuts)
    state = tmp_path / "state"
    parts = [replay([path], ztf_engine(), state_dir=state, cuts=cuts).scores for path in files]
    assert pa.concat_tables(parts).drop_columns(["file"]).equals(scores_without_files(one.scores))
    statuses = one.scores.column("status").to_pylist()
    has_probs = one.scores.column("class").is_valid().to_pylist()
    assert any(status == "cut" and valid for status, valid in zip(statuses, has_probs))


def test_crashed_batch_rerun_gives_the_same_scores(tmp_path: Path, lsst_engine: Callable[[], Engine]) -> None:
    early, late = split_by_time(LSST_PARQUET, tmp_path)
    state = tmp_path / "state"
    replay([early], lsst_engine(), state_dir=state)
    kept = {path.name: path.read_bytes() for path in state.iterdir()}
    reference_state = tmp_path / "reference"
    shutil.copytree(state, reference_state)
    reference = replay([late], lsst_engine(), state_dir=reference_state)

    class Crash(Exception):
        pass

    crashing = lsst_engine()

    def crash(path: str) -> None:
        raise Crash(path)

    crashing.save_state = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        replay([late], crashing, state_dir=state, scores_path=tmp_path / "scores.parquet")
    assert {path.name: path.read_bytes() for path in state.iterdir()} == kept
    rerun = replay([late], lsst_engine(), state_dir=state, scores_path=tmp_path / "scores.parquet")
    assert rerun.scores.equals(reference.scores)
    assert pq.read_table(tmp_path / "scores.parquet").equals(reference.scores)


def test_lsst_alert_statuses(tmp_path: Path, lsst_engine: Callable[[], Engine]) -> None:
    result = replay([LSST_PARQUET], lsst_engine())
    scores = result.scores.to_pylist()
    statuses = [row["status"] for row in scores]
    assert statuses.count("no_object") == 3                  # solar-system sources
    assert statuses.count("cut") == 3                         # negative psfFlux: flux <= flux_err
    object_22 = [row for row in scores if row["obj_id"] == 169738309211783177]
    assert len(object_22) == 1 and object_22[0]["status"] == "predicted"


def test_bad_packets_are_reported_and_the_rest_scored(tmp_path: Path, ztf_engine: Callable[[], Engine]) -> None:
    junk = tmp_path / "junk.avro"
    junk.write_bytes(b"Obj\x01" + bytes(20))
    result = replay([ZTF_FILES[0], junk], ztf_engine())
    assert [problem.file for problem in result.problems] == [str(junk)]
    assert result.scores.num_rows == 1


def test_model_for_another_survey_is_refused(lsst_engine: Callable[[], Engine]) -> None:
    with pytest.raises(ValueError, match="the model is for lsst but the alerts are ztf"):
        replay(ZTF_FILES[:1], lsst_engine())


def test_step_statuses_are_the_engines_codes() -> None:
    """replay names statuses by the engine's codes: index k of STEP_STATUSES is the status with code k."""
    from mbfast import _core

    assert [_core.STATUS_CODES[name] for name in STEP_STATUSES] == list(range(len(_core.STATUS_CODES)))
    assert STEP_STATUSES == ("predicted", "warming_up", "duplicate", "late", "invalid")


def test_cli_registration() -> None:
    parser = argparse.ArgumentParser(prog="mbfast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stream", "a.avro", "b.parquet", "--state", "s", "-o", "scores.parquet",
                              "--model", "m.mbf"])
    assert (args.alerts, args.state, args.output, args.model) == (["a.avro", "b.parquet"], "s", "scores.parquet",
                                                                  "m.mbf")
    assert args.min_rb == 0.65 and not args.apparent and callable(args.run)


def test_replay_with_the_engine(tmp_path: Path, ztf_engine: Callable[[], Engine]) -> None:
    """Idempotence and split batches == one pass, on mbfast.Engine with a small random-weight model."""
    make = ztf_engine
    early, late = earlier_alerts(tmp_path, [[2, 4, 8, 9], [13, 17, 20]])
    files = [early, late, *ZTF_FILES]
    state = tmp_path / "state"
    engine = make()
    one = replay(files, engine, state_dir=state)
    assert one.step_counts["predicted"] > 0 and one.step_counts["late"] == 0
    saved = (state / "engine-000001.state").read_bytes()
    before = engine.predict(np.unique(one.scores.column("obj_id").to_numpy())).probs

    again = replay(files, engine, state_dir=state, skip_done=False)
    assert again.step_counts["predicted"] == again.step_counts["warming_up"] == 0
    assert set(again.scores.column("status").to_pylist()) <= {"duplicate", "late", "cut"}
    np.testing.assert_array_equal(engine.predict(np.unique(one.scores.column("obj_id").to_numpy())).probs, before)
    assert (state / "engine-000002.state").read_bytes() == saved
    assert_current_probs(again.scores, engine)

    halves = tmp_path / "halves"
    first = replay([early], make(), state_dir=halves)
    second = replay([late, *ZTF_FILES], make(), state_dir=halves)
    joined = pa.concat_tables([first.scores, second.scores]).drop_columns(["file"])
    ordered = one.scores.drop_columns(["file"])
    assert joined.sort_by([("t", "ascending"), ("alert_id", "ascending")]).equals(
        ordered.sort_by([("t", "ascending"), ("alert_id", "ascending")]))


def test_kafka_messages_score_like_the_file_they_came_from(lsst_engine: Callable[[], Engine]) -> None:
    """read_messages + score_alerts (a Kafka consumer's loop) gives replay's scores for the same packets."""
    from mbfast.alerts import read_messages
    from mbfast.jobs.stream import score_alerts
    from tests.support.alerts import confluent_messages

    make = lsst_engine
    path = DATA / "lsst" / "rubin_lsstcam_v10_0_25_alerts.avro"
    from_file = replay([path], make()).scores
    messages, schema = confluent_messages(path, 12)
    engine = make()
    from_messages = score_alerts(read_messages(messages, {12: schema}, source="alerts/0"), engine).scores
    assert from_messages.num_rows == 25
    assert from_messages.drop_columns(["file"]).equals(from_file.drop_columns(["file"]))
    assert set(from_messages.column("file").to_pylist()) == {"alerts/0"}


def test_cli_stream_writes_scores_and_state(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            models: dict[str, Path]) -> None:
    parser = argparse.ArgumentParser(prog="mbfast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stream", str(LSST_PARQUET), "--state", str(tmp_path / "state"),
                              "-o", str(tmp_path / "scores.parquet"), "--model", str(models["lsst"])])
    assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["alerts"] == 25 and summary["problems"] == []
    assert summary["alert_status"]["no_object"] == 3
    assert pq.read_table(tmp_path / "scores.parquet").num_rows == 25
    assert json.loads((tmp_path / "state" / "replay.json").read_text())["state"] == "engine-000001.state"


def test_cli_stream_precision_reaches_the_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 models: dict[str, Path]) -> None:
    model = models["lsst"]
    parser = argparse.ArgumentParser(prog="mbfast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stream", str(LSST_PARQUET), "--state", str(tmp_path / "state"),
                              "-o", str(tmp_path / "scores.parquet"), "--model", str(model), "--precision", "int8"])
    assert args.run(args) == 0
    got = pq.read_table(tmp_path / "scores.parquet")
    scores = {precision: replay([LSST_PARQUET], Engine.load(model, num_threads=1, precision=precision),
                                state_dir=tmp_path / precision).scores for precision in ("fp32", "int8")}
    assert got.equals(scores["int8"])
    assert not got.equals(scores["fp32"])  # the two precisions give different probabilities here


def test_cli_stream_forget_after_bounds_the_state(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  models: dict[str, Path]) -> None:
    """--forget-after DAYS drops, before the state is committed, the objects whose newest detection is more than
    DAYS before the batch's newest: the saved state holds only the recent ones."""
    model = models["lsst"]
    full = Engine.load(model, num_threads=1)
    replay([LSST_PARQUET], full)
    held = full.object_ids()
    rows = read_alerts([LSST_PARQUET])
    last_seen = {int(obj): float(rows.t[rows.obj_id == obj].max()) for obj in held}
    days = 0.005  # these alerts span one night: keep the objects of its last 7 minutes
    recent = sorted(obj for obj, t in last_seen.items() if t >= rows.t.max() - days)
    assert 0 < len(recent) < len(held)

    parser = argparse.ArgumentParser(prog="mbfast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stream", str(LSST_PARQUET), "--state", str(tmp_path / "state"),
                              "-o", str(tmp_path / "scores.parquet"), "--model", str(model),
                              "--forget-after", str(days)])
    assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objects_forgotten"] == len(held) - len(recent)
    state = tmp_path / "state" / json.loads((tmp_path / "state" / "replay.json").read_text())["state"]
    resumed = Engine.load(model, num_threads=1, state=state)
    assert sorted(resumed.object_ids().tolist()) == recent
    for days in ("-1", "nan", "inf"):  # refused when the options are parsed, before any work (exit 2)
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["stream", str(LSST_PARQUET), "--state", str(tmp_path / "s2"), "-o",
                               str(tmp_path / "x.parquet"), "--model", str(model), "--forget-after", days])
        assert exit_info.value.code == 2
        assert f"argument --forget-after: must be a finite number of days >= 0, got {days}" in capsys.readouterr().err


def test_the_default_plasticc_model_replays_real_rubin_alerts(tmp_path: Path) -> None:
    """PLAsTiCC simulates LSST's ugrizy, so the shipped model takes LSST packets; a ZTF model would be refused."""
    engine = Engine.load()
    result = replay(sorted((DATA / "lsst").glob("*.parquet")), engine, state_dir=tmp_path / "state")
    assert result.scores.num_rows > 0
    assert set(result.scores.column("status").to_pylist()) <= {"predicted", "warming_up", "duplicate", "late",
                                                                 "invalid", "cut", "no_object"}


# --- the command's guarantees: one run per state folder, files consumed once, honest exit codes ---------------

def stream_command(*argv: str | Path) -> list[str]:
    return [sys.executable, "-m", "mbfast.cli", "stream", *map(str, argv)]


def run_cli(argv: list[str | Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict | None, str]:
    """Exit status, the JSON summary (None if none was printed) and stderr of `mbfast stream argv`."""
    code = main(["stream", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_a_second_run_on_a_state_folder_waits_for_the_first(tmp_path: Path, models: dict[str, Path]) -> None:
    """Two processes on one --state: the second says so and waits for the lock; both batches end up in the state."""
    early, late = split_by_time(LSST_PARQUET, tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    with open(state / LOCK_FILE, "a+") as held:  # a first run, holding the folder
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        second = subprocess.Popen(stream_command(late, "--state", state, "-o", tmp_path / "scores.parquet",
                                                 "--model", models["lsst"]), stderr=subprocess.PIPE, text=True)
        assert second.stderr is not None
        line = second.stderr.readline()  # blocks until the second run has reached the lock
        assert line == (f"mbfast stream: state folder {state} is in use by another run (pid 4242); waiting for it "
                        "to finish\n")
        time.sleep(0.5)
        assert second.poll() is None and not (state / "replay.json").exists()
    second.communicate(timeout=120)
    assert second.returncode == 0
    assert json.loads((state / "replay.json").read_text())["batches"] == 1

    # two real runs at once: whichever goes first, the other applies its batch on top of it
    runs = [subprocess.Popen(stream_command(path, "--state", tmp_path / "both", "-o", tmp_path / f"{path.stem}.scores",
                                            "--model", models["lsst"]), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for path in (early, late)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    record = json.loads((tmp_path / "both" / "replay.json").read_text())
    assert record["batches"] == 2 and sorted(entry["path"] for entry in record["files"]) == [str(early), str(late)]
    engine = Engine.load(models["lsst"], num_threads=1, state=tmp_path / "both" / record["state"])
    one_pass = Engine.load(models["lsst"], num_threads=1)
    replay([early, late], one_pass)
    assert sorted(engine.object_ids().tolist()) == sorted(one_pass.object_ids().tolist())


def test_the_same_file_twice_is_read_once(tmp_path: Path, lsst_engine: Callable[[], Engine]) -> None:
    """By content: a second path to the same bytes is skipped in the call and in later runs on the state."""
    copy = tmp_path / "copy.parquet"
    shutil.copyfile(LSST_PARQUET, copy)
    state = tmp_path / "state"
    once = replay([LSST_PARQUET], lsst_engine())
    twice = replay([LSST_PARQUET, LSST_PARQUET, copy], lsst_engine(), state_dir=state)
    assert twice.files_repeated == [str(LSST_PARQUET), str(copy)]
    assert twice.scores.num_rows == 25 and twice.duplicate_alerts == 0
    assert twice.scores.equals(once.scores)
    record = (state / "replay.json").read_bytes()
    again = replay([copy], lsst_engine(), state_dir=state)
    assert again.files_already_done == [str(copy)] and again.scores.num_rows == 0 and not again.committed
    assert (state / "replay.json").read_bytes() == record            # a completed batch: no new state file
    assert sorted(path.name for path in state.iterdir()) == ["engine-000001.state", "lock", "replay.json"]


def truncated_container(tmp_path: Path) -> Path:
    """The 8 ZTF Kafka packets one per block, the last block cut short: packets 0-6 read, packet 7 a problem."""
    with open(ZTF_FILES[3], "rb") as handle:
        reader = fastavro.reader(handle)
        schema, records = reader.writer_schema, list(reader)
    body = io.BytesIO()
    fastavro.writer(body, fastavro.parse_schema(schema), records, codec="deflate", sync_interval=1)
    path = tmp_path / "truncated.avro"
    path.write_bytes(body.getvalue()[:-100])
    return path


def test_a_file_with_problems_is_not_recorded_as_consumed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          models: dict[str, Path]) -> None:
    """The rerun reads it again and reports the problem again (exit 1 both times); the good file is done."""
    bad = truncated_container(tmp_path)
    argv = [ZTF_FILES[0], bad, "--state", tmp_path / "state", "-o", tmp_path / "s.parquet", "--model", models["ztf"]]
    code, first, _ = run_cli(argv, capsys)
    assert code == exit_codes.REJECTED and first is not None
    assert len(first["problems"]) == 1 and first["problems"][0].startswith(f"{bad}: packet 7: truncated")
    assert first["alerts"] == 1 + 7 and first["state_committed"]
    code, again, _ = run_cli(argv, capsys)
    assert code == exit_codes.REJECTED and again is not None
    assert again["problems"] == first["problems"] and again["files_already_done"] == [str(ZTF_FILES[0])]
    assert again["alerts"] == 7 and set(again["alert_status"]) <= {"duplicate", "late", "cut"}
    record = json.loads((tmp_path / "state" / "replay.json").read_text())
    assert [entry["path"] for entry in record["files"]] == [str(ZTF_FILES[0])]


def test_cli_usage_errors_are_one_line_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       models: dict[str, Path]) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    state, out = tmp_path / "state", tmp_path / "out.parquet"
    cases = {
        (folder, "--state", state, "-o", out): f"{folder}: is a folder, not an alert file",
        (tmp_path / "missing.avro", "--state", state, "-o", out): f"{tmp_path / 'missing.avro'}: no such alert file",
        (LSST_PARQUET, "--state", a_file, "-o", out): f"--state {a_file}: is a file, not a state folder",
        (LSST_PARQUET, "--state", a_file / "st", "-o", out): f"state folder {a_file / 'st'}: {a_file} is a file, "
                                                              "not a folder",
        (LSST_PARQUET, "--state", state, "-o", folder): f"output {folder}: is a folder; name the Parquet file to "
                                                         "write",
        (LSST_PARQUET, "--state", state, "-o", LSST_PARQUET): f"output {LSST_PARQUET}: is one of the alert files; "
                                                               "it would be overwritten",
        (LSST_PARQUET, "--state", "/proc/self/state", "-o", out): "state folder /proc/self/state: /proc/self is not "
                                                                   "writable",
    }
    for argv, message in cases.items():
        code, summary, err = run_cli([*argv, "--model", models["lsst"]], capsys)
        assert (code, summary, err) == (exit_codes.USAGE, None, f"mbfast stream: error: {message}\n"), argv
    assert not state.exists() and not out.exists()
    code, _, err = run_cli([LSST_PARQUET, "--state", state, "-o", "/proc/self/out.parquet"], capsys)
    assert code == exit_codes.USAGE and err.startswith("mbfast stream: error: output /proc/self/out.parquet: folder: ")
    assert err.endswith(" is not writable\n")


@pytest.mark.parametrize("content", [b"", b"junk at the start", b"Obj\x02 not quite avro", b"Obj\x01\x02\x00",
                                     "no diaSource"])
def test_unreadable_files_with_the_default_model_report_the_real_problem(
        content: bytes | str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not 'the model is for plasticc but the alerts are ztf': nothing was read, so exit 3 and the reason."""
    path = tmp_path / "alerts.avro"
    if content == "no diaSource":
        pq.write_table(pq.read_table(LSST_PARQUET).drop_columns(["diaSource"]), path)
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    code, summary, err = run_cli([path, "--state", tmp_path / "state", "-o", tmp_path / "s.parquet"], capsys)
    expected = {b"": "empty file",
                b"junk at the start": "neither an Avro container nor Parquet (starts with b'junk')",
                b"Obj\x02 not quite avro": "neither an Avro container nor Parquet (starts with b'Obj\\x02')",
                b"Obj\x01\x02\x00": "truncated Avro header",
                "no diaSource": "unknown alert schema 'alerts.avro': neither ZTF (candidate) nor LSST (diaSource) "
                                "fields"}[content]
    assert (code, err) == (exit_codes.NOT_DONE, "")
    assert summary is not None and summary["problems"] == [f"{path}: whole file: {expected}"]
    assert summary["alerts"] == 0 and not summary["state_committed"]
    assert not (tmp_path / "state" / "replay.json").exists()


def test_a_corrupt_replay_record_names_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                models: dict[str, Path]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for content, reason in (("{not json", "Expecting property name enclosed in double quotes: line 1 column 2 "
                                          "(char 1)"),
                            ("", "Expecting value: line 1 column 1 (char 0)"),
                            ('{"version": 1, "state": 3, "batches": 1, "files": []}',
                             "not a replay record (state, batches, files)")):
        (state / "replay.json").write_text(content)
        code, summary, err = run_cli([LSST_PARQUET, "--state", state, "-o", tmp_path / "s.parquet", "--model",
                                      models["lsst"]], capsys)
        assert (code, summary) == (exit_codes.USAGE, None)
        assert err == (f"mbfast stream: error: {state / 'replay.json'}: unreadable, {reason}; restore it or start "
                       "a new state folder\n")


def test_a_state_that_cannot_be_saved_exits_3_and_keeps_the_previous_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    early, late = split_by_time(LSST_PARQUET, tmp_path)
    state = tmp_path / "state"
    argv = ["--state", state, "-o", tmp_path / "s.parquet", "--model", models["lsst"]]
    assert run_cli([early, *argv], capsys)[0] == exit_codes.OK
    kept = {path.name: path.read_bytes() for path in state.iterdir()}

    def full_disk(self: Engine, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise RuntimeError(f"{path}: write failed: No space left on device")

    monkeypatch.setattr(Engine, "save_state", full_disk)
    code, summary, err = run_cli([late, *argv], capsys)
    assert (code, summary) == (exit_codes.NOT_DONE, None)
    assert err == (f"mbfast stream: error: state folder {state}: the batch was scored but its state was not saved "
                   f"({state / 'engine-000002.state'}: write failed: No space left on device); the previous state is "
                   "kept, run the batch again\n")
    assert {path.name: path.read_bytes() for path in state.iterdir()} == kept
    monkeypatch.undo()
    code, summary, _ = run_cli([late, *argv], capsys)
    # the rerun applies the batch's rows afresh: the failed run left nothing of them in the state
    assert code == exit_codes.OK and summary is not None and summary["step"]["warming_up"] == 8


def test_leftovers_of_killed_runs_are_removed(tmp_path: Path, lsst_engine: Callable[[], Engine]) -> None:
    early, late = split_by_time(LSST_PARQUET, tmp_path)
    state = tmp_path / "state"
    replay([early], lsst_engine(), state_dir=state)
    leftovers = ["engine-000002.state.tmp-4242-0", "engine-000002.state.tmp-4243-1", "replay.json.tmp",
                 "engine-000002.state"]  # killed during save_state, while writing the record, just before it
    for name in leftovers:
        (state / name).write_bytes(b"left by a killed run")
    (state / "notes.txt").write_text("the user's")
    result = replay([late], lsst_engine(), state_dir=state)
    assert result.committed
    assert sorted(path.name for path in state.iterdir()) == ["engine-000002.state", "lock", "notes.txt",
                                                             "replay.json"]
    assert (state / "engine-000002.state").read_bytes() != b"left by a killed run"


def test_an_output_through_a_symlink_writes_its_target_and_missing_folders_are_made(
        tmp_path: Path, lsst_engine: Callable[[], Engine]) -> None:
    target = tmp_path / "scores" / "night1.parquet"
    target.parent.mkdir()
    target.write_bytes(b"yesterday's")
    link = tmp_path / "latest.parquet"
    link.symlink_to(target)
    result = replay([LSST_PARQUET], lsst_engine(), scores_path=link)
    assert link.is_symlink() and pq.read_table(target).equals(result.scores)
    replay([LSST_PARQUET], lsst_engine(), scores_path=tmp_path / "new" / "folder" / "s.parquet")  # created
    assert pq.read_table(tmp_path / "new" / "folder" / "s.parquet").equals(result.scores)
    (tmp_path / "alerts.parquet").symlink_to(LSST_PARQUET)
    with pytest.raises(ValueError, match="is one of the alert files"):
        replay([LSST_PARQUET], lsst_engine(), scores_path=tmp_path / "alerts.parquet")
