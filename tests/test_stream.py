"""mbfast.stream.replay on real alert fixtures: ordering, deduplication, idempotence, split batches, restarts.

Every test runs mbfast.Engine, on small models with random weights: what is checked is the engine's step rules
(duplicate, late, warming up) and replay's bookkeeping around them, not a model's accuracy.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from collections.abc import Callable

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mbfast import Engine
from mbfast.alerts import ZtfCuts, read_alerts
from mbfast.config import ModelConfig
from mbfast.modelfile import write_model
from mbfast.stream import STEP_STATUSES, register, replay
from tests.conftest import random_tensors

DATA = Path(__file__).parent / "data" / "alerts"
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
    write_model(path, config, random_tensors(config))
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
    assert scores.num_rows == 1 + 3 + 8 + 8
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
    """ZTF19abvhduf's packet is in two files: its 18 detections are stepped once, both alerts get one score."""
    result = replay(ZTF_FILES[:2], ztf_engine())
    assert result.rows_read == 18 + 19 and result.rows_stepped == 19
    assert result.step_counts["late"] == result.step_counts["duplicate"] == 0
    scores = result.scores.to_pylist()
    same = [row for row in scores if row["object"] == "ZTF19abvhduf"]
    assert len(same) == 2 and same[0]["status"] == same[1]["status"] == "predicted"
    assert [same[0][name] for name in CLASSES] == [same[1][name] for name in CLASSES]


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
    from mbfast.stream import score_alerts
    from tests.alerts_support import confluent_messages

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
    args = parser.parse_args(["stream", str(LSST_PARQUET), "--state", str(tmp_path / "s2"), "-o",
                              str(tmp_path / "x.parquet"), "--model", str(model), "--forget-after", "-1"])
    with pytest.raises(ValueError, match="--forget-after must be a number of days >= 0"):
        args.run(args)


def test_the_default_plasticc_model_replays_real_rubin_alerts(tmp_path: Path) -> None:
    """PLAsTiCC simulates LSST's ugrizy, so the shipped model takes LSST packets; a ZTF model would be refused."""
    engine = Engine.load()
    result = replay(sorted((DATA / "lsst").glob("*.parquet")), engine, state_dir=tmp_path / "state")
    assert result.scores.num_rows > 0
    assert set(result.scores.column("status").to_pylist()) <= {"predicted", "warming_up", "duplicate", "late",
                                                                 "invalid", "cut", "no_object"}
