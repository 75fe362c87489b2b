"""The engine under resource limits (issue 18): an allocation failure inside `step` changes nothing, thread creation
that fails names the limit instead of hanging, and state files load and save without holding the state twice. Each
case runs in a subprocess (the limits are per process) with a timeout."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from tests.support.engine import small_config, write_random_model

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, timeout: float = 120) -> dict[str, object]:
    """Runs `script` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_out_of_memory_inside_step_changes_nothing(tmp_path: Path) -> None:
    """Issue 18.1: the same call is tried under an address-space limit raised 2 MiB at a time, so the allocation
    fails at every point of the call in turn; each failure must leave the state as it was, and the rows must be
    accepted once memory allows (not refused as late)."""
    model = write_random_model(tmp_path / "model.mbf")
    result = run_script(f"""
        import json, resource
        import numpy as np
        from mbfast.engine import Engine, Status

        engine = Engine.load({str(model)!r}, num_threads=1)
        engine.step([1, 1, 1], ["g", "g", "g"], [60000.0, 60001.0, 60002.0], [20.0, 20.1, 20.2], [0.1] * 3)
        before = engine.predict([1])
        n_objects = 100_000  # object 1 and 100,000 new ones, 4 rows each
        ids = np.repeat(np.arange(1, n_objects + 2, dtype=np.int64), 4)
        band = np.zeros(len(ids), dtype=np.int8)
        band[:4] = 1  # object 1 continues in g
        t = np.tile(np.array([60003.0, 60004.0, 60005.0, 60006.0]), n_objects + 1)
        mag = np.full(len(ids), 20.0, dtype=np.float32)
        err = np.full(len(ids), 0.1, dtype=np.float32)

        def vm_bytes():
            with open("/proc/self/status") as handle:
                line = next(line for line in handle if line.startswith("VmSize:"))
            return int(line.split()[1]) * 1024

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        base = vm_bytes()
        failures = changed = 0
        for extra in range(0, 1024 * 2**20, 2 * 2**20):
            resource.setrlimit(resource.RLIMIT_AS, (base + extra, hard))
            try:
                result = engine.step(ids, band, t, mag, err)
            except MemoryError:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
                failures += 1
                after = engine.predict([1])
                changed += (len(engine) != 1 or not np.array_equal(after.n_obs, before.n_obs)
                            or not np.array_equal(after.probs, before.probs))
                continue
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            break
        statuses = np.bincount(result.status, minlength=len(Status)).tolist()
        print(json.dumps(dict(failures=failures, changed=changed, statuses=statuses, objects=len(engine),
                              n_obs=engine.predict([1]).n_obs.tolist())))
    """, timeout=300)
    assert result["failures"] >= 10  # the sweep did hit the call at many points
    assert result["changed"] == 0
    n_rows = 4 * 100_001
    # object 1 continues (4 window rows), each new object warms up twice then predicts twice
    assert result["statuses"] == [4 + 2 * 100_000, 2 * 100_000, 0, 0, 0]
    assert result["objects"] == 100_001
    assert result["n_obs"] == [[0, 7, 0, 0, 0, 0]]
    assert sum(result["statuses"]) == n_rows


def test_thread_limit_fails_with_the_limit_named(tmp_path: Path) -> None:
    """Issue 18.2: under an address-space limit thread stacks cannot be mapped after a few threads; the load must
    fail naming the limit (it used to hang for ever unwinding the pool)."""
    model = write_random_model(tmp_path / "model.mbf")
    result = run_script(f"""
        import json, resource
        from mbfast.engine import Engine

        with open("/proc/self/status") as handle:
            vm = int(next(line for line in handle if line.startswith("VmSize:")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + 256 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            Engine.load({str(model)!r}, num_threads=64)
            message = ""
        except RuntimeError as error:
            message = str(error)
        print(json.dumps(dict(message=message)))
    """, timeout=60)
    message = result["message"]
    assert message.startswith("cannot start thread "), message
    assert " of num_threads=64: " in message
    assert "RLIMIT_AS (ulimit -v) " in message and "RLIMIT_NPROC (ulimit -u) " in message
    assert message.endswith("; ask for fewer threads")


def test_num_threads_is_bounded(small_model_path: Path) -> None:
    from mbfast.engine import MAX_THREADS, Engine

    assert MAX_THREADS == max(64, 4 * (os.cpu_count() or 1))
    for bad in (0, -1, MAX_THREADS + 1, True, 2.0):
        with pytest.raises(ValueError, match=rf"^num_threads must be an integer from 1 to {MAX_THREADS} \(4 per "
                                             rf"hardware thread, at least 64\), got {bad!r}$"):
            Engine.load(small_model_path, num_threads=bad)


def test_model_file_memory_is_bounded_by_its_size(tmp_path: Path) -> None:
    """Issue 18.14: a ~700-byte file whose config asks for a huge model, and a 2 GiB file with a bad magic, are
    refused by name under a 256 MiB address-space allowance (the loader used to allocate the config's model, and to
    read the whole file before its 8-byte magic)."""
    config = json.loads(small_config().to_json())
    config.update(band_layers=1_000_000, band_hidden=20_000, central_hidden=20_000)
    body = bytearray(b"MBFAST\x00\x01" + struct.pack("<II", 1, 1))
    text = json.dumps(config).encode()
    body += struct.pack("<Q", len(text)) + text + struct.pack("<I", 0)
    body += struct.pack("<I", zlib.crc32(bytes(body)))
    huge_config = tmp_path / "huge_config.mbf"
    huge_config.write_bytes(bytes(body))
    assert len(body) < 1000
    big = tmp_path / "big.mbf"
    with open(big, "wb") as handle:  # sparse: no disk used
        handle.write(b"NOTMBF..")
        handle.truncate(2 * 2**30)
    result = run_script(f"""
        import json, resource
        from mbfast.engine import Engine

        with open("/proc/self/status") as handle:
            vm = int(next(line for line in handle if line.startswith("VmSize:")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + 256 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))
        messages = []
        for path in ({str(huge_config)!r}, {str(big)!r}):
            try:
                Engine.load(path, num_threads=1)
                messages.append("")
            except (ValueError, MemoryError) as error:
                messages.append(type(error).__name__ + ": " + str(error))
        print(json.dumps(messages))
    """, timeout=60)
    huge_message, big_message = result
    assert huge_message.startswith(f"ValueError: {huge_config}: model tensors do not match the layout:\n  missing "
                                   "bands.0.stack.lstm.0.weight_ih_l0 (80000, 4)\n"), huge_message
    assert huge_message.count("\n  missing ") == 100
    assert huge_message.endswith("\n  (stopped after 100 problems: the config asks for tensors the file does not "
                                 "hold)")
    assert big_message == f"ValueError: {big}: not an mbfast model file (bad magic)"


def test_fp16_state_files_stream_and_forget_gives_memory_back(tmp_path: Path) -> None:
    """Issue 18.15: save_state/load_state of an fp16 store used to peak at ~3x the state (a widened fp32 copy), and
    forget kept the capacity, so a later load_state needed the old state's room plus the new one. Peak RSS is read
    from /proc (VmHWM, reset through clear_refs) around each call, as a ratio to the state's size."""
    config = small_config(bands=("g", "r", "i"), band_hidden=64, band_layers=3, central_hidden=64, central_layers=2)
    model = write_random_model(tmp_path / "model.mbf", config)
    state = tmp_path / "state.mbs"
    result = run_script(f"""
        import ctypes, json
        import numpy as np
        from mbfast.engine import Engine

        def status(field):
            with open("/proc/self/status") as handle:
                return int(next(line for line in handle if line.startswith(field + ":")).split()[1]) * 1024

        def peak_of(call):
            trim()
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # VmHWM := VmRSS
            before = status("VmRSS")
            call()
            return status("VmHWM") - before

        libc = ctypes.CDLL("libc.so.6")
        trim = lambda: libc.malloc_trim(0)  # freed heap pages back to the OS, so RSS shows what is held
        ids = np.arange(30_000, dtype=np.int64)
        engine = Engine.load({str(model)!r}, num_threads=1, state_dtype="fp16")
        for k in range(4):
            engine.step(ids, np.full(len(ids), k % 3, dtype=np.int8), np.full(len(ids), 60000.0 + k),
                        np.full(len(ids), 20.0, dtype=np.float32), np.full(len(ids), 0.1, dtype=np.float32),
                        outputs=())
        size = len(engine) * engine.state_bytes_per_object
        save = peak_of(lambda: engine.save_state({str(state)!r}))
        fresh = Engine.load({str(model)!r}, num_threads=1, state_dtype="fp16")
        load = peak_of(lambda: fresh.load_state({str(state)!r}))
        trim()
        held = status("VmRSS")
        fresh.forget(ids)
        trim()
        released = held - status("VmRSS")
        reload = peak_of(lambda: fresh.load_state({str(state)!r}))
        print(json.dumps(dict(size=size, save=save / size, load=load / size, released=released / size,
                              reload=reload / size, objects=len(fresh))))
    """, timeout=300)
    print(result)
    assert result["size"] > 50 * 2**20 and result["objects"] == 30_000
    assert result["save"] < 0.25  # the file is written from the store itself, 64 k values converted at a time
    assert result["load"] < 1.25  # the new store, and nothing twice
    assert result["released"] > 0.8  # forget gave the room back
    assert result["reload"] < 1.25
