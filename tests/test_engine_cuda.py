"""CUDA engine (Engine.load(device="cuda"), docs/cuda.md) against the CPU engine, which tests/test_engine.py ties to
mbfast.model.reference. Without a GPU only the error paths run; everything else skips.

Tolerances, CUDA against CPU at every step of real PLAsTiCC light curves:
  fp32: probs, embedding and regression rtol 1e-4, atol 1e-4 (the GPU sums products in another order, with FMA).
  bf16: probs atol 5e-2 against CPU fp32 (weights and GEMM inputs keep 8 significant bits; tests/test_kernels.py
        allows 2e-2 for the CPU's own bf16 against the reference), and atol 1e-2 against CPU bf16, which rounds the
        same weights and inputs the same way.
  fp16: probs atol 1e-2 against CPU fp32 (11 significant bits).
Exact (assert_array_equal) on the GPU itself, as on the CPU: one call == one row per call, save -> load -> continue.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mbfast
from mbfast import _core
from mbfast.engine import Engine, Status, StepResult
from tests.support.engine import plasticc_sample, small_config, time_ordered_rows, write_random_model

OUTPUTS = ("probs", "embedding", "regression")
requires_cuda = pytest.mark.skipif(not mbfast.cuda_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu"] + (["cuda"] if mbfast.cuda_available() else [])
# precision -> (CPU precision compared with, probs atol); embedding/regression are checked with the fp32 tolerances
# only in fp32
TOLERANCE = {"fp32": ("fp32", 1e-4), "bf16": ("bf16", 1e-2), "fp16": ("fp32", 1e-2)}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("cuda") / "random.mbf")


@pytest.fixture(scope="module")
def wide_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the default model's widths (H = Hc = 64) and odd ones that leave ragged 64-column GEMM tiles
    config = small_config(band_hidden=64, central_hidden=64, classifier_hidden=70, regression_hidden=33)
    return write_random_model(tmp_path_factory.mktemp("cuda") / "wide.mbf", config, seed=1)


def step_calls(engine: Engine, rows: np.ndarray, call_rows: int) -> StepResult:
    """Stream `rows` of plasticc_sample() in calls of `call_rows` rows; one StepResult over all of them."""
    curves = plasticc_sample()
    parts = []
    for begin in range(0, len(rows), call_rows):
        part = rows[begin:begin + call_rows]
        parts.append(engine.step(curves.obj_id[part], curves.band[part], curves.t[part], curves.mag[part],
                                 curves.err[part], outputs=OUTPUTS))
    return StepResult(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("status",) + OUTPUTS))


def assert_close(got: StepResult, want: StepResult, atol: float, names: tuple[str, ...] = OUTPUTS) -> None:
    np.testing.assert_array_equal(got.status, want.status)
    predicted = want.status == Status.PREDICTED
    for name in names:
        a, b = getattr(got, name)[predicted], getattr(want, name)[predicted]
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        print(f"maxdiff cuda vs cpu {name}: {diff:.3g}")
        np.testing.assert_allclose(a, b, rtol=atol, atol=atol, err_msg=f"{name}: maxdiff {diff:.3g}")
        assert np.isnan(getattr(got, name)[~predicted]).all()


# ------------------------------------------------------------------------------------------------------------------
# what runs everywhere: the refusals and the device query
# ------------------------------------------------------------------------------------------------------------------

def test_cuda_device_count_never_fails() -> None:
    count = _core.cuda_device_count()
    assert isinstance(count, int) and count >= 0
    if not mbfast.build_info()["cuda"]:
        assert count == 0
    assert mbfast.cuda_available() == (bool(mbfast.build_info()["cuda"]) and count > 0)


@pytest.mark.skipif(mbfast.cuda_available(), reason="a GPU is available here")
def test_cuda_unavailable_is_a_clear_error(model_path: Path) -> None:
    message = "mbfast was built without CUDA" if not mbfast.build_info()["cuda"] else "no CUDA device available"
    with pytest.raises(RuntimeError, match=message):
        Engine.load(model_path, device="cuda")
    with pytest.raises(RuntimeError, match=message):  # the C++ guard behind the Python check
        _core.Engine(str(model_path), 1, "fp32", "cuda")


def test_device_argument_checks(model_path: Path) -> None:
    engine = Engine.load(model_path, num_threads=1)
    assert engine.device == "cpu"
    assert "device=cpu" in repr(engine)
    for device in ("gpu", "cuda:x", "CUDA", 0):
        with pytest.raises(ValueError, match="device must be"):
            Engine.load(model_path, device=device)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must be"):
        _core.Engine(str(model_path), 1, "fp32", "tpu")
    with pytest.raises(ValueError, match="precision on cpu"):
        Engine.load(model_path, precision="fp16")


@pytest.mark.cuda
@requires_cuda
def test_cuda_refuses_int8(model_path: Path) -> None:
    with pytest.raises(ValueError, match=r"int8 runs on the CPU only"):
        Engine.load(model_path, device="cuda", precision="int8")


# ------------------------------------------------------------------------------------------------------------------
# CUDA against CPU (skipped without a GPU)
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("which", ["model_path", "wide_model_path"])
@pytest.mark.parametrize("call_rows", [1, 97, 100_000])
def test_cuda_matches_cpu_at_every_step(request: pytest.FixtureRequest, which: str, precision: str,
                                        call_rows: int) -> None:
    path = request.getfixturevalue(which)
    rows = time_ordered_rows(plasticc_sample())
    cpu_precision, atol = TOLERANCE[precision]
    want = step_calls(Engine.load(path, num_threads=2, precision=cpu_precision), rows, call_rows)
    gpu = Engine.load(path, device="cuda", precision=precision)
    assert gpu.device == "cuda:0" and gpu.precision == precision
    got = step_calls(gpu, rows, call_rows)
    assert_close(got, want, atol, OUTPUTS if precision == "fp32" else ("probs",))
    if precision == "bf16":  # and against fp32 on the CPU
        fp32 = step_calls(Engine.load(path, num_threads=2), rows, call_rows)
        assert_close(got, fp32, 5e-2, ("probs",))


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_one_call_equals_one_row_per_call_exactly(model_path: Path, precision: str) -> None:
    rows = time_ordered_rows(plasticc_sample())
    batch = step_calls(Engine.load(model_path, device="cuda", precision=precision), rows, len(rows))
    stream = step_calls(Engine.load(model_path, device="cuda", precision=precision), rows, 1)
    for name in ("status",) + OUTPUTS:
        np.testing.assert_array_equal(getattr(batch, name), getattr(stream, name), err_msg=name)


@pytest.mark.cuda
@requires_cuda
def test_cuda_predict_classify_and_forget_match_cpu(model_path: Path) -> None:
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    cut = len(rows) // 2
    engines = {device: Engine.load(model_path, num_threads=2, device=device) for device in ("cpu", "cuda")}
    forgotten = [int(curves.object_ids[0]), int(curves.object_ids[7])]
    results = {}
    for device, engine in engines.items():
        step_calls(engine, rows[:cut], 50)
        assert engine.forget(forgotten + [-1]) == 2  # holes in the slots; the last slots move into them
        results[device] = step_calls(engine, rows[cut:], 50)
    assert_close(results["cuda"], results["cpu"], 1e-4)
    assert len(engines["cuda"]) == len(engines["cpu"])
    ids = np.append(curves.object_ids, -5)
    cpu, gpu = engines["cpu"].predict(ids), engines["cuda"].predict(ids)
    np.testing.assert_array_equal(gpu.n_obs, cpu.n_obs)
    np.testing.assert_allclose(gpu.probs, cpu.probs, rtol=1e-4, atol=1e-4)
    cpu, gpu = engines["cpu"].classify(curves), engines["cuda"].classify(curves)
    np.testing.assert_array_equal(gpu.n_obs, cpu.n_obs)
    for name in OUTPUTS:
        np.testing.assert_allclose(getattr(gpu, name), getattr(cpu, name), rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.cuda
@requires_cuda
def test_cuda_wave_larger_than_one_kernel_batch(model_path: Path) -> None:
    """40 000 objects whose first window row lands in one wave: more rows than one kernel batch (32 768)."""
    rng = np.random.default_rng(0)
    n = 40_000
    obj_id = np.repeat(np.arange(n, dtype=np.int64), 4)
    band = np.tile(np.array([2, 2, 2, 3], dtype=np.int8), n)
    t = np.tile(np.array([1.0, 2.5, 4.0, 4.2]), n) + rng.uniform(0, 100, n).repeat(4)
    order = np.argsort(t, kind="stable")
    columns = (obj_id[order], band[order], t[order], rng.normal(20, 1, 4 * n).astype(np.float32),
               rng.uniform(0.01, 0.2, 4 * n).astype(np.float32))
    want = Engine.load(model_path, num_threads=2).step(*columns, outputs=OUTPUTS)
    got = Engine.load(model_path, device="cuda").step(*columns, outputs=OUTPUTS)
    assert (got.status == Status.PREDICTED).sum() == n
    assert_close(got, want, 1e-4)


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("saver, loader", [("cuda", "cpu"), ("cpu", "cuda"), ("cuda", "cuda")])
def test_state_files_move_between_devices(model_path: Path, tmp_path: Path, saver: str, loader: str) -> None:
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    cut = int(0.6 * len(rows))
    first = Engine.load(model_path, num_threads=2, device=saver)
    step_calls(first, rows[:cut], 64)
    first.forget([int(curves.object_ids[3])])
    path = tmp_path / "state.mbs"
    first.save_state(path)
    second = Engine.load(model_path, num_threads=2, device=loader, state=path)
    assert len(second) == len(first)
    continued, uninterrupted = step_calls(second, rows[cut:], 64), step_calls(first, rows[cut:], 64)
    if saver == loader:  # the same device continues bit-identically
        for name in ("status",) + OUTPUTS:
            np.testing.assert_array_equal(getattr(continued, name), getattr(uninterrupted, name), err_msg=name)
    else:
        assert_close(continued, uninterrupted, 1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_every_device_streams_like_the_cpu_engine(model_path: Path, device: str) -> None:
    """The style guide's on-every-available-device check: statuses exact, outputs within the fp32 tolerance."""
    rows = time_ordered_rows(plasticc_sample())
    want = step_calls(Engine.load(model_path, num_threads=1), rows, 200)
    got = step_calls(Engine.load(model_path, num_threads=1, device=device), rows, 200)
    assert_close(got, want, 1e-4)
