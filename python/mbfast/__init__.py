"""mbfast: a fast stateful inference engine for the multiband RNN classifier of Becker et al. (A&A 2025).

Import is light: NumPy and pyarrow only; never torch or Numba (training, mbfast.train, is the `mbfast[train]` extra).
"""
from __future__ import annotations

from mbfast import _core
from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.engine import Engine
from mbfast.lightcurves.table import LightCurves

__version__ = "0.1.0"

__all__ = ["Engine", "LightCurves", "ModelConfig", "RegressionTarget", "build_info", "cuda_available", "__version__"]


def build_info() -> dict[str, object]:
    """What this build compiled: {"cuda": bool, "cuda_architectures": str, "simd": str, "compiler": str, ...}."""
    return dict(_core.build_info())


def cuda_available() -> bool:
    """True when this build has CUDA kernels and a CUDA GPU is usable now."""
    info = _core.build_info()
    return bool(info["cuda"]) and _core.cuda_device_count() > 0
