"""CPU kernels (cpp/ops/gemm*.cc, lstm_cell_cpu.cc): every kernel this CPU can run against mbfast.model.reference, and
the same exactness as tests/test_engine.py (stream == one row at a time == classify) inside each kernel, and
16-bit recurrent state (state_dtype="fp16").

The kernel is chosen once per process (cpuid, or MBFAST_KERNEL=portable|avx2|avx512|avx512_vnni|avx512_bf16 forcing
a lower one), so each forced kernel runs in a child process that writes its outputs to a file. Tolerances against
the float64 reference: fp32 rtol 1e-5, atol 1e-6 (as tests/test_engine.py); bf16 probabilities atol 2e-2 (weights
and GEMM inputs keep 8 significant bits), int8 probabilities atol 2e-2 (7 bits plus sign, per column and per row;
this random model sees ~6e-3), embedding and regression of both only checked for finiteness; fp16 state
probabilities atol 5e-3. int8 is bit-identical on every kernel (portable integer loops == vpdpbusd).
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mbfast
from mbfast import _core
from mbfast.engine import Engine, Status
from mbfast.model.modelfile import read_model
from mbfast.model.reference import ReferenceModel, preprocess_reference
from tests.support.engine import plasticc_sample, small_config, time_ordered_rows, write_random_model

# lowest first: a CPU runs every kernel up to its best
KERNELS = ("portable", "avx2", "avx512", "avx512_vnni", "avx512_bf16")
PRECISIONS = ("fp32", "bf16", "int8")
PROBS_ATOL = {"bf16": 2e-2, "int8": 2e-2}  # against the float64 reference


def kernel_that_runs(kernel: str, precision: str) -> str:
    """What Engine.cpu_kernel reports under MBFAST_KERNEL=kernel: bf16 without vdpbf16ps runs the avx2 kernel,
    int8 runs vpdpbusd (avx512_vnni) or the portable int8 kernel."""
    if precision == "bf16" and kernel in ("avx512", "avx512_vnni"):
        return "avx2"
    if precision == "int8":
        return "avx512_vnni" if kernel in ("avx512_vnni", "avx512_bf16") else "portable"
    return kernel
OUTPUTS = ("probs", "embedding", "regression")
ROOT = Path(__file__).resolve().parent.parent


@functools.cache
@functools.lru_cache(maxsize=1)
def supported_kernels() -> list[str]:
    """The kernels this CPU can run: its best one (asked in a child without MBFAST_KERNEL) and all below it."""
    env = {name: value for name, value in os.environ.items() if name != "MBFAST_KERNEL"}
    best = subprocess.run([sys.executable, "-c", "import mbfast; print(mbfast.build_info()['cpu_kernel'])"], cwd=ROOT,
                          env=env, check=True, capture_output=True, text=True).stdout.strip()
    return list(KERNELS[:KERNELS.index(best) + 1])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # widths that cross the 64-column panels and leave ragged 16-column vectors (4H = 84, 4Hc = 164), odd K and
    # [x | h] blocks that split a bf16 k pair (x of 21 or 41 values)
    config = small_config(band_hidden=21, central_hidden=41, classifier_hidden=70, regression_hidden=33)
    return write_random_model(tmp_path_factory.mktemp("kernels") / "wide.mbf", config)


@pytest.fixture(scope="module")
def wide_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # large enough that one-row steps split their products by columns over threads (cpp/column_team.cc splits
    # products of >= 16384 weights over >= 2 panels of 64 columns): gates of 5 and 7 panels (4H = 288,
    # 4Hc = 400), so the parts are uneven and the last panel is ragged
    config = small_config(band_hidden=72, central_hidden=100, classifier_hidden=136, regression_hidden=33)
    return write_random_model(tmp_path_factory.mktemp("kernels") / "wider.mbf", config)


def stream_outputs(model_path: str, precision: str, out_path: str, state_dtype: str = "fp32",
                   single_threads: int = 1) -> None:
    """Child process body: the sample in time order as one call (2 threads), one row per call (`single_threads`),
    and classify, saved to `out_path` with the kernel that ran."""
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    columns = lambda part: (curves.obj_id[part], curves.band[part], curves.t[part], curves.mag[part],  # noqa: E731
                            curves.err[part])
    whole = Engine.load(model_path, num_threads=2, precision=precision, state_dtype=state_dtype)
    batch = whole.step(*columns(rows), outputs=OUTPUTS)
    single = Engine.load(model_path, num_threads=single_threads, precision=precision, state_dtype=state_dtype)
    parts = [single.step(*columns(rows[i:i + 1]), outputs=OUTPUTS) for i in range(len(rows))]
    table = whole.classify(curves)
    current = single.predict(curves.object_ids)
    np.savez(out_path, kernel=whole.cpu_kernel, status=batch.status,
             **{name: getattr(batch, name) for name in OUTPUTS},
             **{f"single_{name}": np.concatenate([getattr(part, name) for part in parts]) for name in OUTPUTS},
             table_probs=table.probs, current_probs=current.probs)


def run_with_kernel(kernel: str, model_path: Path, precision: str, tmp_path: Path,
                    state_dtype: str = "fp32", single_threads: int = 1) -> dict[str, np.ndarray]:
    out_path = tmp_path / f"{kernel}_{precision}_{state_dtype}_{single_threads}.npz"
    code = ("import sys; from tests.test_kernels import stream_outputs; "
            f"stream_outputs({str(model_path)!r}, {precision!r}, {str(out_path)!r}, {state_dtype!r}, "
            f"{single_threads})")
    env = dict(os.environ, MBFAST_KERNEL=kernel)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    with np.load(out_path) as saved:
        return {name: saved[name] for name in saved.files}


def reference_outputs(model_path: Path, status: np.ndarray) -> dict[str, np.ndarray]:
    """The reference's outputs on the rows the engine predicted, in the engine's row order."""
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    reference = ReferenceModel(read_model(model_path))
    inputs = preprocess_reference(curves, n_skip=2)
    stream_obj = curves.obj_id[rows]
    expected = {name: np.full((len(rows), 1), np.nan) for name in OUTPUTS}
    for k in range(curves.n_objects):
        steps = reference.run_object(inputs, k)
        predicted = np.flatnonzero((stream_obj == curves.object_ids[k]) & (status == Status.PREDICTED))
        assert len(predicted) == len(steps)
        for name in OUTPUTS:
            values = np.array([getattr(step, name) for step in steps]).reshape(len(steps), -1)
            if expected[name].shape[1] != values.shape[1]:
                expected[name] = np.full((len(rows), values.shape[1]), np.nan)
            expected[name][predicted] = values
    return expected


def exact_run(kernel: str, model_path: Path, precision: str, tmp_path: Path, state_dtype: str = "fp32",
              single_threads: int = 1) -> dict[str, np.ndarray]:
    """run_with_kernel on a kernel this CPU has (the test is skipped otherwise), checked exact across batches."""
    if kernel not in supported_kernels():
        pytest.skip(f"this CPU has no {kernel}")
    got = run_with_kernel(kernel, model_path, precision, tmp_path, state_dtype, single_threads)
    assert_exact_across_batches(got)
    return got


def assert_exact_across_batches(got: dict[str, np.ndarray]) -> None:
    """Inside one kernel, batch composition and threads change nothing: one call == one row per call, and
    classify == predict after the stream."""
    for name in OUTPUTS:
        np.testing.assert_array_equal(got[f"single_{name}"], got[name], err_msg=name)
    np.testing.assert_array_equal(got["table_probs"], got["current_probs"])


def test_kernel_is_reported() -> None:
    info = mbfast.build_info()
    assert info["cpu_kernel"] in KERNELS
    assert set(info["cpu_precisions"]) == set(PRECISIONS)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_kernel_matches_reference_and_is_exact_across_batches(kernel: str, precision: str, model_path: Path,
                                                              tmp_path: Path) -> None:
    got = exact_run(kernel, model_path, precision, tmp_path)
    assert str(got["kernel"]) == kernel_that_runs(kernel, precision)

    want = reference_outputs(model_path, got["status"])
    predicted = got["status"] == Status.PREDICTED
    assert predicted.sum() > 100
    max_diff = {name: float(np.abs(got[name][predicted] - want[name][predicted]).max()) for name in OUTPUTS}
    print(f"{kernel} {precision}: maxdiff vs reference {max_diff}")
    if precision == "fp32":
        for name in OUTPUTS:
            np.testing.assert_allclose(got[name][predicted], want[name][predicted], rtol=1e-5, atol=1e-6,
                                       err_msg=name)
    else:
        np.testing.assert_allclose(got["probs"][predicted], want["probs"][predicted], rtol=0,
                                   atol=PROBS_ATOL[precision])
        assert all(np.isfinite(got[name][predicted]).all() for name in OUTPUTS)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_one_row_calls_split_over_threads_are_exact(kernel: str, precision: str, wide_model_path: Path,
                                                    tmp_path: Path) -> None:
    # One row per call on 2 threads: every product is split by columns between the threads (ColumnTeam); the
    # one-call run on 2 threads spreads chunks of objects over them instead. Both give the same bits.
    got = exact_run(kernel, wide_model_path, precision, tmp_path, single_threads=2)
    if precision == "fp32":
        want = reference_outputs(wide_model_path, got["status"])
        predicted = got["status"] == Status.PREDICTED
        np.testing.assert_allclose(got["probs"][predicted], want["probs"][predicted], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["avx2", "avx512_bf16"])
def test_native_bf16_equals_the_portable_emulation_to_rounding(kernel: str, model_path: Path, tmp_path: Path) -> None:
    # The same bf16 operands on both sides, only the order of the fp32 additions (avx512_bf16) or the cell's
    # exp and divisions (avx2, whose bf16 GEMM gives the emulation's bits) differ: on each object's first window
    # row (fresh state) the two agree to fp32 rounding, so a wrong k-pair or panel layout or a misplaced [x | h]
    # block would show. Later rows drift further: a last-bit difference can flip a bf16 rounding of the state.
    if kernel not in supported_kernels():
        pytest.skip(f"this CPU has no {kernel}")
    native = run_with_kernel(kernel, model_path, "bf16", tmp_path)
    emulated = run_with_kernel("portable", model_path, "bf16", tmp_path)
    predicted = native["status"] == Status.PREDICTED
    curves = plasticc_sample()
    stream_obj = curves.obj_id[time_ordered_rows(curves)]
    first = np.zeros(len(predicted), dtype=bool)
    first[np.flatnonzero(predicted)[np.unique(stream_obj[predicted], return_index=True)[1]]] = True
    for name in OUTPUTS:
        diff = np.abs(native[name] - emulated[name])
        print(f"bf16 {kernel} vs emulation, {name}: maxdiff first rows {diff[first].max():.2e}, "
              f"all rows {diff[predicted].max():.2e}")
        np.testing.assert_allclose(native[name][first], emulated[name][first], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(native[name][predicted], emulated[name][predicted], rtol=0, atol=2e-2,
                                   err_msg=name)


@pytest.mark.parametrize("wide", [False, True])
def test_int8_vnni_equals_the_portable_kernel_bit_for_bit(wide: bool, model_path: Path, wide_model_path: Path,
                                                          tmp_path: Path) -> None:
    # MBFAST_KERNEL=avx512 runs the portable int8 GEMM (no vpdpbusd) beside the same AVX-512 element-wise ops
    # (LSTM cell, LayerNorm) as avx512_vnni, so only the GEMM kernel differs. It does the same integer sums (exact
    # int32) and the same float epilogue (explicit fmas), so every output of every row is identical: on the wide
    # model with one-row calls split by columns over 2 threads too. (MBFAST_KERNEL=portable also swaps the
    # element-wise ops, whose exp and divisions round differently.)
    if "avx512_vnni" not in supported_kernels():
        pytest.skip("this CPU has no avx512_vnni")
    path = wide_model_path if wide else model_path
    vnni = run_with_kernel("avx512_vnni", path, "int8", tmp_path, single_threads=2 if wide else 1)
    portable = run_with_kernel("avx512", path, "int8", tmp_path, single_threads=2 if wide else 1)
    assert str(vnni["kernel"]) == "avx512_vnni" and str(portable["kernel"]) == "portable"
    predicted = vnni["status"] == Status.PREDICTED
    assert predicted.sum() > 100
    for name in (*OUTPUTS, *(f"single_{name}" for name in OUTPUTS), "table_probs"):
        np.testing.assert_array_equal(vnni[name], portable[name], err_msg=name)


def test_int8_is_close_to_fp32(model_path: Path) -> None:
    # A coarser check than the reference test, on the same engine path: int8 moves probabilities by much less
    # than the stated tolerance, and a bad scale (a block quantised with the other block's range, a missing
    # 128 * sum offset) moves them by far more.
    curves = plasticc_sample()
    fp32 = Engine.load(model_path, num_threads=1).classify(curves).probs
    int8 = Engine.load(model_path, num_threads=1, precision="int8").classify(curves).probs
    diff = np.abs(int8 - fp32)
    print(f"int8 vs fp32: maxdiff {diff.max():.2e}, mean {diff.mean():.2e}")
    assert diff.max() < 2e-2 and diff.mean() < 2e-3
    assert (int8 != fp32).any()  # int8 really ran


@pytest.mark.parametrize("kernel", ["portable", "avx2", "avx512"])
def test_fp16_state_is_exact_across_batches_and_close_to_reference(kernel: str, model_path: Path,
                                                                    tmp_path: Path) -> None:
    got = exact_run(kernel, model_path, "fp32", tmp_path, state_dtype="fp16")
    want = reference_outputs(model_path, got["status"])
    predicted = got["status"] == Status.PREDICTED
    max_diff = {name: float(np.abs(got[name][predicted] - want[name][predicted]).max()) for name in OUTPUTS}
    print(f"{kernel} fp16 state: maxdiff vs reference {max_diff}")
    np.testing.assert_allclose(got["probs"][predicted], want["probs"][predicted], rtol=0, atol=5e-3)


def test_fp16_state_save_load_continues_exactly(model_path: Path, tmp_path: Path) -> None:
    curves = plasticc_sample()
    rows = time_ordered_rows(curves)
    first, rest = rows[:len(rows) // 2], rows[len(rows) // 2:]
    columns = lambda part: (curves.obj_id[part], curves.band[part], curves.t[part], curves.mag[part],  # noqa: E731
                            curves.err[part])
    straight = Engine.load(model_path, num_threads=1, state_dtype="fp16")
    straight.step(*columns(first))
    expected = straight.step(*columns(rest)).probs
    halted = Engine.load(model_path, num_threads=1, state_dtype="fp16")
    halted.step(*columns(first))
    halted.save_state(tmp_path / "half.mbs")
    resumed = Engine.load(model_path, num_threads=1, state_dtype="fp16", state=tmp_path / "half.mbs")
    np.testing.assert_array_equal(resumed.step(*columns(rest)).probs, expected)
    wide = Engine.load(model_path, num_threads=1, state=tmp_path / "half.mbs")  # fp32 engine reads the same file
    assert len(wide) == len(halted)
    assert straight.state_bytes_per_object < Engine.load(model_path).state_bytes_per_object


def test_unknown_or_unsupported_kernel_is_refused() -> None:
    code = "import mbfast; mbfast.build_info()"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, MBFAST_KERNEL="sse9"),
                          capture_output=True, text=True)
    assert done.returncode != 0 and "MBFAST_KERNEL must be portable, avx2, avx512, avx512_vnni or avx512_bf16" in \
        done.stderr


def test_precision_is_checked(model_path: Path) -> None:
    with pytest.raises(ValueError, match="precision on cpu must be one of"):
        Engine.load(model_path, precision="fp16")
    engine = Engine.load(model_path, precision="bf16")
    assert engine.precision == "bf16" and "precision=bf16" in repr(engine)
    engine = Engine.load(model_path, precision="int8")
    assert engine.precision == "int8" and engine.cpu_kernel in ("avx512_vnni", "portable")
    with pytest.raises(ValueError, match="precision on cpu must be one of"):
        Engine.load(model_path, precision="int4")
    if mbfast.build_info()["cuda"]:  # the C++ guard behind Engine.load's check, before any GPU is looked for
        with pytest.raises(ValueError, match="precision 'int8' is only available on the CPU"):
            _core.Engine(str(model_path), 1, "int8", "cuda", "fp32")
    with pytest.raises(ValueError, match="state_dtype must be 'fp32' or 'fp16'"):
        Engine.load(model_path, state_dtype="bf16")
    assert Engine.load(model_path, state_dtype="fp16").state_dtype == "fp16"
