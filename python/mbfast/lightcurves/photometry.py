"""Each survey's photometry to AB magnitudes (Magnitudes: kept rows, what was dropped and why).

Every conversion keeps only detections with flux > flux error (the paper's S/N cut, §2) and reports what it
dropped, counted by reason. Band orders and codes are the survey presets' (mbfast.lightcurves.surveys).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mbfast.lightcurves.table import LightCurves, from_arrays

# m = -2.5 log10(F) + zp ; err_mag = 2.5 / ln(10) * err_F / F
MAG_PER_LN_FLUX = 2.5 / np.log(10.0)

# Drop reasons, as they appear in `Magnitudes.dropped`
LOW_SNR = "flux <= flux_err"
NOT_FINITE = "flux or flux_err not finite"


@dataclass(frozen=True)
class Magnitudes:
    """Flux -> magnitude conversion result.

    mag : float64 (M,) AB    err : float64 (M,) 1-sigma, mag    (M kept rows, in input order)
    keep : bool (N,) input rows kept
    dropped : reason -> number of input rows dropped for it; each dropped row is counted once, under the
        first reason (in the order the conversion checks them) that it fails.
    """

    mag: np.ndarray
    err: np.ndarray
    keep: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return int((~self.keep).sum())

    def to_curves(self, obj_id: np.ndarray, band: np.ndarray, t: np.ndarray, bands: tuple[str, ...]) -> LightCurves:
        """The kept rows as a LightCurves table; obj_id, band (labels or codes) and t are the full input columns."""
        keep = self.keep
        return from_arrays(np.asarray(obj_id)[keep], np.asarray(band)[keep], np.asarray(t)[keep], self.mag,
                           self.err, bands)


def _count_reasons(checks: list[tuple[str, np.ndarray]], n: int) -> tuple[np.ndarray, dict[str, int]]:
    """Apply (reason, passes) checks in order; a row failing several is counted under the first only."""
    keep = np.ones(n, dtype=bool)
    dropped: dict[str, int] = {}
    for reason, passes in checks:
        failing = keep & ~passes
        dropped[reason] = int(failing.sum())
        keep &= passes
    return keep, dropped


def flux_to_mag(flux: np.ndarray, flux_err: np.ndarray, zero_point: float | np.ndarray) -> Magnitudes:
    """Keep flux > flux_err (which also drops flux <= 0 and NaN) and convert to AB magnitudes.

    Parameters
    ----------
    flux, flux_err : ndarray of float, shape (N,)
        Flux and its 1-sigma error, in the units the zero point refers to.
    zero_point : float or ndarray of float, shape (N,)
        m = zero_point - 2.5 log10(flux).

    Examples
    --------
    >>> m = flux_to_mag([10 ** ((27.5 - 20) / 2.5), 5.0], [100.0, 10.0], SNANA_ZERO_POINT)
    >>> m.mag.round(6).tolist(), m.keep.tolist(), m.dropped[LOW_SNR]
    ([20.0], [True, False], 1)
    """
    flux = np.asarray(flux, dtype=np.float64)
    flux_err = np.asarray(flux_err, dtype=np.float64)
    zero_point = np.broadcast_to(np.asarray(zero_point, dtype=np.float64), flux.shape)
    with np.errstate(invalid="ignore"):
        keep, dropped = _count_reasons([
            (NOT_FINITE, np.isfinite(flux) & np.isfinite(flux_err) & np.isfinite(zero_point)),
            (LOW_SNR, (flux_err > 0) & (flux > flux_err)),
        ], len(flux))
    kept_flux = flux[keep]
    return Magnitudes(mag=zero_point[keep] - 2.5 * np.log10(kept_flux),
                      err=MAG_PER_LN_FLUX * flux_err[keep] / kept_flux, keep=keep, dropped=dropped)


# PLAsTiCC / SNANA FLUXCAL: zero point 27.5
SNANA_ZERO_POINT = 27.5
# LSST alerts: psfFlux in nJy; AB zero point of 1 nJy = 31.4 (3631 Jy = 3.631e12 nJy)
LSST_NJY_ZERO_POINT = 31.4
# Pan-STARRS1 DR2 Detection fluxes in Jy; paper eq. 1: m = -2.5 log10(F / 3631 Jy)
AB_JY_ZERO_POINT = 2.5 * np.log10(3631.0)


def plasticc_to_mag(fluxcal: np.ndarray, fluxcal_err: np.ndarray) -> Magnitudes:
    """PLAsTiCC / SNANA FLUXCAL (zero point 27.5) -> AB mag, keeping flux > flux_err."""
    return flux_to_mag(fluxcal, fluxcal_err, SNANA_ZERO_POINT)


def lsst_alert_to_mag(psf_flux: np.ndarray, psf_flux_err: np.ndarray) -> Magnitudes:
    """LSST alert psfFlux, psfFluxErr in nJy -> AB mag (zero point 31.4), keeping flux > flux_err."""
    return flux_to_mag(psf_flux, psf_flux_err, LSST_NJY_ZERO_POINT)


# Appendix A (from Magnier et al. 2013, Table 2): an observation is rejected if any of these bits is set
PS1_INFO_FLAG_BITS = (8, 16, 32, 128, 256, 1024, 2048, 4096, 8192, 32768, 65536, 131072, 262144, 4194304,
                      268435456, 536870912, 1073741824, 2147483648)
PS1_INFO_FLAG2_BITS = (8, 16, 32, 64, 4096, 8192, 16384, 4194304)
PS1_INFO_FLAG3_BITS = (8192, 16384)
PS1_MIN_QF_PERFECT = 0.9


def _flag_mask(bits: tuple[int, ...]) -> np.uint64:
    return np.uint64(sum(bits))


def ps1_to_mag(psf_flux: np.ndarray, psf_flux_err: np.ndarray, psf_qf_perfect: np.ndarray, info_flag: np.ndarray,
               info_flag2: np.ndarray, info_flag3: np.ndarray) -> Magnitudes:
    """Pan-STARRS1 DR2 Detection rows -> AB mag with the paper's cleaning cuts (Appendix A).

    Parameters
    ----------
    psf_flux, psf_flux_err : ndarray of float, shape (N,)
        psfFlux and psfFluxErr in Jy; m = -2.5 log10(psfFlux / 3631 Jy) (paper eq. 1).
    psf_qf_perfect : ndarray of float, shape (N,)
        psfQfPerfect; kept when > 0.9.
    info_flag, info_flag2, info_flag3 : ndarray of int, shape (N,)
        infoFlag, infoFlag2, infoFlag3 bit fields; a row is rejected when any bit listed in Appendix A is set
        (PS1_INFO_FLAG_BITS, PS1_INFO_FLAG2_BITS, PS1_INFO_FLAG3_BITS).

    Returns
    -------
    Magnitudes
        `dropped` counts rows by the first failing cut, in this order: "psfQfPerfect <= 0.9",
        "infoFlag", "infoFlag2", "infoFlag3", "psfFlux <= 0 or psfFluxErr <= 0", then the S/N cut.
    """
    flux = np.asarray(psf_flux, dtype=np.float64)
    flux_err = np.asarray(psf_flux_err, dtype=np.float64)
    qf = np.asarray(psf_qf_perfect, dtype=np.float64)
    flags = [np.asarray(values).astype(np.int64).astype(np.uint64) for values in (info_flag, info_flag2, info_flag3)]
    with np.errstate(invalid="ignore"):
        keep, dropped = _count_reasons([
            (f"psfQfPerfect <= {PS1_MIN_QF_PERFECT}", qf > PS1_MIN_QF_PERFECT),
            ("infoFlag", (flags[0] & _flag_mask(PS1_INFO_FLAG_BITS)) == 0),
            ("infoFlag2", (flags[1] & _flag_mask(PS1_INFO_FLAG2_BITS)) == 0),
            ("infoFlag3", (flags[2] & _flag_mask(PS1_INFO_FLAG3_BITS)) == 0),
            ("psfFlux <= 0 or psfFluxErr <= 0", (flux > 0) & (flux_err > 0)),
        ], len(flux))
    converted = flux_to_mag(np.where(keep, flux, np.nan), flux_err, AB_JY_ZERO_POINT)
    dropped[LOW_SNR] = int((keep & ~converted.keep).sum())
    return replace(converted, dropped=dropped)


def mag_snr_cut(mag: np.ndarray, err: np.ndarray) -> Magnitudes:
    """The flux > flux_err cut for photometry already in magnitudes (ZTF alerts magpsf/sigmapsf, Gaia mags).

    err_mag = 1.0857 err_F / F, so F > err_F is err_mag < 2.5 / ln 10.
    """
    mag = np.asarray(mag, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep, dropped = _count_reasons([
            ("mag or err not finite", np.isfinite(mag) & np.isfinite(err)),
            (LOW_SNR, (err > 0) & (err < MAG_PER_LN_FLUX)),
        ], len(mag))
    return Magnitudes(mag=mag[keep], err=err[keep], keep=keep, dropped=dropped)


def ztf_to_mag(magpsf: np.ndarray, sigmapsf: np.ndarray) -> Magnitudes:
    """ZTF alert magpsf, sigmapsf (AB) with the S/N cut; bands come from `ztf_band_codes(fid)`."""
    return mag_snr_cut(magpsf, sigmapsf)


# §2.1: BP and RP are measured in the same transit; two observations of different bands closer than this
# are reduced to one, to simulate an alternating cadence
GAIA_ALTERNATING_WINDOW_DAYS = 15.0 / (24 * 60)
ALTERNATING_CADENCE = "alternating cadence (other band within 15 min)"


def alternating_cadence(obj_id: np.ndarray, band: np.ndarray, t: np.ndarray,
                        window: float = GAIA_ALTERNATING_WINDOW_DAYS) -> np.ndarray:
    """Keep mask (bool (N,)) that turns simultaneous multiband observations into an alternating cadence (§2.1).

    The paper: "If two observations from different bands are within 15 minutes of each other, one of the
    observations is removed to maintain the alternating cadence." Our reading, per object in time order:
    observations are grouped while consecutive ones are within `window` days; a group with one band is kept
    whole; a group with several bands keeps one observation, the first whose band differs from the band of
    the last observation kept before the group (in the object's first group, simply the first observation;
    ties in t go in band order). So BP/RP pairs from successive transits yield BP, RP, BP, ...

    Parameters
    ----------
    obj_id : ndarray of int, shape (N,)
    band : ndarray of int, shape (N,) band indices
    t : ndarray of float64, shape (N,) days

    Examples
    --------
    >>> alternating_cadence(np.zeros(4, int), np.array([0, 1, 0, 1]), np.array([0.0, 0.001, 1.0, 1.001])).tolist()
    [True, False, False, True]
    """
    obj_id = np.asarray(obj_id).astype(np.int64)
    band = np.asarray(band).astype(np.int64)
    t = np.asarray(t, dtype=np.float64)
    order = np.lexsort((band, t, obj_id))
    sorted_obj, sorted_band, sorted_t = obj_id[order], band[order], t[order]
    new_group = np.ones(len(t), dtype=bool)
    new_group[1:] = (np.diff(sorted_t) > window) | (sorted_obj[1:] != sorted_obj[:-1])
    group_starts = np.flatnonzero(new_group)
    group_stops = np.append(group_starts[1:], len(t))
    keep_sorted = np.ones(len(t), dtype=bool)
    last_band = -1
    for start, stop in zip(group_starts, group_stops):
        if start == 0 or sorted_obj[start] != sorted_obj[start - 1]:
            last_band = -1
        group_bands = sorted_band[start:stop]
        if stop - start > 1 and np.any(group_bands != group_bands[0]):
            others = np.flatnonzero(group_bands != last_band)
            chosen = start + int(others[0])
            keep_sorted[start:stop] = False
            keep_sorted[chosen] = True
            last_band = int(sorted_band[chosen])
        else:
            last_band = int(group_bands[-1])
    keep = np.empty(len(t), dtype=bool)
    keep[order] = keep_sorted
    return keep


def gaia_to_mag(obj_id: np.ndarray, band: np.ndarray, t: np.ndarray, mag: np.ndarray, err: np.ndarray,
                window: float = GAIA_ALTERNATING_WINDOW_DAYS) -> Magnitudes:
    """Gaia BP/RP epoch photometry -> S/N cut, then the alternating cadence (§2.1).

    `mag` is as Gaia publishes it (DR2 epoch photometry `mag`, Vega system); Gaia gives flux_over_error
    rather than a magnitude error, so pass err = 2.5 / ln(10) / flux_over_error (then flux > flux_err is
    err < 1.0857, which `mag_snr_cut` applies). The S/N cut runs first so that a dropped observation does not
    also remove its partner in the other band.
    `band` holds indices into GAIA.bands (0 = BP, 1 = RP).
    """
    cut = mag_snr_cut(mag, err)
    passed = np.flatnonzero(cut.keep)
    alternating = alternating_cadence(np.asarray(obj_id)[passed], np.asarray(band)[passed], np.asarray(t)[passed],
                                      window)
    keep = np.zeros(len(cut.keep), dtype=bool)
    keep[passed[alternating]] = True
    dropped = dict(cut.dropped)
    dropped[ALTERNATING_CADENCE] = int((~alternating).sum())
    return Magnitudes(mag=cut.mag[alternating], err=cut.err[alternating], keep=keep, dropped=dropped)
