"""Engine: the stateful inference engine for streams of observations (paper §3.5: one band step + one central step
per new observation), backed by the C++ core.

This module only checks and converts input, calls mbfast._core and returns NumPy; the maths is in cpp/step.h and
its slow twin is mbfast.model.reference. Dimension legend: N rows of a call, K objects, B bands, C classes, H central
hidden (embedding width), T regression targets.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mbfast import _core, models
from mbfast.model.config import ModelConfig
from mbfast.model.counts import model_info
from mbfast.lightcurves.table import LightCurves, band_indices, curves_from_arrow

if TYPE_CHECKING:
    import pandas as pd

    from mbfast.lightcurves.surveys import Survey

DEFAULT_MODEL = models.shipped_path(models.DEFAULT)
STATE_FORMAT_VERSION = 2  # byte layout of state files; equals _core.STATE_FORMAT_VERSION (tested)
OUTPUTS = ("probs", "embedding", "regression")
CPU_PRECISIONS: tuple[str, ...] = tuple(_core.CPU_PRECISIONS)    # Engine.load(precision=...) on the CPU
CUDA_PRECISIONS: tuple[str, ...] = tuple(_core.CUDA_PRECISIONS)  # and on a GPU
# more threads than this only contend; a typo like 1000 would otherwise run into the process's thread limit
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))


class Status(IntEnum):
    """Per-row outcome of Engine.step; values equal _core.STATUS_CODES (tested)."""

    PREDICTED = 0   # a window row was formed: band step + central step ran, outputs belong to this row
    WARMING_UP = 1  # applied, but the band has < 3 observations: no window row yet (eq. 2), outputs NaN
    DUPLICATE = 2   # same (t, mag, err) as the band's last applied observation: ignored (alert packets repeat)
    LATE = 3        # t not after the band's last applied t and not a duplicate: ignored (errors="skip")
    INVALID = 4     # NaN/inf in t, mag or err, err <= 0, |t| > 1e12 or |mag| > 1e4: ignored (errors="skip")


@dataclass(frozen=True)
class StepResult:
    """What one Engine.step call did, row by row (N rows, in input order).

    status : int8 (N,) Status codes. probs : float32 (N, C) after the row, aligned with Engine.class_names.
    embedding : float32 (N, H). regression : float32 (N, T) in physical units. Outputs are NaN on rows whose
    status is not PREDICTED, and None when not asked for in `outputs`.
    """

    status: np.ndarray
    probs: np.ndarray | None
    embedding: np.ndarray | None
    regression: np.ndarray | None

    def __len__(self) -> int:
        return len(self.status)

    @property
    def status_names(self) -> np.ndarray:
        """str (N,) the status of each row by name ("predicted", "warming_up", ...)."""
        names = np.array([status.name.lower() for status in Status])
        return names[self.status]


@dataclass(frozen=True)
class Prediction:
    """Current outputs of K objects (Engine.predict) or final outputs of K light curves (Engine.classify).

    obj_id : int64 (K,). probs : float32 (K, C), NaN for objects without a window row yet (or unknown ones).
    class_index : int64 (K,) argmax of probs, -1 where probs is NaN. embedding : float32 (K, H).
    regression : float32 (K, T) physical units. n_obs : int32 (K, B) observations applied per band.
    names : object (K,) or None: the objects' text ids, when they came as text (obj_id then holds their codes).
    class_names, bands : the model's, for to_pandas.
    """

    obj_id: np.ndarray
    probs: np.ndarray
    class_index: np.ndarray
    embedding: np.ndarray
    regression: np.ndarray
    n_obs: np.ndarray
    names: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    bands: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.obj_id)

    def to_pandas(self) -> pd.DataFrame:
        """One row per object, indexed by obj_id (the text ids where they came as text): one probability column per
        class, `class` (the most probable; "" before the object's first prediction), `n_obs_<band>` per band."""
        import pandas as pd

        index = pd.Index(self.obj_id if self.names is None else self.names, name="obj_id")
        frame = pd.DataFrame(self.probs, index=index, columns=list(self.class_names))
        labels = np.array([*self.class_names, ""], dtype=object)
        frame["class"] = labels[self.class_index]
        for position, band in enumerate(self.bands):
            frame[f"n_obs_{band}"] = self.n_obs[:, position]
        return frame


class Engine:
    """A model plus the recurrent state of every object it has seen.

    Build one with Engine.load. Rows of a call are applied in order; results do not depend on how rows are split
    into calls nor on num_threads (bit-identical). Not picklable; save_state/load_state persist the state.

    Examples
    --------
    >>> engine = Engine.load("model.mbf")                                    # doctest: +SKIP
    >>> result = engine.step([4021, 4021], ["g", "r"], [60000.1, 60000.2],    # doctest: +SKIP
    ...                      [19.2, 19.0], [0.05, 0.04])
    >>> engine.predict([4021]).probs                                         # doctest: +SKIP
    """

    def __init__(self, core: _core.Engine) -> None:
        self._core = core
        self.config: ModelConfig = ModelConfig.from_json(core.config_json)
        self._band_code_of = {label: index for index, label in enumerate(self.config.bands)}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, num_threads: int | None = None,
             state: str | os.PathLike[str] | None = None, precision: str = "fp32", device: str = "cpu",
             state_dtype: str = "fp32") -> Engine:
        """Read a model file (and optionally a state file saved with that model).

        Parameters
        ----------
        path : a shipped model's name ("lsst", the default, or "ztf"; mbfast.models) or a model file path.
        num_threads : worker threads for step/classify; None uses every CPU this process may run on. At most
            MAX_THREADS (4 per hardware thread, at least 64).
        state : a file written by Engine.save_state for the same model file.
        precision : "fp32" (default; matches mbfast.model.reference to rtol 1e-5), "bf16" or "int8" (CPU only). bf16:
            weights and GEMM inputs rounded to bfloat16, sums in fp32 (AVX-512 BF16 where the CPU has it, else an
            AVX2 kernel with the same bits, else a slow portable emulation); probabilities then differ from fp32 by
            up to ~1e-2 (docs/performance.md). int8: weights quantised per output column, GEMM inputs per row
            (symmetric, max |value| / 127), exact integer sums (AVX-512 VNNI where the CPU has it, else a portable
            kernel with the same bits but ~7x slower than fp32: choose int8 only where `cpu_kernel` then says
            "avx512_vnni"); LSTM cell, LayerNorm and softmax stay fp32 (docs/engine.md). On CUDA also "fp16";
            there bf16/fp16 run the GEMMs on tensor cores (docs/cuda.md).
        device : "cpu" (default), "cuda" or "cuda:N": where the recurrent state lives and the model step runs. On
            CUDA every object's band and central h, c stay in GPU memory; validation, window rows and the
            obj_id -> slot map stay on the host, so results, statuses and state files are the CPU engine's
            (probabilities within 1e-4 in fp32). See docs/cuda.md.
        state_dtype : "fp32" (default) or "fp16" (CPU only): band and central h, c kept as IEEE half between
            steps, which halves the state's memory and traffic (4 kB of the ZTF shape's 8 kB per object) and moves
            probabilities by ~1e-3 from fp32 state. State files hold fp32 either way.

        Raises
        ------
        FileNotFoundError : the model or state file does not exist.
        ValueError : the file is corrupt, truncated, newer than this mbfast or does not match its layout.
        RuntimeError : a worker thread cannot be started (the message names the process's thread and memory
            limits), or device="cuda" in a build without CUDA ("mbfast was built without CUDA") or without a usable
            GPU ("no CUDA device available").
        """
        _check_device(device)
        model_path = DEFAULT_MODEL if path is None else models.resolve(_checked_path("model", path))
        if not model_path.is_file():
            raise FileNotFoundError(f"no model file at {model_path} (shipped models: {', '.join(models.SHIPPED)})")
        if num_threads is None:
            num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if (not isinstance(num_threads, (int, np.integer)) or isinstance(num_threads, (bool, np.bool_))
                or not 1 <= num_threads <= MAX_THREADS):
            raise ValueError(f"num_threads must be an integer from 1 to {MAX_THREADS} (4 per hardware thread, at "
                             f"least 64), got {num_threads!r}")
        precisions = CPU_PRECISIONS if device == "cpu" else CUDA_PRECISIONS
        if precision not in precisions:
            hint = " (int8 runs on the CPU only)" if precision == "int8" else ""
            raise ValueError(f"precision on {device} must be one of {precisions}, got {precision!r}{hint}")
        if state_dtype not in ("fp32", "fp16") or (state_dtype == "fp16" and device != "cpu"):
            raise ValueError(f"state_dtype must be 'fp32' or 'fp16' (fp16 on the CPU only), got {state_dtype!r} "
                             f"on {device}")
        engine = cls(_core.Engine(str(model_path), int(num_threads), precision, device, state_dtype))
        if state is not None:
            engine.load_state(state)
        return engine

    # -------------------------------------------------------------------------------------------------------
    @property
    def bands(self) -> tuple[str, ...]:
        return self.config.bands

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def num_threads(self) -> int:
        return int(self._core.num_threads)

    @property
    def model_path(self) -> str:
        return str(self._core.model_path)

    @property
    def state_bytes_per_object(self) -> int:
        """Bytes of state arrays per held object (the obj_id -> slot hash map adds roughly 40 more)."""
        return int(self._core.state_bytes_per_object)

    def info(self) -> dict[str, object]:
        """Parameter count, FLOPs per observation (band step + central step + heads) and state bytes per object,
        so every throughput figure converts to GFLOP/s (see mbfast.model.counts)."""
        return model_info(self.config, self.state_bytes_per_object)

    def __len__(self) -> int:
        """Number of objects with state."""
        return len(self._core)

    @property
    def state_dtype(self) -> str:
        """"fp32" or "fp16": how band and central h, c are stored between steps (Engine.load)."""
        return str(self._core.state_dtype)

    @property
    def precision(self) -> str:
        """"fp32", "bf16", "fp16" (CUDA) or "int8" (CPU): the weights' storage and GEMM input precision
        (Engine.load)."""
        return str(self._core.precision)

    @property
    def device(self) -> str:
        """"cpu" or "cuda:N": where the recurrent state lives and the model step runs (Engine.load)."""
        return str(self._core.device)

    @property
    def cpu_kernel(self) -> str:
        """The CPU GEMM kernel this engine runs: "avx512_bf16", "avx512_vnni" (int8), "avx512", "avx2" or
        "portable" (MBFAST_KERNEL forces a lower one)."""
        return str(self._core.cpu_kernel)

    def __repr__(self) -> str:
        return (f"Engine({self.model_path!r}, bands={''.join(self.bands)}, classes={len(self.class_names)}, "
                f"objects={len(self)}, num_threads={self.num_threads}, device={self.device}, "
                f"precision={self.precision}, state_dtype={self.state_dtype}, cpu_kernel={self.cpu_kernel})")

    # -------------------------------------------------------------------------------------------------------
    def step(self, obj_ids: Iterable[int] | np.ndarray, band: Iterable[str | int] | np.ndarray,
             t: Iterable[float] | np.ndarray, mag: Iterable[float] | np.ndarray, err: Iterable[float] | np.ndarray,
             errors: str = "raise", outputs: Iterable[str] = ("probs",)) -> StepResult:
        """Apply new observations, in row order, and return each row's outputs.

        Parameters
        ----------
        obj_ids : int64 (N,) object of each row; objects may repeat and mix freely.
        band : str (N,) band labels as the survey writes them (Engine.bands), or int codes into Engine.bands.
        t : float64 (N,) MJD, days. Must increase per (object, band).
        mag : float32 (N,) AB magnitude.   err : float32 (N,) 1-sigma, mag, > 0.
        errors : "raise" (a bad row raises and nothing is applied) or "skip" (bad rows get status INVALID/LATE).
        outputs : any of "probs", "embedding", "regression".

        Returns
        -------
        StepResult with per-row status and the requested outputs (NaN on rows that are not PREDICTED).

        Raises
        ------
        ValueError : structural problems (lengths, dtypes, unknown band), or with errors="raise" the first bad
            row, named as "row 17 (obj_id 4021): err must be > 0, got -0.02". The state is then untouched.
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        wanted = _wanted_outputs(outputs)
        columns = (_exact_columns((obj_ids, band, t, mag, err), _CORE_DTYPES)
                   or self._exact_but_band_labels(obj_ids, band, t, mag, err))
        if columns is not None:
            # positional: pybind11 parses keywords in ~0.7 us, a tenth of a one-row call's overhead
            raw = self._core.step(*columns, errors == "skip", *wanted)
        else:
            columns, lost = self._columns(obj_ids, band, t, mag, err)
            try:
                raw = self._core.step(*columns, errors == "skip", *wanted)
            except ValueError as error:
                raise _with_real_value(error, lost) from None
        return StepResult(raw["status"], raw.get("probs"), raw.get("embedding"), raw.get("regression"))

    def predict(self, obj_ids: Iterable[int] | np.ndarray) -> Prediction:
        """Current outputs of the given objects (after their last window row); unknown objects give NaN and n_obs 0."""
        ids = _integer_column("obj_ids", obj_ids)
        return self._prediction(ids, self._core.predict(ids))

    def classify(self, curves: LightCurves | pd.DataFrame | pa.Table | Mapping[str, Any],
                 survey: str | Survey | None = None, columns: Mapping[str, str] | None = None) -> Prediction:
        """Final outputs of whole light curves, one row per object in table order, from a fresh state per object.

        `curves` is a LightCurves table, or observation rows as a pandas DataFrame, a pyarrow Table or a dict of
        arrays with columns obj_id (integers or text ids such as ZTF21aaxtctv), band, t (MJD), mag (AB), err (mag);
        `columns` renames ({"obj_id": "objectId", "band": "fid"}), and known aliases are found by themselves.
        `survey` ("ztf", "lsst", "ps1", "gaia", "plasticc") says whose band codes the rows hold (ZTF fid 1/2/3,
        PLAsTiCC passband 0-5); integer bands without it are refused, never read as indices into the model's bands.

        Equals stepping each object's observations in (t, band) order into an empty engine, except that an
        observation at the same t as the previous one of its band is dropped (reference.py preprocess_reference
        keeps the first). The engine's own state is not used or changed. `Prediction.to_pandas()` gives a table.

        Examples
        --------
        >>> engine.classify(alerts_frame, survey="ztf",                                # doctest: +SKIP
        ...                 columns={"obj_id": "objectId", "band": "fid", "t": "mjd"}).to_pandas()
        """
        if not isinstance(curves, LightCurves):
            curves = self._curves_of(curves, survey, columns)
        elif survey is not None or columns is not None:
            raise ValueError("survey= and columns= apply to observation rows, not to a LightCurves table")
        if tuple(curves.bands) != self.bands:
            raise ValueError(f"curves have bands {tuple(curves.bands)} but the model expects {self.bands}")
        columns_in = (np.ascontiguousarray(curves.obj_id, dtype=np.int64), np.ascontiguousarray(curves.band, np.int8),
                      np.ascontiguousarray(curves.t, np.float64), np.ascontiguousarray(curves.mag, np.float32),
                      np.ascontiguousarray(curves.err, np.float32))
        raw = self._core.classify(*columns_in, np.ascontiguousarray(curves.offsets, dtype=np.int64))
        prediction = self._prediction(np.asarray(curves.object_ids, dtype=np.int64), raw)
        return replace(prediction, names=curves.names)

    def _curves_of(self, rows: object, survey: str | Survey | None,
                   columns: Mapping[str, str] | None) -> LightCurves:
        """Observation rows (DataFrame, Arrow table, dict of arrays) -> LightCurves in the model's bands."""

        if isinstance(rows, Mapping):
            table = pa.table({name: np.asarray(values) for name, values in rows.items()})
        elif isinstance(rows, pa.Table):
            table = rows
        elif type(rows).__module__.startswith("pandas") and type(rows).__name__ == "DataFrame":
            table = pa.Table.from_pandas(rows, preserve_index=False)
        else:
            raise ValueError(f"classify takes a LightCurves table, a pandas DataFrame, a pyarrow Table or a dict of "
                             f"arrays (obj_id, band, t, mag, err), got {type(rows).__name__}")
        return curves_from_arrow(table, self.bands, survey, self.config.survey, columns)

    def forget(self, obj_ids: Iterable[int] | np.ndarray) -> int:
        """Drop the state of these objects (unknown ones are ignored); returns how many were held."""
        return int(self._core.forget(_integer_column("obj_ids", obj_ids)))

    def forget_before(self, t: float) -> int:
        """Drop every object whose newest observation (any band) is earlier than `t` (MJD); returns how many.

        Bounds the memory of a long-running stream: `engine.forget_before(night_mjd - 365)` keeps the objects seen
        in the last year. A forgotten object that comes back starts from an empty state, like a new one.
        """
        if not isinstance(t, (int, float, np.integer, np.floating)) or not np.isfinite(t):
            raise ValueError(f"t must be a finite MJD, got {t!r}")
        return int(self._core.forget_before(float(t)))

    def object_ids(self) -> np.ndarray:
        """int64 ids of the objects held (in the order of their state slots)."""
        return self._core.object_ids()

    def save_state(self, path: str | os.PathLike[str]) -> None:
        """Write every object's state to `path` atomically (temp file + fsync + rename), bound to this model."""
        self._core.save_state(_checked_path("state", path))

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Replace the state with one saved by save_state for the same model file; checked before anything changes.

        Raises FileNotFoundError if missing, ValueError if corrupt, truncated, newer or saved with another model.
        """
        name = _checked_path("state", path)
        if not Path(name).is_file():
            raise FileNotFoundError(f"no state file at {name}")
        self._core.load_state(name)

    # -------------------------------------------------------------------------------------------------------
    def _prediction(self, ids: np.ndarray, raw: dict[str, np.ndarray]) -> Prediction:
        return Prediction(ids, raw["probs"], _class_index(raw["probs"]), raw["embedding"], raw["regression"],
                          raw["n_obs"], class_names=self.class_names, bands=self.bands)

    def _columns(self, obj_ids: object, band: object, t: object, mag: object,
                 err: object) -> tuple[tuple[np.ndarray, ...], dict[str, dict[int, float]]]:
        """The columns converted by the input policy (docs/engine.md "Input types"), and per float32 column the rows
        whose value float32 cannot hold, with their real values (for _with_real_value)."""
        raw = {"obj_id": obj_ids, "band": band, "t": t, "mag": mag, "err": err}
        arrays = {name: _one_d(name, values) for name, values in raw.items()}
        lengths = {name: len(values) for name, values in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"mismatched lengths: {lengths}")
        ids = _integer_column("obj_id", np.ma.getdata(arrays["obj_id"]))
        for name, values in arrays.items():
            _refuse_masked(name, values, ids)
        arrays = {name: _from_objects(name, np.ma.getdata(values), ids) for name, values in arrays.items()}
        band_values = arrays["band"]
        if len(band_values) and not (band_values.dtype.kind in "iuU"):
            raise ValueError(f"band must be labels (str) or integer codes, got dtype {band_values.dtype}")
        codes = self._band_codes(band_values, ids)
        t_values = _float_column("t", arrays["t"], np.float64)  # float64 until differenced: float32 MJD steps ~6 min
        mag_values = _float_column("mag", arrays["mag"], np.float32)
        err_values = _float_column("err", arrays["err"], np.float32)
        lost = {name: _float32_losses(arrays[name], converted)
                for name, converted in (("mag", mag_values), ("err", err_values))}
        return (ids, codes, t_values, mag_values, err_values), lost

    def _exact_but_band_labels(self, obj_ids: object, band: object, t: object, mag: object,
                               err: object) -> tuple[np.ndarray, ...] | None:
        """As _exact_columns, with band as a NumPy array of str labels (what alert readers give): only the band is
        converted, ~6 us instead of ~14 us at N = 1."""
        if type(band) is not np.ndarray or band.dtype.kind != "U":
            return None
        columns = _exact_columns((obj_ids, band, t, mag, err), _LABEL_DTYPES)
        if columns is None:
            return None
        ids = columns[0]
        return ids, self._band_codes(band, ids), columns[2], columns[3], columns[4]

    def _band_codes(self, band: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """int8 (N,) band indices; vectorised for the hot path, table.band_indices words the error."""
        n_bands = len(self.bands)
        if np.issubdtype(band.dtype, np.integer):
            if len(band) and (band.min() < 0 or band.max() >= n_bands):
                band_indices(band, self.bands, ids)  # raises naming the row
            return np.ascontiguousarray(band, dtype=np.int8)
        if len(band) <= 16:  # alert-sized calls: a dict lookup beats the vectorised path's fixed cost
            lookup = self._band_code_of
            codes = np.array([lookup.get(str(label), -1) for label in band], dtype=np.int8)
            if (codes < 0).any():
                band_indices(band, self.bands, ids)  # raises naming the row
            return codes
        labels = band.astype(str)
        order = np.argsort(self.bands)
        sorted_labels = np.asarray(self.bands)[order]
        found = np.minimum(np.searchsorted(sorted_labels, labels), n_bands - 1)
        if not (sorted_labels[found] == labels).all():
            band_indices(band, self.bands, ids)  # raises naming the row
        return np.ascontiguousarray(order[found], dtype=np.int8)


def _checked_path(what: str, path: str | os.PathLike[str]) -> str:
    """The path as a str; a NUL inside is refused (the OS would stop there: "night\0.state" would be ./night)."""
    name = os.fspath(path)
    if not isinstance(name, str):
        name = os.fsdecode(name)
    if "\0" in name:
        raise ValueError(f"{what} path contains a NUL character: {name!r}")
    return name


def _check_device(device: object) -> None:
    """Refuse a device this build or machine cannot give, before the model is read."""
    if not isinstance(device, str) or not (device in ("cpu", "cuda") or
                                           (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "cpu":
        return
    if not _core.build_info()["cuda"]:
        raise RuntimeError("mbfast was built without CUDA; reinstall with nvcc on the PATH to use device='cuda' "
                           "(docs/cuda.md)")
    count = _core.cuda_device_count()
    if count == 0:
        raise RuntimeError("no CUDA device available: mbfast was built with CUDA, but the CUDA driver reports no "
                           "usable GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
    index = int(device[5:]) if device.startswith("cuda:") else 0
    if index >= count:
        raise RuntimeError(f"CUDA device {index} not available ({count} device{'s' if count != 1 else ''})")


# _core.step's column dtypes: obj_id, band code, t, mag, err
_CORE_DTYPES = tuple(np.dtype(kind) for kind in (np.int64, np.int8, np.float64, np.float32, np.float32))
_LABEL_DTYPES = (_CORE_DTYPES[0], None, *_CORE_DTYPES[2:])  # band: str labels, converted by Engine._band_codes


@functools.lru_cache(maxsize=64)
def _wanted_flags(outputs: tuple[str, ...]) -> tuple[bool, bool, bool]:
    unknown = [name for name in outputs if name not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose from {OUTPUTS}")
    return tuple(name in outputs for name in OUTPUTS)  # type: ignore[return-value]


def _wanted_outputs(outputs: Iterable[str]) -> tuple[bool, bool, bool]:
    """(probs, embedding, regression) flags of Engine.step's `outputs`, checked once per distinct tuple."""
    return _wanted_flags((outputs,) if isinstance(outputs, str) else tuple(outputs))


def _exact_columns(columns: tuple[object, ...], dtypes: tuple[np.dtype | None, ...]) -> tuple[np.ndarray, ...] | None:
    """The columns as they are when they already have `dtypes` (_CORE_DTYPES: _core's, band as int8 codes; None: any),
    are 1-d, C-contiguous and of one length, else None. The hot path of a stream: no conversion or copy, ~1 us instead
    of ~13 us at N = 1; _core still checks every value (band codes included) and names the row."""
    n = None
    for values, dtype in zip(columns, dtypes):
        # numpy's builtin dtypes are singletons, so `is` is the cheap test; a miss only means the checked path
        if (type(values) is not np.ndarray or (dtype is not None and values.dtype is not dtype) or values.ndim != 1
                or not values.flags.c_contiguous or (n is not None and len(values) != n)):
            return None
        n = len(values)
    return columns  # type: ignore[return-value]


def _one_d(name: str, values: object) -> np.ndarray:
    """A column as a 1-d array (a scalar is one row); masked arrays keep their mask for _refuse_masked."""
    array = np.ma.atleast_1d(values) if isinstance(values, np.ma.MaskedArray) else np.atleast_1d(np.asarray(values))
    if array.ndim != 1:
        raise ValueError(f"'{name}' must be 1-d, got shape {array.shape}")
    return array


def _row_text(row: int, ids: np.ndarray | None) -> str:
    return f"row {row} (obj_id {ids[row]})" if ids is not None and row < len(ids) else f"row {row}"


def _refuse_masked(name: str, values: np.ndarray, ids: np.ndarray) -> None:
    """A masked value has no value: reading the data under the mask would apply whatever it holds."""
    if isinstance(values, np.ma.MaskedArray):
        masked = np.flatnonzero(np.ma.getmaskarray(values))
        if len(masked):
            raise ValueError(f"{_row_text(int(masked[0]), ids)}: {name} is masked; drop or fill masked rows first")


def _from_objects(name: str, values: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
    """An object array converted as a list of the same values would be (ints, floats or str, never bool or bytes);
    other arrays unchanged. Booleans and bytes are refused in every column, naming the first such row."""
    if values.dtype.kind == "b":
        raise ValueError(f"{name} must not be booleans, got dtype bool")
    if values.dtype.kind == "S" and len(values):
        raise ValueError(f"{_row_text(0, ids)}: {name} must not be bytes, got {bytes(values[0])!r}; decode them "
                         "first")
    if values.dtype.kind != "O" or not len(values):
        return values
    kinds = {bool: "bool", np.bool_: "bool", bytes: "bytes", str: "str"}
    seen = [kinds.get(type(value)) or ("int" if isinstance(value, (int, np.integer)) else
                                       "float" if isinstance(value, (float, np.floating)) else type(value).__name__)
            for value in values]
    for row, kind in enumerate(seen):
        if kind in ("bool", "bytes") or kind not in ("int", "float", "str"):
            hint = "; decode them first" if kind == "bytes" else ""
            raise ValueError(f"{_row_text(row, ids)}: {name} must be an int, float or str, got {kind} "
                             f"{values[row]!r}{hint}")
    kinds_seen = set(seen)
    if kinds_seen == {"str"}:
        return values.astype(str)
    if "str" in kinds_seen:
        row = next(row for row, kind in enumerate(seen) if kind != seen[0])
        raise ValueError(f"{_row_text(row, ids)}: {name} mixes {seen[0]} and {seen[row]} values")
    if kinds_seen == {"int"}:
        try:
            return np.array(values.tolist(), dtype=np.int64)
        except OverflowError:
            row = next(row for row, value in enumerate(values) if not -2**63 <= int(value) < 2**63)
            raise ValueError(f"{_row_text(row, ids)}: {name} must fit in int64, got {values[row]}") from None
    return values.astype(np.float64)


def _float32_losses(values: np.ndarray, converted: np.ndarray) -> dict[int, float]:
    """Rows whose finite value float32 cannot hold (it overflowed to inf or a non-zero value became 0)."""
    if values.dtype == converted.dtype or values.dtype.kind not in "fiuOUS":
        return {}
    with np.errstate(invalid="ignore"):
        wide = values.astype(np.float64)
        lost = np.flatnonzero((np.isinf(converted) & np.isfinite(wide)) | ((converted == 0) & (wide != 0)))
    return {int(row): float(wide[row]) for row in lost[:1000]}


_ROW_ERROR = re.compile(r"^(row (\d+) \(obj_id -?\d+\)): (mag|err) must ")


def _with_real_value(error: ValueError, lost: dict[str, dict[int, float]]) -> ValueError:
    """The core's error for a row whose value the float32 cast changed, reworded with the value the caller gave
    (`err=1e-300` reached the core as 0: "err must be > 0, got 0" would not name it)."""
    match = _ROW_ERROR.match(str(error))
    if match is None:
        return error
    field, row = match.group(3), int(match.group(2))
    if row not in lost.get(field, {}):
        return error
    value = lost[field][row]
    return ValueError(f"{match.group(1)}: {field} must be a finite number that float32 can hold (magnitude 1.4e-45 "
                      f"to 3.4e38), got {value!r}")


def _integer_column(name: str, values: object) -> np.ndarray:
    array = _one_d(name, values)
    _refuse_masked(name, array, None)
    array = _from_objects(name, np.ma.getdata(array), None)
    if len(array) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    if array.dtype == np.uint64 and len(array):
        too_big = np.flatnonzero(array > np.iinfo(np.int64).max)
        if len(too_big):
            row = int(too_big[0])
            raise ValueError(f"row {row}: {name} must fit in int64, got {array[row]}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _float_column(name: str, values: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    if values.dtype.kind not in "iufOU":
        raise ValueError(f"{name} must be real numbers, got dtype {values.dtype}")
    if name == "t" and values.dtype == np.float16:  # steps of 32 days at MJD 60000: 60101 would become 60096
        raise ValueError("t must be float64 (or float32 or integers), got float16, which cannot hold an MJD")
    if values.dtype.kind in "OU":
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be numbers, got dtype {values.dtype} ({error})") from None
    if values.dtype == dtype:
        return np.ascontiguousarray(values)
    with np.errstate(over="ignore"):  # out-of-range values become inf and are reported per row as not finite
        return np.ascontiguousarray(values, dtype=dtype)


def _class_index(probs: np.ndarray) -> np.ndarray:
    known = ~np.isnan(probs).any(axis=1) if probs.size else np.zeros(len(probs), dtype=bool)
    index = np.full(len(probs), -1, dtype=np.int64)
    if known.any():
        index[known] = np.argmax(probs[known], axis=1)
    return index


__all__ = ["DEFAULT_MODEL", "Engine", "MAX_THREADS", "Prediction", "STATE_FORMAT_VERSION", "Status", "StepResult"]
