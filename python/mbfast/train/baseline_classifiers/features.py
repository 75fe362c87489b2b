"""Per-object feature vectors for the random-forest baselines (paper §4.1): light-curve features per band plus
colours, with -999 wherever a value cannot be computed, as the paper imputes missing values.

Not the authors' 105-feature ALeRCE set (Sánchez-Sáez et al. 2021): the subset computable from (t, mag, err)
alone with the `light-curve` package, periods from each band alone. Mean magnitudes are left out (§4.1), but
they enter through the colours. Dimension legend: K objects, B bands, F features per band, P colour pairs.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mbfast.lightcurves.table import LightCurves

MISSING = -999.0  # the paper's imputation value (§4.1)
MIN_OBS = 2       # fewer distinct epochs in a band -> every feature of that band is MISSING


def band_extractor():
    """One light_curve.Extractor evaluated on each band alone (imports light-curve lazily)."""
    import light_curve as lc

    return lc.Extractor(
        lc.Amplitude(), lc.BeyondNStd(1.0), lc.Cusum(), lc.Eta(), lc.EtaE(), lc.ExcessVariance(),
        lc.InterPercentileRange(0.25), lc.Kurtosis(), lc.LinearTrend(), lc.MaximumSlope(),
        lc.MedianAbsoluteDeviation(), lc.MedianBufferRangePercentage(0.1), lc.PercentAmplitude(),
        lc.PercentDifferenceMagnitudePercentile(0.05), lc.ReducedChi2(), lc.Skew(), lc.StandardDeviation(),
        lc.StetsonK(), lc.Median(), lc.Duration(), lc.ObservationCount(),
        # single-band periods (§4.1): two highest Lomb-Scargle peaks, period and signal-to-noise each
        lc.Periodogram(peaks=2, resolution=10.0, max_freq_factor=1.0, fast=True),
    )


@dataclass(frozen=True)
class FeatureSet:
    values: np.ndarray          # float64 (K, B*F + P); MISSING where not computable
    names: tuple[str, ...]      # (B*F + P,) "<feature>_<band>" then "<band a>-<band b>" colours
    n_colours: int              # P, the trailing columns

    @property
    def colour_columns(self) -> np.ndarray:
        """bool (B*F + P,) True on the colour columns."""
        mask = np.zeros(len(self.names), dtype=bool)
        mask[len(self.names) - self.n_colours:] = True
        return mask


class FeatureExtractor:
    """Computes FeatureSet rows for LightCurves with a fixed band order.

    Colours are mean_mag[a] - mean_mag[b] for every band pair a < b, over all of the object's observations
    (the model's colours, Appendix B, at the last step), MISSING where either band has no observation.
    """

    def __init__(self, bands: tuple[str, ...]) -> None:
        self.bands = tuple(bands)
        self.extractor = band_extractor()
        self.band_names = tuple(self.extractor.names)
        self.pairs = tuple(itertools.combinations(range(len(self.bands)), 2))
        self.names = tuple(f"{name}_{band}" for band in self.bands for name in self.band_names) + tuple(
            f"{self.bands[a]}-{self.bands[b]}" for a, b in self.pairs)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def object_features(self, band: np.ndarray, t: np.ndarray, mag: np.ndarray, err: np.ndarray) -> np.ndarray:
        """One object's rows (sorted by t, as in LightCurves) -> float64 (B*F + P,)."""
        n_bands, n_band_features = len(self.bands), len(self.band_names)
        out = np.full(self.n_features, MISSING)
        means = np.full(n_bands, np.nan)
        for b in range(n_bands):
            mine = band == b
            if not mine.any():
                continue
            band_t = t[mine].astype(np.float64)
            band_mag = mag[mine].astype(np.float64)
            band_err = err[mine].astype(np.float64)
            means[b] = band_mag.mean()
            # light-curve wants strictly increasing t; keep the first of repeated epochs (as preprocessing does)
            keep = np.concatenate([[True], np.diff(band_t) > 0])
            if keep.sum() < MIN_OBS:
                continue
            values = self.extractor(band_t[keep], band_mag[keep], band_err[keep], fill_value=MISSING,
                                    sorted=True, check=False)
            out[b * n_band_features:(b + 1) * n_band_features] = np.where(np.isfinite(values), values, MISSING)
        colours = out[n_bands * n_band_features:]
        for k, (a, c) in enumerate(self.pairs):
            if np.isfinite(means[a]) and np.isfinite(means[c]):
                colours[k] = means[a] - means[c]
        return out

    def transform(self, curves: LightCurves) -> FeatureSet:
        """Features of every object in `curves` (one thread, object by object)."""
        if tuple(curves.bands) != self.bands:
            raise ValueError(f"curves have bands {curves.bands}, this extractor was built for {self.bands}")
        values = np.empty((curves.n_objects, self.n_features))  # (K, B*F + P)
        for k in range(curves.n_objects):
            start, stop = int(curves.offsets[k]), int(curves.offsets[k + 1])
            values[k] = self.object_features(curves.band[start:stop], curves.t[start:stop],
                                             curves.mag[start:stop], curves.err[start:stop])
        return FeatureSet(values, self.names, len(self.pairs))


def extract_features(curves: LightCurves) -> FeatureSet:
    """Features of every object, bands in curves.bands order.

    Parameters
    ----------
    curves : LightCurves
        K objects; t MJD (days), mag AB, err 1-sigma mag.

    Returns
    -------
    FeatureSet
        values float64 (K, B*F + P), MISSING (-999) where a band has fewer than MIN_OBS epochs or a feature is
        undefined (e.g. kurtosis with < 4 points).
    """
    return FeatureExtractor(curves.bands).transform(curves)
