"""LightCurves: many objects' observations as flat columns sorted by (obj_id, t, band), with per-object offsets.

This is the one columnar representation that readers produce and that preprocessing, training and
Engine.classify consume. It holds magnitudes only; survey presets (mbfast.surveys) convert fluxes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LightCurves:
    """Observations of many objects (N observations, K objects).

    obj_id : int64 (N,)    band : int8 (N,) band index into `bands`
    t : float64 (N,) MJD, days    mag : float32 (N,) AB    err : float32 (N,) 1-sigma, mag
    offsets : int64 (K + 1,) object k owns rows offsets[k]:offsets[k+1]
    bands : band labels in index order (e.g. ("u", "g", "r", "i", "z", "y"))
    """

    obj_id: np.ndarray
    band: np.ndarray
    t: np.ndarray
    mag: np.ndarray
    err: np.ndarray
    offsets: np.ndarray
    bands: tuple[str, ...]

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
                           np.array([0, stop - start], dtype=np.int64), self.bands)

    def select(self, object_indices: np.ndarray) -> LightCurves:
        """The objects at `object_indices` (in that order) as a new table."""
        starts = self.offsets[:-1][object_indices]
        lengths = self.offsets[1:][object_indices] - starts
        rows = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return LightCurves(self.obj_id[rows], self.band[rows], self.t[rows], self.mag[rows], self.err[rows],
                           offsets, self.bands)


def describe_row(row: int, obj_id: int) -> str:
    return f"row {row} (obj_id {obj_id})"


def from_arrays(obj_id: np.ndarray, band: np.ndarray, t: np.ndarray, mag: np.ndarray, err: np.ndarray,
                bands: tuple[str, ...]) -> LightCurves:
    """Validate, sort by (obj_id, t, band) and index observations given in any order.

    `band` holds labels (str) or integer indices into `bands`. Raises ValueError naming the first bad row
    (input order), its obj_id and field: mismatched lengths, unknown band, NaN/inf in t/mag/err, err <= 0.
    Exact duplicates of (obj_id, band, t) are not dropped here: preprocessing drops and counts them.
    """
    obj_id = np.asarray(obj_id)
    columns = {"obj_id": obj_id, "band": np.asarray(band), "t": np.asarray(t), "mag": np.asarray(mag),
               "err": np.asarray(err)}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"mismatched lengths: {lengths}")
    if not np.issubdtype(obj_id.dtype, np.integer):
        raise ValueError(f"obj_id must be integers, got dtype {obj_id.dtype}")
    obj_id = obj_id.astype(np.int64)
    band_codes = band_indices(columns["band"], bands, obj_id)
    t = np.asarray(columns["t"], dtype=np.float64)
    mag = np.asarray(columns["mag"], dtype=np.float64)
    err = np.asarray(columns["err"], dtype=np.float64)
    for name, values in (("t", t), ("mag", mag), ("err", err)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = int(bad[0])
            raise ValueError(f"{describe_row(row, int(obj_id[row]))}: {name} must be finite, got {values[row]}")
    bad = np.flatnonzero(err <= 0)
    if len(bad):
        row = int(bad[0])
        raise ValueError(f"{describe_row(row, int(obj_id[row]))}: err must be > 0, got {err[row]}")
    if sorted_by_object_time_band(obj_id, t, band_codes):  # the usual export order: no sort, only copies
        t = t.copy()
    else:
        order = np.lexsort((band_codes, t, obj_id))
        obj_id, band_codes, t, mag, err = obj_id[order], band_codes[order], t[order], mag[order], err[order]
    boundaries = np.flatnonzero(np.diff(obj_id)) + 1
    offsets = np.concatenate([[0], boundaries, [len(obj_id)]] if len(obj_id) else [[0]]).astype(np.int64)
    return LightCurves(obj_id, band_codes, t, mag.astype(np.float32), err.astype(np.float32), offsets, tuple(bands))


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
        raise ValueError(f"{describe_row(row, int(obj_id[row]))}: unknown band {str(labels[row])!r} "
                         f"(expected one of {', '.join(bands)})")
    return codes
