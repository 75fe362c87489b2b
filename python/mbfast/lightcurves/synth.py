"""Synthetic light curves for scale tests: real curves resampled, time-shifted and re-noised.

Not a physical simulator: every synthetic object is a copy of a real one with a whole-day time shift and
Gaussian noise of its own 1-sigma errors added to the magnitudes. Vectorised NumPy, ~1 s per 10 M observations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mbfast.lightcurves.table import LightCurves


def resample(curves: LightCurves, n_objects: int, seed: int, *, max_shift_days: int = 1000,
             first_id: int = 0) -> LightCurves:
    """`n_objects` new objects, each a randomly chosen object of `curves` with shifted times and noisier mags.

    Parameters
    ----------
    curves : LightCurves
        Source objects (sorted, as `mbfast.lightcurves.table.from_arrays` returns them); at least one.
    n_objects : int
        Objects to make. Sources are drawn with replacement, uniformly over objects.
    seed : int
        Seed of `numpy.random.default_rng`; the same (curves, n_objects, seed) gives the same table.
    max_shift_days : int, default 1000
        Each object's times move by a whole number of days drawn uniformly from [-max_shift_days,
        max_shift_days]. Whole days keep the time of night, and at MJD ~60 000 adding them is exact.
    first_id : int, default 0
        The new obj_ids are first_id, first_id + 1, ... in table order.

    Returns
    -------
    LightCurves
        Sorted by (obj_id, t, band), same `bands`; `mag` float32 (N,) = source mag + err * N(0, 1), `err`
        unchanged. Repeated (band, t) of a source stay repeated.

    Examples
    --------
    >>> from mbfast.lightcurves.table import from_arrays
    >>> source = from_arrays([1, 1, 2], ["g", "r", "g"], [0.0, 0.5, 3.0], [20.0, 20.1, 19.0], [0.1] * 3,
    ...                      ("g", "r"))
    >>> big = resample(source, n_objects=5, seed=0)
    >>> big.n_objects, big.object_ids.tolist()
    (5, [0, 1, 2, 3, 4])
    """
    if curves.n_objects < 1:
        raise ValueError("curves must hold at least one object to resample from")
    if n_objects < 0:
        raise ValueError(f"n_objects must be >= 0, got {n_objects}")
    rng = np.random.default_rng(seed)
    source = rng.integers(0, curves.n_objects, n_objects)                         # (K,)
    picked = curves.select(source)
    lengths = np.diff(picked.offsets)                                             # (K,)
    shift = rng.integers(-max_shift_days, max_shift_days + 1, n_objects).astype(np.float64)  # (K,) days
    t = picked.t + np.repeat(shift, lengths)                                      # (N,)
    noise = rng.standard_normal(len(t), dtype=np.float32)                         # (N,)
    mag = (picked.mag + picked.err * noise).astype(np.float32)                    # (N,)
    obj_id = np.repeat(np.arange(first_id, first_id + n_objects, dtype=np.int64), lengths)  # (N,)
    band = picked.band
    err = picked.err
    # Rounding can merge two close times into a tie whose bands are then out of order; re-sort if it did.
    same_object = obj_id[1:] == obj_id[:-1]
    tie_disorder = same_object & (t[1:] == t[:-1]) & (band[1:] < band[:-1])
    if tie_disorder.any():
        order = np.lexsort((band, t, obj_id))
        obj_id, band, t, mag, err = obj_id[order], band[order], t[order], mag[order], err[order]
    return LightCurves(obj_id, band, t, mag, err, picked.offsets, curves.bands)


def write_synthetic(output: str | Path, n_objects: int, source: LightCurves, seed: int = 0,
                    objects_per_chunk: int = 100_000) -> int:
    """Write `n_objects` light curves resampled from `source` as flat Parquet rows (obj_id, band, t, mag, err),
    chunk by chunk so memory stays bounded; returns the number of observation rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = np.array(source.bands)
    rows = 0
    with pq.ParquetWriter(output, pa.schema([("obj_id", pa.int64()), ("band", pa.string()), ("t", pa.float64()),
                                             ("mag", pa.float32()), ("err", pa.float32())])) as writer:
        for chunk, start in enumerate(range(0, n_objects, objects_per_chunk)):
            count = min(objects_per_chunk, n_objects - start)
            curves = resample(source, count, seed + chunk, first_id=start)
            writer.write_table(pa.table({"obj_id": curves.obj_id, "band": labels[curves.band], "t": curves.t,
                                         "mag": curves.mag, "err": curves.err}))
            rows += len(curves)
    return rows
