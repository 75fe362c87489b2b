"""Training-set augmentation and class balance, applied to raw light curves before preprocessing.

A fresh augmented copy of the training objects is drawn every epoch (preprocessing the whole PLAsTiCC training
set takes about 0.5 s), so each pass sees other truncations, other dropped observations and other noise.
Validation and test curves are never augmented. Dimension legend: N observations, K objects, B bands, C classes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mbfast.lightcurves.photometry import MAG_PER_LN_FLUX   # err (mag) = MAG_PER_LN_FLUX * flux_err / flux
from mbfast.lightcurves.table import LightCurves
from mbfast.train.cosmology import dilated_times, dimming

# an object needs one band with this many observations to give one window row (eq. 2 uses three)
MIN_OBS_FOR_ROW = 3


@dataclass(frozen=True)
class Augmentation:
    """What the per-epoch augmentation does; every probability 0 (and redraw False) turns it off."""

    truncate: float = 0.5       # P(an object is cut at a random time): trains early classification
    obs_dropout: float = 0.1    # P(one observation is dropped)
    band_dropout: float = 0.2   # P(an object loses a random subset of its bands): classify any band subset
    redraw: bool = True         # magnitudes re-drawn from N(mag, err)
    redshift: float = 0.0       # P(an object of known redshift is moved to another one): see shift_redshift

    @property
    def active(self) -> bool:
        return self.truncate > 0 or self.obs_dropout > 0 or self.band_dropout > 0 or self.redraw or self.redshift > 0


def augment(curves: LightCurves, augmentation: Augmentation, rng: np.random.Generator) -> LightCurves:
    """A randomly augmented copy of `curves` with the same objects in the same order.

    An object whose augmented curve would keep no band with MIN_OBS_FOR_ROW observations keeps its whole curve
    (with re-drawn magnitudes), so every object of the input still has a window row in the output.
    """
    n_objects, n_bands = curves.n_objects, len(curves.bands)
    owner = curves.owner                                                  # (N,) object of each observation
    keep = np.ones(len(curves), dtype=bool)
    if augmentation.truncate > 0:
        first = curves.t[curves.offsets[:-1]]
        last = curves.t[np.maximum(curves.offsets[1:] - 1, curves.offsets[:-1])]
        cut = rng.random(n_objects) < augmentation.truncate
        limit = np.where(cut, first + rng.random(n_objects) * (last - first), np.inf)  # (K,)
        keep &= curves.t <= limit[owner]
    if augmentation.obs_dropout > 0:
        keep &= rng.random(len(curves)) >= augmentation.obs_dropout
    if augmentation.band_dropout > 0:
        hit = rng.random(n_objects) < augmentation.band_dropout
        dropped = hit[:, None] & (rng.random((n_objects, n_bands)) < 0.5)  # (K, B)
        keep &= ~dropped[owner, curves.band]
    counts = np.zeros((n_objects, n_bands), dtype=np.int64)
    np.add.at(counts, (owner[keep], curves.band[keep]), 1)
    unusable = ~(counts >= MIN_OBS_FOR_ROW).any(axis=1)
    keep |= unusable[owner]
    if augmentation.redraw:
        noise = curves.err * rng.standard_normal(len(curves)).astype(np.float32)
        curves = replace(curves, mag=(curves.mag + noise).astype(np.float32))
    return curves.keep_rows(keep)


# shift_redshift draws z' = z * factor with log(factor) uniform in these bounds, and never beyond MAX_SHIFTED_REDSHIFT
REDSHIFT_FACTOR = (0.5, 2.0)
MAX_SHIFTED_REDSHIFT = 3.0


def shift_redshift(curves: LightCurves, redshift: np.ndarray, probability: float,
                   rng: np.random.Generator) -> tuple[LightCurves, np.ndarray]:
    """Each object of known redshift (finite, > 0), with `probability`, seen from another redshift z'.

    In the spirit of Avocado (Boone 2019) but without its Gaussian-process model, so without K-corrections:
    magnitudes shift by cosmology.dimming(z, z') (the same rest-frame spectrum further away), times stretch by
    s = (1 + z') / (1 + z) about the brightest observation, and for s > 1 each observation is kept with
    probability 1 / s so the cadence stays the survey's. The flux error stays what it was in flux (sky-limited),
    so a dimmed object is noisier: noise is added up to it, and observations whose new flux is not above its
    error are dropped, as the data sets' own detection cut does. An object left with no band of MIN_OBS_FOR_ROW
    observations keeps its curve and redshift. Returns the curves (same objects, same order) and each object's
    redshift after the shift.
    """
    n_objects, n_bands = curves.n_objects, len(curves.bands)
    owner = curves.owner
    known = np.isfinite(redshift) & (redshift > 0)
    moved = known & (rng.random(n_objects) < probability)                  # (K,)
    low, high = np.log(REDSHIFT_FACTOR[0]), np.log(REDSHIFT_FACTOR[1])
    new_z = np.where(moved, np.minimum(np.where(known, redshift, 1.0) * np.exp(rng.uniform(low, high, n_objects)),
                                       MAX_SHIFTED_REDSHIFT), redshift)
    safe_z, safe_new = np.where(moved, redshift, 1.0), np.where(moved, new_z, 1.0)
    stretch = (1.0 + safe_new) / (1.0 + safe_z)                             # (K,) 1 where not moved
    added_mag = np.where(moved, dimming(safe_z, safe_new), 0.0)

    t = dilated_times(curves, stretch)
    scale = 10.0 ** (-0.4 * added_mag[owner])                                  # new flux / old flux
    flux_err = curves.err.astype(np.float64) / MAG_PER_LN_FLUX                # relative to the old flux
    added = flux_err * np.sqrt(np.maximum(1.0 - scale ** 2, 0.0))
    new_flux = scale + added * rng.standard_normal(len(curves))              # old flux = 1
    new_err = np.maximum(flux_err, flux_err * scale)                         # brightened: the error scales too
    keep = new_flux > new_err
    keep &= rng.random(len(curves)) < 1.0 / np.maximum(stretch[owner], 1.0)
    counts = np.zeros((n_objects, n_bands), dtype=np.int64)
    np.add.at(counts, (owner[keep], curves.band[keep]), 1)
    failed = moved & ~(counts >= MIN_OBS_FOR_ROW).any(axis=1)
    unchanged = (~moved | failed)[owner]
    keep |= unchanged
    safe_flux = np.where(keep & ~unchanged, new_flux, 1.0)
    mag = np.where(unchanged, curves.mag, curves.mag - 2.5 * np.log10(safe_flux))
    err = np.where(unchanged, curves.err, MAG_PER_LN_FLUX * new_err / safe_flux)
    shifted = replace(curves, t=np.where(unchanged, curves.t, t), mag=mag.astype(np.float32),
                      err=err.astype(np.float32))
    return shifted.keep_rows(keep), np.where(failed, redshift, new_z)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """float32 (C,) inverse class frequency of `labels`, scaled so the objects' mean weight is 1 (0 if absent)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def balanced_sample(objects: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As many objects as `objects`, drawn with replacement so that every class is drawn equally often."""
    classes = np.unique(labels[objects])
    per_class = [objects[labels[objects] == label] for label in classes]
    picks = np.bincount(rng.integers(len(classes), size=len(objects)), minlength=len(classes))
    return np.sort(np.concatenate([rng.choice(members, size=count) for members, count in zip(per_class, picks)]))
