"""Survey presets: band order and conversions from each survey's photometry to AB magnitudes.

Every preset keeps only detections with flux > flux error (the paper's S/N cut, §2) and reports what it dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# m = -2.5 log10(F) + zp ; err_mag = 2.5 / ln(10) * err_F / F
MAG_PER_LN_FLUX = 2.5 / np.log(10.0)


@dataclass(frozen=True)
class Survey:
    name: str
    bands: tuple[str, ...]


LSST = Survey("lsst", ("u", "g", "r", "i", "z", "y"))
ZTF = Survey("ztf", ("g", "r", "i"))
PS1 = Survey("ps1", ("g", "r", "i", "z", "y"))
GAIA = Survey("gaia", ("BP", "RP"))
PLASTICC = Survey("plasticc", LSST.bands)

SURVEYS = {survey.name: survey for survey in (LSST, ZTF, PS1, GAIA, PLASTICC)}


def get_survey(name: str) -> Survey:
    try:
        return SURVEYS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown survey {name!r} (known: {', '.join(SURVEYS)})") from None


@dataclass(frozen=True)
class Magnitudes:
    """Flux -> magnitude conversion result; `keep` marks the input rows that passed the S/N cut."""

    mag: np.ndarray   # float64 (M,) AB
    err: np.ndarray   # float64 (M,) mag
    keep: np.ndarray  # bool (N,) input rows kept (flux > flux_err)


def flux_to_mag(flux: np.ndarray, flux_err: np.ndarray, zero_point: float) -> Magnitudes:
    """Keep flux > flux_err (which also drops flux <= 0 and NaN) and convert to AB magnitudes."""
    flux = np.asarray(flux, dtype=np.float64)
    flux_err = np.asarray(flux_err, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0) & (flux > flux_err)
    kept_flux = flux[keep]
    return Magnitudes(mag=zero_point - 2.5 * np.log10(kept_flux), err=MAG_PER_LN_FLUX * flux_err[keep] / kept_flux,
                      keep=keep)


# PLAsTiCC / SNANA FLUXCAL: zero point 27.5
SNANA_ZERO_POINT = 27.5
