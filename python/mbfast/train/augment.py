"""Training-set augmentation and class balance, applied to raw light curves before preprocessing.

A fresh augmented copy of the training objects is drawn every epoch (preprocessing the whole PLAsTiCC training
set takes about 0.5 s), so each pass sees other truncations, other dropped observations and other noise.
Validation and test curves are never augmented. Dimension legend: N observations, K objects, B bands, C classes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mbfast.lightcurves.table import LightCurves

# an object needs one band with this many observations to give one window row (eq. 2 uses three)
MIN_OBS_FOR_ROW = 3


@dataclass(frozen=True)
class Augmentation:
    """What the per-epoch augmentation does; every probability 0 (and redraw False) turns it off."""

    truncate: float = 0.5       # P(an object is cut at a random time): trains early classification
    obs_dropout: float = 0.1    # P(one observation is dropped)
    band_dropout: float = 0.2   # P(an object loses a random subset of its bands): classify any band subset
    redraw: bool = True         # magnitudes re-drawn from N(mag, err)

    @property
    def active(self) -> bool:
        return self.truncate > 0 or self.obs_dropout > 0 or self.band_dropout > 0 or self.redraw


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
