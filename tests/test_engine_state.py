"""Engine state files: save mid-stream, load, continue bit-identically; damaged or foreign files are refused clearly."""
from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from mbfast.engine import STATE_FORMAT_VERSION, Engine
from tests.support.engine import plasticc_sample, small_config, time_ordered_rows, write_random_model

OUTPUTS = ("probs", "embedding", "regression")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("model") / "random.mbf")


def step_rows(engine: Engine, rows: np.ndarray):  # noqa: ANN201
    curves = plasticc_sample()
    return engine.step(curves.obj_id[rows], curves.band[rows], curves.t[rows], curves.mag[rows], curves.err[rows],
                       outputs=OUTPUTS)


@pytest.fixture(scope="module")
def saved(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A state file saved after the first 60 % of the stream, and the remaining rows."""
    rows = time_ordered_rows(plasticc_sample())
    cut = int(0.6 * len(rows))
    engine = Engine.load(model_path, num_threads=1)
    step_rows(engine, rows[:cut])
    engine.forget([int(plasticc_sample().object_ids[3])])  # a hole in the slots, moved last object included
    path = tmp_path_factory.mktemp("state") / "state.mbs"
    engine.save_state(path)
    return path, rows[cut:]


def test_save_load_continue_is_bit_identical(model_path: Path, saved: tuple[Path, np.ndarray]) -> None:
    path, rest = saved
    rows = time_ordered_rows(plasticc_sample())
    uninterrupted = Engine.load(model_path, num_threads=2)
    step_rows(uninterrupted, rows[:len(rows) - len(rest)])
    uninterrupted.forget([int(plasticc_sample().object_ids[3])])
    held_at_cut = len(uninterrupted)
    expected = step_rows(uninterrupted, rest)

    for resumed in (Engine.load(model_path, num_threads=1, state=path), Engine.load(model_path, num_threads=2)):
        if len(resumed) == 0:
            resumed.load_state(path)
        assert len(resumed) == held_at_cut
        got = step_rows(resumed, rest)
        for name in ("status",) + OUTPUTS:
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
        ids = plasticc_sample().object_ids
        mine, theirs = resumed.predict(ids), uninterrupted.predict(ids)
        for name in ("probs", "embedding", "regression", "n_obs"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name), err_msg=name)


def test_state_bytes_per_object_is_what_the_file_holds(model_path: Path, saved: tuple[Path, np.ndarray],
                                                       tmp_path: Path) -> None:
    """The byte count and the file walk the same list of the store's arrays (state_store.h for_each_array)."""
    path, _ = saved
    engine = Engine.load(model_path, num_threads=1, state=path)
    header, checksum = 8 + 4 + 4 + 7 * 4 + 8, 4
    assert path.stat().st_size == header + len(engine) * engine.state_bytes_per_object + checksum
    half = Engine.load(model_path, num_threads=1, state=path, state_dtype="fp16")
    assert half.state_bytes_per_object < engine.state_bytes_per_object  # h, c as half in memory ...
    half.save_state(tmp_path / "half.mbs")
    assert (tmp_path / "half.mbs").stat().st_size == path.stat().st_size  # ... and fp32 in the file


def test_save_is_atomic_and_replaces(model_path: Path, saved: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    engine = Engine.load(model_path, num_threads=1, state=saved[0])
    target = tmp_path / "state.mbs"
    target.write_bytes(b"old contents")
    engine.save_state(target)
    assert target.read_bytes() == saved[0].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.mbs"]  # no temp file left behind
    header, checksum = 52, 4
    assert len(target.read_bytes()) == header + len(engine) * engine.state_bytes_per_object + checksum
    empty = Engine.load(model_path, num_threads=1)
    empty.save_state(tmp_path / "empty.mbs")
    empty.load_state(tmp_path / "empty.mbs")
    assert len(empty) == 0


def damaged(tmp_path: Path, data: bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


HEADER_BYTES = 8 + 4 + 4 + 7 * 4 + 8  # magic, format, model CRC, dimensions, object count; then obj_id (S,) int64


def with_checksum(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_damaged_state_files_are_refused_and_state_kept(model_path: Path, saved: tuple[Path, np.ndarray],
                                                        tmp_path: Path) -> None:
    data = saved[0].read_bytes()
    engine = Engine.load(model_path, num_threads=1, state=saved[0])
    held = len(engine)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    cases = {
        "corrupt": (bytes(flipped), "checksum mismatch"),
        "truncated": (data[:-100], "truncated or corrupt"),
        "header only": (data[:30], "truncated state file header"),
        "not a state file": (b"MBFAST\x00\x01" + data[8:], "bad magic"),
        "newer": (data[:8] + struct.pack("<I", STATE_FORMAT_VERSION + 1) + data[12:],
                  f"state file format {STATE_FORMAT_VERSION + 1} is newer than this mbfast \\(reads up to "
                  f"{STATE_FORMAT_VERSION}\\); upgrade mbfast"),
        "longer": (data + b"\x00", "truncated or corrupt"),
        "repeated obj_id": (with_checksum(data[:HEADER_BYTES + 8] + data[HEADER_BYTES:HEADER_BYTES + 8]
                                          + data[HEADER_BYTES + 16:-4]), "corrupt: obj_id .* appears twice"),
    }
    for name, (content, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            engine.load_state(damaged(tmp_path, content, name.replace(" ", "_")))
        assert len(engine) == held, name
    with pytest.raises(FileNotFoundError, match="no state file"):
        engine.load_state(tmp_path / "absent.mbs")


def test_state_of_another_model_is_refused(saved: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    same_shape = write_random_model(tmp_path / "other.mbf", small_config(), seed=11)
    with pytest.raises(ValueError, match="state was saved with a different model"):
        Engine.load(same_shape, state=saved[0])
    other_shape = write_random_model(tmp_path / "wide.mbf", small_config(band_hidden=16), seed=0)
    with pytest.raises(ValueError, match="different model"):
        Engine.load(other_shape, state=saved[0])


FIXTURE = Path(__file__).parent / "data" / "engine"


def test_state_format_1_fixture_still_loads() -> None:
    """tests/data/engine/state_v1.mbs was written by format 1 (make_state_v1.py); it must load and continue."""
    engine = Engine.load(FIXTURE / "tiny_model.mbf", num_threads=1, state=FIXTURE / "state_v1.mbs")
    expected = np.load(FIXTURE / "state_v1_expected.npz")
    prediction = engine.predict([1, 2, 3])
    for name in ("probs", "embedding", "regression", "n_obs"):
        np.testing.assert_array_equal(getattr(prediction, name), expected[name], err_msg=name)
    result = engine.step([2, 2, 2], ["r", "r", "r"], [70000.0, 70001.0, 70002.0], [20.0, 20.1, 20.2], [0.1] * 3)
    assert list(result.status_names) == ["warming_up", "warming_up", "predicted"]


def test_state_file_permissions_follow_umask(model_path: Path, tmp_path: Path) -> None:
    engine = Engine.load(model_path, num_threads=1)
    engine.save_state(tmp_path / "state.mbs")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "state.mbs").stat().st_mode & 0o777 == 0o666 & ~umask


def forged(data: bytes, config_bands: int, array: str, index: int, value: object) -> bytes:
    """`data` with element `index` of one state array set to `value` and the checksum made valid again (a forged or
    buggy-tool file: the CRC alone cannot catch it)."""
    n_objects = struct.unpack_from("<Q", data, HEADER_BYTES - 8)[0]
    dims = struct.unpack_from("<7I", data, 16)
    band_state = dims[0] * dims[1] * dims[2]
    central_state = dims[3] * dims[4]
    layout = [("obj_id", "<i8", 1), ("count", "<i4", config_bands), ("last_t", "<f8", config_bands),
              ("mag_sum", "<f8", config_bands), ("last_mag", "<f4", config_bands), ("last_err", "<f4", config_bands),
              ("prev_log_dt", "<f4", config_bands), ("prev_dmag", "<f4", config_bands),
              ("band_hidden", "<f4", band_state), ("band_cell", "<f4", band_state), ("central_t", "<f8", 1),
              ("central_hidden", "<f4", central_state), ("central_cell", "<f4", central_state),
              ("has_prediction", "u1", 1), ("probs", "<f4", dims[5]), ("regression", "<f4", dims[6])]
    offset = HEADER_BYTES
    body = bytearray(data[:-4])
    for name, dtype, width in layout:
        size = np.dtype(dtype).itemsize * width * n_objects
        if name == array:
            values = np.frombuffer(body, dtype=dtype, count=width * n_objects, offset=offset).copy()
            values[index] = value
            body[offset:offset + size] = values.tobytes()
            return with_checksum(bytes(body))
        offset += size
    raise KeyError(array)


def test_forged_state_values_are_refused(model_path: Path, saved: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """Issue 18.11: every scalar is range-checked on load, so a file with a valid checksum but impossible values is
    refused naming the object and field, and the engine keeps its state."""
    data = saved[0].read_bytes()
    engine = Engine.load(model_path, num_threads=1, state=saved[0])
    held = len(engine)
    ids = engine.object_ids()
    counts = engine.predict(ids[:1]).n_obs[0]
    seen = int(np.flatnonzero(counts)[0])  # a band of slot 0 with observations
    label = engine.bands[seen]
    where = f"corrupt: object {ids[0]} (slot 0): "
    B = len(engine.bands)
    cases = {
        "negative count": ("count", seen, -1, f"count of band '{label}' is -1, outside 0..1000000000"),
        "huge count": ("count", seen, 2**31 - 1, f"count of band '{label}' is 2147483647, outside 0..1000000000"),
        "nan last t": ("last_t", seen, np.nan, f"last t of band '{label}' is nan, outside +-1e12"),
        "inf last t": ("last_t", seen, np.inf, f"last t of band '{label}' is inf, outside +-1e12"),
        "zero err": ("last_err", seen, 0.0, f"last err of band '{label}' is 0, outside (0, inf)"),
        "inf central t": ("central_t", 0, -np.inf, "central t is -inf, outside +-1e12"),
        "has_prediction 2": ("has_prediction", 0, 2, "has_prediction is 2, outside 0..1"),
        "nan hidden": ("band_hidden", 5, np.nan, "recurrent state holds nan"),
        "no observation": ("count", slice(0, B), 0, "no band has an observation"),
    }
    for name, (array, index, value, message) in cases.items():
        path = damaged(tmp_path, forged(data, B, array, index, value), name.replace(" ", "_"))
        with pytest.raises(ValueError, match=f"^{re.escape(f'{path}: {where}{message}')}$"):
            engine.load_state(path)
        assert len(engine) == held, name
    for dtype in ("fp32", "fp16"):  # the fp16 store reads h, c block by block: same check
        fresh = Engine.load(model_path, num_threads=1, state_dtype=dtype)
        path = damaged(tmp_path, forged(data, B, "central_cell", 7, np.inf), "inf_cell")
        with pytest.raises(ValueError, match=f"^{re.escape(f'{path}: {where}recurrent state holds inf')}$"):
            fresh.load_state(path)
        assert len(fresh) == 0


def test_observation_count_is_bounded(model_path: Path, saved: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    data = saved[0].read_bytes()
    engine = Engine.load(model_path, num_threads=1, state=saved[0])
    obj_id = int(engine.object_ids()[0])
    seen = int(np.flatnonzero(engine.predict([obj_id]).n_obs[0])[0])
    path = damaged(tmp_path, forged(data, len(engine.bands), "count", seen, 1_000_000_000), "full.mbs")
    engine.load_state(path)  # the most a state may hold
    with pytest.raises(ValueError, match=f"^row 0 \\(obj_id {obj_id}\\): band '{engine.bands[seen]}' of this object "
                                         "already has 1000000000 observations, the most the engine counts$"):
        engine.step([obj_id], [seen], [1e6], [20.0], [0.1])


def test_nul_in_a_path_is_refused(model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18.11: the OS stops at a NUL, so save_state('night\\0.state') used to write ./night."""
    monkeypatch.chdir(tmp_path)
    engine = Engine.load(model_path, num_threads=1)
    with pytest.raises(ValueError, match=r"^state path contains a NUL character: 'night\\x00.state'$"):
        engine.save_state("night\0.state")
    with pytest.raises(ValueError, match=r"^state path contains a NUL character: 'night\\x00.state'$"):
        engine.load_state("night\0.state")
    with pytest.raises(ValueError, match=r"^model path contains a NUL character: "):
        Engine.load(f"{model_path}\0.old")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="^state path contains a NUL character$"):
        engine._core.save_state("night\0.state")  # the core's own guard
    assert list(tmp_path.iterdir()) == []
