"""LightCurves: many objects' observations as flat columns sorted by (obj_id, t, band), with per-object offsets.

This is the one columnar representation that readers produce and that preprocessing, training and
Engine.classify consume. It holds magnitudes only; mbfast.lightcurves.photometry converts fluxes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mbfast.lightcurves.fields import (ERR_NOT_POSITIVE, MAG_OUT_OF_RANGE, MAX_ABS_MAG, MAX_ABS_T, OBJ_ID_NOT_EXACT,
                                      OBJ_ID_NOT_INTEGER, T_OUT_OF_RANGE, UNKNOWN_BAND, describe_row, not_finite,
                                      refused_row)
from mbfast.lightcurves.object_ids import object_codes
from mbfast.lightcurves.rows import NAME_COLUMN, RowChecks, clean_chunk
from mbfast.lightcurves.sources import flatten
from mbfast.lightcurves.surveys import Survey, band_map, get_survey

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LightCurves:
    """Observations of many objects (N observations, K objects).

    obj_id : int64 (N,)    band : int8 (N,) band index into `bands`
    t : float64 (N,) MJD, days    mag : float32 (N,) AB    err : float32 (N,) 1-sigma, mag
    offsets : int64 (K + 1,) object k owns rows offsets[k]:offsets[k+1]
    bands : band labels in index order (e.g. ("u", "g", "r", "i", "z", "y"))
    names : object (K,) or None: the ids as given when they were text (ZTF21aaxtctv); obj_id then holds their
        codes (object_codes)
    """

    obj_id: np.ndarray
    band: np.ndarray
    t: np.ndarray
    mag: np.ndarray
    err: np.ndarray
    offsets: np.ndarray
    bands: tuple[str, ...]
    names: np.ndarray | None = None

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame, bands: tuple[str, ...] | None = None,
                    survey: str | Survey | None = None, columns: Mapping[str, str] | None = None) -> LightCurves:
        """Observation rows of a DataFrame (columns obj_id, band, t, mag, err, or names given in `columns` or known
        aliases such as objectId, fid, mjd, magpsf, sigmapsf) as a table; see `from_arrow`."""
        return cls.from_arrow(pa.Table.from_pandas(frame, preserve_index=False), bands, survey, columns)

    @classmethod
    def from_arrow(cls, table: pa.Table, bands: tuple[str, ...] | None = None,
                   survey: str | Survey | None = None, columns: Mapping[str, str] | None = None) -> LightCurves:
        """Observation rows of an Arrow table as a LightCurves table with bands `bands` (default: the survey's).

        obj_id : integers, or text ids (kept in `names`); band : labels, or a survey's codes when `survey` is named
        (ZTF fid 1/2/3, PLAsTiCC passband 0-5; integers without a survey are refused); t : MJD; mag AB; err mag.
        The batch job's row checks apply (lightcurves.rows.clean_chunk); the first bad row raises ValueError naming it.
        """
        return curves_from_arrow(table, bands, survey, None, columns)

    @property
    def n_objects(self) -> int:
        return len(self.offsets) - 1

    @property
    def object_ids(self) -> np.ndarray:
        """int64 (K,) the obj_id of each object, in table order."""
        return self.obj_id[self.offsets[:-1]]

    def __len__(self) -> int:
        return len(self.t)

    def object(self, k: int) -> LightCurves:
        """Object k alone, as a one-object table."""
        start, stop = int(self.offsets[k]), int(self.offsets[k + 1])
        return LightCurves(self.obj_id[start:stop], self.band[start:stop], self.t[start:stop],
                           self.mag[start:stop], self.err[start:stop],
                           np.array([0, stop - start], dtype=np.int64), self.bands,
                           None if self.names is None else self.names[k:k + 1])

    @property
    def owner(self) -> np.ndarray:
        """int64 (N,) the index of the object each observation belongs to."""
        return np.repeat(np.arange(self.n_objects), np.diff(self.offsets))

    def fingerprint(self) -> str:
        """16 hex digits that change when any observation, object boundary or band label does: the key of the
        caches derived from these curves, so that a changed data set or reader never meets a stale cache."""
        digest = hashlib.blake2b(digest_size=8)
        for column in (self.obj_id, self.band, self.t, self.mag, self.err, self.offsets):
            digest.update(np.ascontiguousarray(column).tobytes())
        digest.update("\0".join(self.bands).encode())
        return digest.hexdigest()

    def keep_rows(self, keep: np.ndarray) -> LightCurves:
        """The observations where `keep` (bool (N,)) is True; every object stays, some perhaps with none."""
        lengths = np.bincount(self.owner[keep], minlength=self.n_objects)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return LightCurves(self.obj_id[keep], self.band[keep], self.t[keep], self.mag[keep], self.err[keep],
                           offsets, self.bands, self.names)

    def select(self, object_indices: np.ndarray) -> LightCurves:
        """The objects at `object_indices` (in that order) as a new table."""
        starts = self.offsets[:-1][object_indices]
        lengths = self.offsets[1:][object_indices] - starts
        rows = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return LightCurves(self.obj_id[rows], self.band[rows], self.t[rows], self.mag[rows], self.err[rows],
                           offsets, self.bands, None if self.names is None else self.names[object_indices])


def from_arrays(obj_id: np.ndarray, band: np.ndarray, t: np.ndarray, mag: np.ndarray, err: np.ndarray,
                bands: tuple[str, ...]) -> LightCurves:
    """Validate, sort by (obj_id, t, band) and index observations given in any order.

    `obj_id` holds integers (floats only where exact: |id| <= 2**53) or text ids (kept in `names`, coded by
    object_codes). `band` holds labels (str) or integer indices into `bands` (this table's own band order; survey
    codes go through LightCurves.from_arrow's `survey`). Raises ValueError naming the first bad row (input order),
    its obj_id and field: not 1-d, mismatched lengths, unknown band, NaN/inf in t/mag/err, err <= 0, |t| > 1e12,
    |mag| > 1e4. Exact duplicates of (obj_id, band, t) are not dropped here: preprocessing drops and counts them.
    """
    columns = {"obj_id": np.asarray(obj_id), "band": np.asarray(band), "t": np.asarray(t), "mag": np.asarray(mag),
               "err": np.asarray(err)}
    for name, values in columns.items():
        if values.ndim != 1:
            raise ValueError(f"{name} must be a 1-d array, got {values.ndim}-d (shape {values.shape})")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"mismatched lengths: {lengths}")
    obj_id, names = _object_ids(columns["obj_id"])
    band_codes = band_indices(columns["band"], bands, obj_id)
    t = np.asarray(columns["t"], dtype=np.float64)
    mag = np.asarray(columns["mag"], dtype=np.float64)
    err = np.asarray(columns["err"], dtype=np.float64)
    for name, values in (("t", t), ("mag", mag), ("err", err)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = int(bad[0])
            raise ValueError(refused_row(row, _shown(obj_id, names, row), not_finite(name), values[row]))
    for values, refused, problem in ((err, err <= 0, ERR_NOT_POSITIVE), (t, np.abs(t) > MAX_ABS_T, T_OUT_OF_RANGE),
                                     (mag, np.abs(mag) > MAX_ABS_MAG, MAG_OUT_OF_RANGE)):
        bad = np.flatnonzero(refused)
        if len(bad):
            row = int(bad[0])
            raise ValueError(refused_row(row, _shown(obj_id, names, row), problem, values[row]))
    if sorted_by_object_time_band(obj_id, t, band_codes):  # the usual export order: no sort, only copies
        t = t.copy()
    else:
        order = np.lexsort((band_codes, t, obj_id))
        obj_id, band_codes, t, mag, err = obj_id[order], band_codes[order], t[order], mag[order], err[order]
        names = None if names is None else names[order]
    boundaries = np.flatnonzero(np.diff(obj_id)) + 1
    offsets = np.concatenate([[0], boundaries, [len(obj_id)]] if len(obj_id) else [[0]]).astype(np.int64)
    object_names = None if names is None else _object_names(names, obj_id, offsets)
    return LightCurves(obj_id, band_codes, t, mag.astype(np.float32), err.astype(np.float32), offsets, tuple(bands),
                       object_names)


def curves_from_arrow(table: pa.Table, bands: tuple[str, ...] | None = None, survey: str | Survey | None = None,
                      target_survey: str | None = None, columns: Mapping[str, str] | None = None) -> LightCurves:
    """Observation rows (any column order, aliases such as objectId/fid/mjd/magpsf/sigmapsf recognised, flat or
    one list per object) -> LightCurves with bands `bands` (default: the survey's), through the batch job's row
    checks (mbfast.lightcurves.rows.clean_chunk); the first bad row raises ValueError naming its row, obj_id and reason.

    `survey` names who wrote the band column (surveys.band_map maps its codes and labels to `bands`, those of a
    model for `target_survey`); without it integer band codes are refused.
    """
    if bands is None:
        if survey is None:
            raise ValueError("name the bands: bands=(labels in order) or survey= (e.g. 'ztf')")
        survey = survey if isinstance(survey, Survey) else get_survey(survey)
        bands, target_survey = survey.bands, target_survey or survey.name
    rows = flatten(table, dict(columns or {}), Path("table"))
    checks = RowChecks()
    clean = clean_chunk(rows, band_map(tuple(bands), survey, target_survey), checks)
    if checks.rows_rejected:
        raise ValueError(f"{checks.first_rejected()} ({checks.rows_rejected} of {checks.rows_in} rows refused)")
    names = clean.extra.column(NAME_COLUMN).to_numpy(zero_copy_only=False) if clean.extra is not None else None
    return from_arrays(clean.obj_id if names is None else names, clean.band, clean.t, clean.mag, clean.err,
                       tuple(bands))


def _shown(obj_id: np.ndarray, names: np.ndarray | None, row: int) -> Any:
    return int(obj_id[row]) if names is None else names[row]


def _object_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """int64 ids and, for text ids, the names (object (N,)); refuses what is neither, naming the first bad row."""
    if values.dtype.kind in "UO" and len(values) and all(isinstance(value, str) for value in values.tolist()):
        names = values.astype(object)
        return object_codes(pa.array(names, pa.string())), names
    if values.dtype.kind in "UO" and len(values):
        row = next(row for row, value in enumerate(values.tolist()) if not isinstance(value, str))
        raise ValueError(refused_row(row, None, OBJ_ID_NOT_INTEGER, repr(values[row])))
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 2.0**53)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{refused_row(row, None, OBJ_ID_NOT_EXACT, repr(float(values[row])))} (a float id "
                             f"beyond 2**53 or with a fraction would be rounded; give ids as int64 or text)")
        return values.astype(np.int64), None
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"obj_id must be integers or text ids, got dtype {values.dtype}")
    if values.dtype == np.uint64 and len(values) and values.max() > np.iinfo(np.int64).max:
        row = int(np.flatnonzero(values > np.iinfo(np.int64).max)[0])
        raise ValueError(f"row {row}: obj_id must fit in int64, got {values[row]}")
    return values.astype(np.int64), None


def _object_names(names: np.ndarray, obj_id: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """object (K,) the name of each object; two names with one code (a 63-bit hash collision) raise."""
    first = names[offsets[:-1]]
    if len(names):
        object_index = np.repeat(np.arange(len(first)), np.diff(offsets))
        clash = np.flatnonzero(names != first[object_index])
        if len(clash):
            row = int(clash[0])
            raise ValueError(f"obj_id {names[row]!r} and {first[object_index[row]]!r} have the same code "
                             f"{obj_id[row]}; rename one")
    return first


def sorted_by_object_time_band(obj_id: np.ndarray, t: np.ndarray, band: np.ndarray) -> bool:
    """Whether rows are already in (obj_id, t, band) order: a linear check, ten times cheaper than the sort."""
    step_obj, step_t = np.diff(obj_id), np.diff(t)
    step_band = np.diff(band.astype(np.int16))
    return bool(((step_obj > 0) | ((step_obj == 0) & ((step_t > 0) | ((step_t == 0) & (step_band >= 0))))).all())


def band_indices(band: np.ndarray, bands: tuple[str, ...], obj_id: np.ndarray) -> np.ndarray:
    """Band labels or integer codes -> int8 indices into `bands`; unknown ones raise naming the row."""
    if np.issubdtype(band.dtype, np.integer):
        codes = band.astype(np.int64)
        bad = np.flatnonzero((codes < 0) | (codes >= len(bands)))
        if len(bad):
            row = int(bad[0])
            raise ValueError(f"{describe_row(row, int(obj_id[row]))}: band must be in 0..{len(bands) - 1} "
                             f"({', '.join(bands)}), got {codes[row]}")
        return codes.astype(np.int8)
    labels = band.astype(str)
    lookup = {label: index for index, label in enumerate(bands)}
    codes = np.full(len(labels), -1, dtype=np.int8)
    for label in np.unique(labels):
        if label in lookup:
            codes[labels == label] = lookup[label]
    bad = np.flatnonzero(codes < 0)
    if len(bad):
        row = int(bad[0])
        raise ValueError(f"{describe_row(row, int(obj_id[row]))}: {UNKNOWN_BAND} {str(labels[row])!r} "
                         f"(expected one of {', '.join(bands)})")
    return codes
