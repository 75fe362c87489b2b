from __future__ import annotations

import subprocess
import sys


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
    assert mbfast.cuda_available() in (True, False)


def test_the_command_line_registers_without_optional_dependencies() -> None:
    """`pip install mbfast` (no extras) must run `mbfast demo`: registering every sub-command imports no torch,
    fastavro, dask or light-curve."""
    code = ("import sys; from mbfast.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'fastavro', 'dask', 'light_curve', 'cramjam') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
