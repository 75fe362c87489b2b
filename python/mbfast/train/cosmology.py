"""How an event's light curve changes when it is moved to another redshift (redshift augmentation). Flat LCDM
(H0 = 70 km/s/Mpc, Omega_m = 0.3), no K-correction."""
from __future__ import annotations

import numpy as np

from mbfast.lightcurves.table import LightCurves

HUBBLE_DISTANCE_MPC = 299792.458 / 70.0     # c / H0
OMEGA_M = 0.3
MAX_REDSHIFT = 6.0
_Z_GRID = np.concatenate([[0.0], np.geomspace(1e-5, MAX_REDSHIFT, 6000)])


def _comoving_grid() -> np.ndarray:
    inverse_e = 1.0 / np.sqrt(OMEGA_M * (1.0 + _Z_GRID) ** 3 + 1.0 - OMEGA_M)
    return HUBBLE_DISTANCE_MPC * np.concatenate([[0.0], np.cumsum(0.5 * (inverse_e[1:] + inverse_e[:-1])
                                                                  * np.diff(_Z_GRID))])


_COMOVING = _comoving_grid()


def luminosity_distance(z: np.ndarray) -> np.ndarray:
    """Mpc at redshifts 0 < z <= MAX_REDSHIFT (trapezoid rule on a fine grid)."""
    return (1.0 + z) * np.interp(z, _Z_GRID, _COMOVING)


def _magnitude_offset(z: np.ndarray) -> np.ndarray:
    # an AB magnitude (per unit frequency) of a fixed rest-frame spectrum is this plus a constant
    return 5.0 * np.log10(luminosity_distance(z)) - 2.5 * np.log10(1.0 + z)


def dimming(z_from: np.ndarray, z_to: np.ndarray) -> np.ndarray:
    """Magnitudes added when an event at z_from is seen from z_to instead (negative: brighter)."""
    return _magnitude_offset(z_to) - _magnitude_offset(z_from)


def dilated_times(curves: LightCurves, stretch: np.ndarray) -> np.ndarray:
    """float64 (N,) observation times with each object's curve stretched by `stretch` (K,) about its brightest
    observation: (1 + z') / (1 + z) moves it to z'."""
    owner = curves.owner
    brightest = np.lexsort((curves.mag, owner))[np.minimum(curves.offsets[:-1], max(len(curves) - 1, 0))]
    t_peak = curves.t[brightest][owner]                    # an object without observations takes any row: unused
    return t_peak + (curves.t - t_peak) * stretch[owner]
