"""`import mbfast` is light, and the runtime (engine, batch jobs, stream, alerts, the command line) works with
neither Numba nor torch installed: they are the `train` extra's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

import mbfast

PACKAGE = Path(mbfast.__file__).resolve().parent
# the training side and the timed rivals of `mbfast bench` (the `train` and `bench` extras)
NOT_RUNTIME = ("mbfast.train", "mbfast.benchmark")
# run first in a child interpreter: any import of Numba or torch fails there, as on an install without the extra
REFUSE_TRAIN_EXTRA = """
import sys
class RefuseTrainExtra:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "torch"):
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)")
        return None
sys.meta_path.insert(0, RefuseTrainExtra())
"""


def runtime_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(NOT_RUNTIME) and name != "mbfast.cli.__main__":
            names.append(name)
    return names


def run_without_train_extra(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", REFUSE_TRAIN_EXTRA + code], capture_output=True, text=True,
                          cwd=cwd)


def test_the_runtime_modules_import_without_numba_and_torch() -> None:
    modules = runtime_modules()
    assert {"mbfast.engine", "mbfast.jobs.local", "mbfast.jobs.stream", "mbfast.alerts.read",
            "mbfast.cli.classify"} <= set(modules)
    code = f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\nprint('imported')"
    result = run_without_train_extra(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_the_refusal_works() -> None:
    """The blocker itself: an import of Numba under it fails, so the test above cannot pass by not blocking."""
    result = run_without_train_extra("import mbfast.train.preprocess")
    assert result.returncode == 1
    assert "No module named 'numba' (refused by the test)" in result.stderr


def test_engine_load_and_mbfast_classify_run_without_numba_and_torch(tmp_path: Path) -> None:
    code = ("import sys, mbfast\n"
            "from mbfast.cli import main\n"
            "from mbfast.lightcurves.sample import SAMPLE_CURVES, SAMPLE_DIR, load_sample\n"
            "engine = mbfast.Engine.load()\n"
            "curves = load_sample().curves\n"
            "print(engine.classify(curves).probs.shape)\n"
            "sys.exit(main(['classify', str(SAMPLE_DIR / SAMPLE_CURVES), '-o', 'scores.parquet', '--quiet']))\n")
    result = run_without_train_extra(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "(308, 14)"  # the sample's 14 x 22 objects, the lsst model's classes
    assert pq.read_metadata(tmp_path / "scores.parquet").num_rows == 308


def test_import_mbfast_does_not_import_torch() -> None:
    code = "import sys, mbfast; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_build_info_names_what_was_compiled() -> None:
    import mbfast

    info = mbfast.build_info()
    assert set(info) >= {"cuda", "simd", "compiler", "version"}
    assert info["version"] == mbfast.__version__
    assert isinstance(info["cuda"], bool)
    assert info["simd"] in {"avx512_bf16", "avx512_vnni", "avx512", "avx2", "portable"}
    assert isinstance(mbfast.cuda_available(), bool)
    if not info["cuda"]:  # a build without CUDA kernels never reports a usable GPU
        assert mbfast.cuda_available() is False


def test_the_command_line_registers_without_optional_dependencies() -> None:
    """`pip install mbfast` (no extras) must run `mbfast demo`: registering every sub-command imports no torch,
    fastavro, dask or light-curve."""
    code = ("import sys; from mbfast.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'fastavro', 'dask', 'light_curve', 'cramjam') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
