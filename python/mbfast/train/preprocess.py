"""Numba preprocessing: LightCurves -> ModelInputs (window rows, multiband order, colours, Δt, eq. 4 weights).

The fast twin of mbfast.model.reference.preprocess_reference, equal to it array for array (tests/train/test_preprocess.py);
docs/preprocessing.md states the semantics. It checks only the (obj_id, t, band) order it relies on; values
(finite t/mag/err, err > 0) are validated by mbfast.lightcurves.table.from_arrays.
Dimension legend: N observations, K objects, R window rows, B bands, P colour pairs.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange

from mbfast.model.preprocessed import ModelInputs
from mbfast.lightcurves.fields import FIELDS, describe_row
from mbfast.lightcurves.table import LightCurves

# Objects per parallel chunk: each chunk allocates its per-band scratch once, not once per object.
OBJECTS_PER_CHUNK = 256
# float64 values per np.log10 call when the log is spread over threads.
LOG_BLOCK = 1 << 20


def preprocess(curves: LightCurves, n_skip: int, num_threads: int | None = None, *,
               check: bool = True) -> ModelInputs:
    """Preprocess every object of `curves` for the model, as `preprocess_reference` does, in parallel.

    Per object and band: repeats of (obj_id, band, t) are dropped keeping the first (and counted); each
    observation that completes a window of three in its band gives one row [log10 dt_prev, log10 dt,
    dmag_prev, dmag] (eq. 2), listed in multiband (table) order. Each row carries the colours of every band
    pair (a < b) from the cumulative mean magnitudes forward-filled to that step (Appendix B; 0 while either
    band is unobserved), log10(1 + days since the object's previous row) (§3.5), and eq. 4 loss weights with
    N_skip for the band losses and the central loss (§3.6).

    Parameters
    ----------
    curves : LightCurves
        Sorted by (obj_id, t, band) with matching `offsets`, as `mbfast.lightcurves.table.from_arrays` returns it.
        `t` float64 (N,) MJD, days; `mag` float32 (N,) AB; `err` float32 (N,) 1-sigma, mag.
    n_skip : int
        N_skip of eq. 4: the first `n_skip` steps of each band (band loss) and of each object (central loss)
        get weight 0.
    num_threads : int, optional
        Threads for the Numba kernels and the log10 pass; default `numba.get_num_threads()`.
    check : bool, default True
        Run `check_sorted` first. Pass False only for tables known sorted: unsorted input then gives
        meaningless rows (a negative dt becomes NaN after log10) instead of an error.

    Returns
    -------
    ModelInputs
        Flat rows plus offsets, see mbfast.model.preprocessed. Window rows, colours and dt are float32 of float64
        values; `t` is differenced in float64.

    Raises
    ------
    ValueError
        If `check` and the table is not sorted by (obj_id, t, band), naming the first row out of order.

    Examples
    --------
    >>> from mbfast.lightcurves.table import from_arrays
    >>> curves = from_arrays([7, 7, 7, 7], ["g"] * 4, [0.0, 1.0, 11.0, 111.0], [20.0, 20.5, 20.25, 21.0],
    ...                      [0.1] * 4, ("g", "r"))
    >>> inputs = preprocess(curves, n_skip=0)
    >>> inputs.rows
    array([[ 0.  ,  1.  ,  0.5 , -0.25],
           [ 1.  ,  2.  , -0.25,  0.75]], dtype=float32)
    """
    if n_skip < 0:
        raise ValueError(f"n_skip must be >= 0, got {n_skip}")
    threads = numba.get_num_threads() if num_threads is None else int(num_threads)
    if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"num_threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {num_threads}")
    if check:
        check_sorted(curves)
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return _preprocess_sorted(curves, n_skip, threads)
    finally:
        numba.set_num_threads(previous_threads)


def check_sorted(curves: LightCurves) -> None:
    """Raise ValueError naming the first row out of (obj_id, t, band) order or outside its object's obj_id.

    Equal (obj_id, t, band) rows are in order (they are the duplicates preprocessing drops). `offsets` must
    start at 0, end at N, never decrease, and split the table exactly where obj_id changes.
    """
    n_rows = len(curves.t)
    lengths = {name: len(getattr(curves, name)) for name in FIELDS}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"mismatched lengths: {lengths}")
    offsets = np.asarray(curves.offsets)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != n_rows:
        raise ValueError(f"offsets must run from 0 to {n_rows} (the number of rows), got {offsets!r}")
    if np.any(np.diff(offsets) < 0):
        k = int(np.flatnonzero(np.diff(offsets) < 0)[0])
        raise ValueError(f"offsets must not decrease: offsets[{k}] = {offsets[k]} > offsets[{k + 1}] = "
                         f"{offsets[k + 1]}")
    n_objects = len(offsets) - 1
    obj_id = np.ascontiguousarray(curves.obj_id, dtype=np.int64)
    band = np.ascontiguousarray(curves.band, dtype=np.int64)
    t = np.ascontiguousarray(curves.t, dtype=np.float64)
    first_bad = _first_unsorted_row(obj_id, band, t, offsets.astype(np.int64), _n_chunks(n_objects))
    bad = np.flatnonzero(first_bad >= 0)
    if not len(bad):
        return
    k = int(bad[0])
    row = int(first_bad[k])
    where = describe_row(row, int(obj_id[row]))
    hint = "preprocess needs input sorted by (obj_id, t, band); mbfast.lightcurves.table.from_arrays sorts"
    start = int(offsets[k])
    if row > start:
        if obj_id[row] != obj_id[start]:
            raise ValueError(f"{where}: obj_id differs from its object's first row {start} (obj_id "
                             f"{obj_id[start]}); offsets must split the table where obj_id changes")
        if t[row] < t[row - 1]:
            raise ValueError(f"{where}: t = {float(t[row])!r} is before t = {float(t[row - 1])!r} of row "
                             f"{row - 1}; {hint}")
        raise ValueError(f"{where}: band {band[row]} at t = {float(t[row])!r} follows band {band[row - 1]} at the "
                         f"same t in row {row - 1}; {hint}")
    raise ValueError(f"{where}: starts object {k} but obj_id {obj_id[row]} is not greater than obj_id "
                     f"{obj_id[row - 1]} of row {row - 1}; {hint}")


def _preprocess_sorted(curves: LightCurves, n_skip: int, threads: int) -> ModelInputs:
    n_bands = len(curves.bands)
    n_objects = curves.n_objects
    n_chunks = _n_chunks(n_objects)
    pair_a, pair_b = np.triu_indices(n_bands, k=1)  # lexicographic (a, b), a < b
    offsets = np.ascontiguousarray(curves.offsets, dtype=np.int64)
    band = np.ascontiguousarray(curves.band, dtype=np.int8)
    t = np.ascontiguousarray(curves.t, dtype=np.float64)
    mag = np.ascontiguousarray(curves.mag, dtype=np.float32)
    err = np.ascontiguousarray(curves.err, dtype=np.float32)

    # pass 1: rows and duplicates per object, then a prefix sum gives each object's first row
    with numba.parallel_chunksize(1):  # dynamic: one prange step is a chunk of objects, threads may be busy
        rows_per_object, duplicates, n_obs, t0, m0 = _count_rows(band, t, mag, offsets, n_bands, n_chunks)
    row_offsets = np.zeros(n_objects + 1, dtype=np.int64)
    np.cumsum(rows_per_object, out=row_offsets[1:])
    n_rows = int(row_offsets[-1])

    # pass 2: fill every row; differences go to `dt` in float64 and are logged below
    dt = np.empty((n_rows, 3), dtype=np.float64)             # (R, 3) dt_prev, dt, 1 + dt_central; days
    rows = np.empty((n_rows, 4), dtype=np.float32)           # (R, 4)
    row_band = np.empty(n_rows, dtype=np.int8)               # (R,)
    band_step = np.empty(n_rows, dtype=np.int32)             # (R,)
    row_t = np.empty(n_rows, dtype=np.float64)               # (R,)
    row_err = np.empty(n_rows, dtype=np.float32)             # (R,)
    colours = np.empty((n_rows, len(pair_a)), dtype=np.float32)  # (R, P)
    weight_band = np.empty(n_rows, dtype=np.float32)         # (R,)
    weight_central = np.empty(n_rows, dtype=np.float32)      # (R,)
    with numba.parallel_chunksize(1):
        _fill_rows(band, t, mag, err, offsets, row_offsets, n_bands, pair_a.astype(np.int64),
                   pair_b.astype(np.int64), n_skip, n_chunks, dt, rows, row_band, band_step, row_t, row_err,
                   colours, weight_band, weight_central)

    # log10 by NumPy, as the reference takes it: NumPy's vectorised log10 and libm's (what Numba calls) differ
    # by an ulp on a few % of values, which can flip a float32 rounding. Contiguous blocks keep NumPy on the
    # same loop for every element.
    _log10_inplace(dt.reshape(-1), threads)
    dt_central = np.empty(n_rows, dtype=np.float32)          # (R,)
    _store_logs(dt, rows, dt_central)

    return ModelInputs(
        offsets=row_offsets, object_ids=curves.object_ids.astype(np.int64), rows=rows, band=row_band,
        band_step=band_step, t=row_t, err=row_err, colours=colours, dt_central=dt_central,
        weight_band=weight_band, weight_central=weight_central, n_obs=n_obs, t0=t0, m0=m0,
        n_duplicates=int(duplicates.sum()),
    )


def _n_chunks(n_objects: int) -> int:
    return (n_objects + OBJECTS_PER_CHUNK - 1) // OBJECTS_PER_CHUNK


def _log10_inplace(values: np.ndarray, threads: int) -> None:
    """np.log10 over a contiguous float64 array, in blocks spread over `threads` (NumPy releases the GIL)."""
    blocks = [(start, min(start + LOG_BLOCK, len(values))) for start in range(0, len(values), LOG_BLOCK)]
    if threads == 1 or len(blocks) <= 1:
        np.log10(values, out=values)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda block: np.log10(values[block[0]:block[1]], out=values[block[0]:block[1]]), blocks))


# ----------------------------------------------------------------------------------------------------------------
# Numba kernels. Parallel loops run over chunks of whole objects: objects are independent.
# ----------------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _chunk_objects(chunk: int, n_objects: int) -> tuple[int, int]:
    start = chunk * OBJECTS_PER_CHUNK
    return start, min(start + OBJECTS_PER_CHUNK, n_objects)


@njit(parallel=True, cache=True)
def _first_unsorted_row(obj_id, band, t, offsets, n_chunks):
    """int64 (K,): the first row of object k out of order (against the row before it), or -1."""
    n_objects = len(offsets) - 1
    first_bad = np.full(n_objects, -1, dtype=np.int64)
    for chunk in prange(n_chunks):
        lo, hi = _chunk_objects(chunk, n_objects)
        for k in range(lo, hi):
            start, stop = offsets[k], offsets[k + 1]
            if start < stop and start > 0 and obj_id[start] <= obj_id[start - 1]:
                first_bad[k] = start
                continue
            for row in range(start + 1, stop):
                if (obj_id[row] != obj_id[start] or t[row] < t[row - 1]
                        or (t[row] == t[row - 1] and band[row] < band[row - 1])):
                    first_bad[k] = row
                    break
    return first_bad


@njit(parallel=True, cache=True)
def _count_rows(band, t, mag, offsets, n_bands, n_chunks):
    """Pass 1: window rows and dropped duplicates per object, observations and first (t, mag) per band."""
    n_objects = len(offsets) - 1
    rows_per_object = np.zeros(n_objects, dtype=np.int64)    # (K,)
    duplicates = np.zeros(n_objects, dtype=np.int64)         # (K,)
    n_obs = np.zeros((n_objects, n_bands), dtype=np.int32)   # (K, B)
    t0 = np.zeros((n_objects, n_bands), dtype=np.float64)    # (K, B)
    m0 = np.zeros((n_objects, n_bands), dtype=np.float32)    # (K, B)
    for chunk in prange(n_chunks):
        lo, hi = _chunk_objects(chunk, n_objects)
        t_last = np.empty(n_bands, dtype=np.float64)         # (B,) last kept t per band
        for k in range(lo, hi):
            for obs in range(offsets[k], offsets[k + 1]):
                b = band[obs]
                if n_obs[k, b] > 0 and t_last[b] == t[obs]:
                    duplicates[k] += 1  # documented policy: keep the first of repeated (obj_id, band, t)
                    continue
                if n_obs[k, b] == 0:
                    t0[k, b] = t[obs]
                    m0[k, b] = mag[obs]
                n_obs[k, b] += 1
                t_last[b] = t[obs]
            rows = 0
            for b in range(n_bands):
                rows += max(n_obs[k, b] - 2, 0)
            rows_per_object[k] = rows
    return rows_per_object, duplicates, n_obs, t0, m0


@njit(parallel=True, cache=True)
def _fill_rows(band, t, mag, err, offsets, row_offsets, n_bands, pair_a, pair_b, n_skip, n_chunks,
               dt, rows, row_band, band_step, row_t, row_err, colours, weight_band, weight_central):
    """Pass 2: every row of every object, in multiband order; the log10 of `dt` is taken afterwards."""
    n_objects = len(offsets) - 1
    n_pairs = len(pair_a)
    for chunk in prange(n_chunks):
        lo, hi = _chunk_objects(chunk, n_objects)
        count = np.empty(n_bands, dtype=np.int64)            # (B,) kept observations so far
        t_last = np.empty(n_bands, dtype=np.float64)         # (B,) t of the band's last and second-last obs
        t_before = np.empty(n_bands, dtype=np.float64)
        mag_last = np.empty(n_bands, dtype=np.float64)       # (B,) mag of the same two, as float64
        mag_before = np.empty(n_bands, dtype=np.float64)
        mag_sum = np.empty(n_bands, dtype=np.float64)        # (B,) in observation order, float64
        mean = np.empty(n_bands, dtype=np.float64)           # (B,) cumulative mean, forward-filled
        band_total = np.empty(n_bands, dtype=np.float64)     # (B,) loss-weight sums
        for k in range(lo, hi):
            start, stop = offsets[k], offsets[k + 1]
            first_row = row_offsets[k]
            count[:] = 0
            mag_sum[:] = 0.0
            row = first_row
            previous_row_t = t[start] if start < stop else 0.0  # first dt counts from the first observation
            for obs in range(start, stop):
                b = band[obs]
                t_obs = t[obs]
                if count[b] > 0 and t_last[b] == t_obs:
                    continue  # a duplicate (counted in pass 1)
                mag_obs = np.float64(mag[obs])
                count[b] += 1
                mag_sum[b] += mag_obs
                mean[b] = mag_sum[b] / count[b]
                if count[b] >= 3:  # this observation completes a window of three in its band
                    # float64 until differenced: float32 MJD steps are ~6 min
                    dt[row, 0] = t_last[b] - t_before[b]
                    dt[row, 1] = t_obs - t_last[b]
                    dt[row, 2] = 1.0 + max(t_obs - previous_row_t, 0.0)
                    rows[row, 2] = np.float32(mag_last[b] - mag_before[b])
                    rows[row, 3] = np.float32(mag_obs - mag_last[b])
                    for p in range(n_pairs):
                        a, c = pair_a[p], pair_b[p]
                        if count[a] > 0 and count[c] > 0:
                            colours[row, p] = np.float32(mean[a] - mean[c])
                        else:
                            colours[row, p] = np.float32(0.0)
                    row_band[row] = b
                    band_step[row] = count[b] - 3
                    row_t[row] = t_obs
                    row_err[row] = err[obs]
                    previous_row_t = t_obs
                    row += 1
                t_before[b] = t_last[b]
                t_last[b] = t_obs
                mag_before[b] = mag_last[b]
                mag_last[b] = mag_obs
            _loss_weights(first_row, row, n_skip, row_band, band_step, row_err, band_total,
                          weight_band, weight_central)


@njit(cache=True)
def _loss_weights(first_row, stop_row, n_skip, row_band, band_step, row_err, band_total, weight_band,
                  weight_central):
    """Eq. 4 with N_skip for one object's rows (§3.6), summed in row order like the reference.

    Band: w = (1/u) / sum(1/u) over the band's steps >= n_skip. Central: over the object's steps >= n_skip,
    each band's uncertainties are first divided by their band sum, then w = (1/u~) / sum(1/u~).
    """
    band_total[:] = 0.0
    for row in range(first_row, stop_row):
        if band_step[row] >= n_skip:
            band_total[row_band[row]] += 1.0 / np.float64(row_err[row])
    for row in range(first_row, stop_row):
        if band_step[row] >= n_skip:
            weight_band[row] = np.float32((1.0 / np.float64(row_err[row])) / band_total[row_band[row]])
        else:
            weight_band[row] = np.float32(0.0)
    central_start = min(first_row + n_skip, stop_row)
    for row in range(first_row, central_start):
        weight_central[row] = np.float32(0.0)
    band_total[:] = 0.0
    for row in range(central_start, stop_row):
        band_total[row_band[row]] += np.float64(row_err[row])
    inverse_total = 0.0
    for row in range(central_start, stop_row):
        inverse_total += band_total[row_band[row]] / np.float64(row_err[row])
    for row in range(central_start, stop_row):
        weight_central[row] = np.float32((band_total[row_band[row]] / np.float64(row_err[row])) / inverse_total)


@njit(parallel=True, cache=True)
def _store_logs(dt, rows, dt_central):
    """Copy the logged differences into their float32 places."""
    for row in prange(len(dt)):
        rows[row, 0] = np.float32(dt[row, 0])
        rows[row, 1] = np.float32(dt[row, 1])
        dt_central[row] = np.float32(dt[row, 2])
