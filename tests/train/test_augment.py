"""Augmentation, class balance and the ZTF-like resampling used for training (mbfast.train.augment, datasets)."""
from __future__ import annotations

import numpy as np
import pytest

from mbfast.lightcurves.labelled import LabelledSet, load_files
from mbfast.train.datasets import to_ztf_like, ztf_error
from mbfast.lightcurves.photometry import MAG_PER_LN_FLUX
from mbfast.train.augment import (MIN_OBS_FOR_ROW, Augmentation, augment, balanced_sample,
                                  class_weights, shift_redshift)
from mbfast.train.cosmology import dimming, luminosity_distance
from mbfast.lightcurves.surveys import ZTF
from mbfast.lightcurves.table import LightCurves, from_arrays

OFF = Augmentation(truncate=0.0, obs_dropout=0.0, band_dropout=0.0, redraw=False)


def curves_of(lengths: list[int], bands: tuple[str, ...] = ("g", "r")) -> LightCurves:
    """Objects 0..K-1 with lengths[k] observations, t = 0, 1, 2, ..., bands alternating."""
    obj_id = np.repeat(np.arange(len(lengths)), lengths)
    t = np.concatenate([np.arange(n, dtype=np.float64) for n in lengths])
    band = np.array([bands[i % len(bands)] for n in lengths for i in range(n)])
    mag = np.full(len(t), 19.0)
    err = np.full(len(t), 0.1)
    return from_arrays(obj_id, band, t, mag, err, bands)


def test_augmentation_off_returns_the_same_curves() -> None:
    curves = curves_of([10, 7])
    out = augment(curves, OFF, np.random.default_rng(0))
    for name in ("obj_id", "band", "t", "mag", "err", "offsets"):
        np.testing.assert_array_equal(getattr(out, name), getattr(curves, name))
    assert not OFF.active and Augmentation().active


def test_truncation_keeps_a_prefix_in_time() -> None:
    curves = curves_of([40] * 50)
    out = augment(curves, Augmentation(truncate=1.0, obs_dropout=0.0, band_dropout=0.0, redraw=False),
                  np.random.default_rng(1))
    lengths = np.diff(out.offsets)
    assert out.n_objects == 50 and lengths.max() <= 40 and lengths.min() >= 2 * MIN_OBS_FOR_ROW - 1
    for k in range(out.n_objects):  # each object is its first n observations
        np.testing.assert_array_equal(out.object(k).t, np.arange(lengths[k], dtype=np.float64))
    assert len(np.unique(lengths)) > 10  # cut at random times, not one length


def test_observation_dropout_rate_and_usable_objects() -> None:
    curves = curves_of([200] * 20)
    out = augment(curves, Augmentation(truncate=0.0, obs_dropout=0.25, band_dropout=0.0, redraw=False),
                  np.random.default_rng(2))
    assert out.n_objects == 20
    assert abs(len(out) / len(curves) - 0.75) < 0.02


def test_band_dropout_removes_whole_bands_but_never_every_usable_one() -> None:
    curves = curves_of([12] * 400)
    out = augment(curves, Augmentation(truncate=0.0, obs_dropout=0.0, band_dropout=1.0, redraw=False),
                  np.random.default_rng(3))
    lost_one_band = 0
    for k in range(out.n_objects):
        bands = set(out.object(k).band.tolist())
        assert bands, f"object {k} lost every band"
        counts = np.bincount(out.object(k).band, minlength=2)
        assert set(counts.tolist()) <= {0, 6}  # a band is kept whole or dropped whole
        lost_one_band += len(bands) == 1
    # each band drops with P 1/2; dropping both keeps the whole curve: P(one band left) = 1/2
    assert abs(lost_one_band / out.n_objects - 0.5) < 0.08


def test_an_object_that_would_lose_its_last_window_row_keeps_its_whole_curve() -> None:
    curves = curves_of([3], bands=("g",))  # exactly one window row: any drop would leave none
    out = augment(curves, Augmentation(truncate=0.0, obs_dropout=0.9, band_dropout=0.0, redraw=False),
                  np.random.default_rng(4))
    np.testing.assert_array_equal(out.t, curves.t)


def test_redraw_moves_magnitudes_by_their_errors() -> None:
    curves = curves_of([5000])
    out = augment(curves, Augmentation(truncate=0.0, obs_dropout=0.0, band_dropout=0.0, redraw=True),
                  np.random.default_rng(5))
    delta = out.mag.astype(np.float64) - curves.mag
    assert abs(delta.mean()) < 0.006 and abs(delta.std() - 0.1) < 0.004
    np.testing.assert_array_equal(out.err, curves.err)


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = class_weights(labels, 4)
    np.testing.assert_allclose(weights, [10 / 18, 10 / 9, 10 / 3, 0.0], rtol=1e-6)
    assert abs(weights[labels].mean() - 1.0) < 1e-6


def test_balanced_sample_draws_every_class_equally_often() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    objects = np.arange(1000)
    drawn = balanced_sample(objects, labels, np.random.default_rng(6))
    assert len(drawn) == 1000
    shares = np.bincount(labels[drawn], minlength=3) / 1000
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)
    assert set(drawn[labels[drawn] == 2].tolist()) <= set(range(990, 1000))


def test_ztf_error_is_five_sigma_at_the_depth() -> None:
    np.testing.assert_allclose(ztf_error(np.array([20.6]), np.array([20.6])), np.hypot(2.5 / np.log(10) / 5, 0.015))
    assert ztf_error(np.array([16.0]), np.array([20.6]))[0] < 0.02


def test_ztf_like_curves_are_bright_enough_to_be_ztf_detections() -> None:
    curves = curves_of([30, 30], bands=("u", "g", "r", "i", "z", "y"))
    curves = LightCurves(curves.obj_id, curves.band, curves.t, np.full(len(curves), 23.0, np.float32),
                         np.full(len(curves), 0.05, np.float32), curves.offsets, curves.bands)
    labelled = LabelledSet(curves, np.array([0, 1]), ("A", "B"), {}, 0)
    ztf = to_ztf_like(labelled, seed=0)
    assert ztf.survey == "ztf" and ztf.curves.bands == ZTF.bands
    depth = np.array([20.8, 20.6, 20.2])[ztf.curves.band]
    assert np.all(ztf.curves.mag < depth) and np.all(ztf.curves.mag > 15.0)
    assert set(np.unique(ztf.curves.band).tolist()) <= {0, 1, 2}
    # u, z, y are gone: of each object's 30 (5 per band), at most 5 g + 5 r + 5 i remain
    assert np.all(np.diff(ztf.curves.offsets) <= 15)


def test_load_files_reads_curves_and_labels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "curves.csv").write_text(
        "obj_id,band,t,mag,err\n" + "".join(f"{k},{'gr'[i % 2]},{60000 + i},19.0,0.1\n"
                                            for k in (7, 8, 9) for i in range(6)))
    (tmp_path / "labels.csv").write_text("obj_id,label,redshift\n7,SN Ia,0.1\n9,SN II,\n")
    labelled = load_files(tmp_path / "curves.csv", tmp_path / "labels.csv", "ztf")
    assert labelled.class_names == ("SN II", "SN Ia") and labelled.survey == "ztf"
    np.testing.assert_array_equal(labelled.curves.object_ids, [7, 9])
    np.testing.assert_array_equal(labelled.labels, [1, 0])
    np.testing.assert_array_equal(labelled.targets["redshift"], [0.1, np.nan])
    (tmp_path / "bad.csv").write_text("obj_id,label\n7,Ia\n11,II\n")
    with pytest.raises(ValueError, match="obj_id 11 has a label but no light curve"):
        load_files(tmp_path / "curves.csv", tmp_path / "bad.csv", "ztf")


def test_prior_shift_picks_the_alpha_with_the_best_validation_macro_f1() -> None:
    from mbfast.train.prior import choose_alpha, log_prior

    prior = log_prior(np.array([0] * 9 + [1]), 2)
    np.testing.assert_allclose(prior, np.log([0.9, 0.1]))
    # two objects of class 0 that the balanced model calls 1 by a small margin, one clear class-1 object
    probs = np.array([[0.45, 0.55], [0.4, 0.6], [0.05, 0.95]])
    alpha, scores = choose_alpha(probs, np.array([0, 0, 1]), prior)
    assert scores[0.0] < 1.0 and scores[alpha] == 1.0
    # log(0.45/0.55) + alpha*log(9) > 0 needs alpha > 0.0913, log(0.4/0.6) + ... needs alpha > 0.1845
    assert alpha == 0.2
    assert choose_alpha(np.array([[0.9, 0.1], [0.1, 0.9]]), np.array([0, 1]), prior)[0] == 0.0  # ties: smallest


# ------------------------------------------------------------------------------------------ redshift
def test_luminosity_distance_and_dimming_known_values() -> None:
    # flat LCDM, H0 = 70, Omega_m = 0.3 (e.g. astropy FlatLambdaCDM(70, 0.3).luminosity_distance)
    np.testing.assert_allclose(luminosity_distance(np.array([0.01, 0.5, 1.0, 2.0])),
                               [43.2, 2832.9, 6607.7, 15539.6], rtol=2e-3)
    z = np.array([0.01, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(dimming(z, 2 * z),
                               5 * np.log10(luminosity_distance(2 * z) / luminosity_distance(z))
                               - 2.5 * np.log10((1 + 2 * z) / (1 + z)), atol=1e-9)


def peaked_curves(n_objects: int, err: float, n_obs: int = 24) -> LightCurves:
    """Objects with one band of n_obs points a day apart, brightest (18 mag) at t = 10, 0.1 mag fainter a day."""
    t = np.tile(np.arange(n_obs, dtype=np.float64), n_objects)
    mag = 18.0 + 0.1 * np.abs(t - 10.0)
    obj_id = np.repeat(np.arange(n_objects), n_obs)
    return from_arrays(obj_id, np.full(len(t), "g"), t, mag, np.full(len(t), err), ("g",))


def test_redshift_shift_dims_dilates_and_thins_as_written() -> None:
    curves = peaked_curves(300, err=1e-4)
    z = np.full(300, 0.3)
    out, new_z = shift_redshift(curves, z, 1.0, np.random.default_rng(0))
    assert np.all((new_z >= 0.15 - 1e-9) & (new_z <= 0.6 + 1e-9)) and np.std(new_z) > 0.05
    stretch = (1 + new_z) / (1 + z)
    added = dimming(z, new_z)
    owner = out.owner
    original_t = 10.0 + (out.t - 10.0) / stretch[owner]                  # times back on the original grid
    np.testing.assert_allclose(original_t, np.round(original_t), atol=1e-6)
    expected_mag = 18.0 + 0.1 * np.abs(np.round(original_t) - 10.0) + added[owner]
    np.testing.assert_allclose(out.mag, expected_mag, atol=2e-3)          # noise of 1e-4 mag is all there is
    np.testing.assert_allclose(out.err, 1e-4 * np.maximum(10 ** (0.4 * added[owner]), 1.0), rtol=1e-3)
    # a stretched curve keeps about 1 / stretch of its points, a compressed one all of them
    kept = np.diff(out.offsets)
    compressed = stretch < 1
    assert np.all(kept[compressed] == 24)
    assert np.sum(kept[~compressed]) == pytest.approx(np.sum(24 / stretch[~compressed]), rel=0.05)


def test_redshift_shift_leaves_unknown_redshifts_and_probability_zero_alone() -> None:
    curves = peaked_curves(4, err=0.05)
    z = np.array([np.nan, 0.0, 0.2, 0.5])
    out, new_z = shift_redshift(curves, z, 1.0, np.random.default_rng(1))
    np.testing.assert_array_equal(out.mag[out.offsets[0]:out.offsets[2]], curves.mag[:48])
    np.testing.assert_array_equal(new_z[:2], z[:2])
    assert np.all(new_z[2:] != z[2:])
    same, same_z = shift_redshift(curves, z, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(same.mag, curves.mag)
    np.testing.assert_array_equal(same_z, z)


def test_redshift_shift_drops_undetected_points_and_keeps_curves_that_would_vanish() -> None:
    curves = peaked_curves(400, err=0.5, n_obs=6)
    z = np.full(400, 1.0)
    out, new_z = shift_redshift(curves, z, 1.0, np.random.default_rng(2))
    kept = np.diff(out.offsets)
    assert np.all(kept >= MIN_OBS_FOR_ROW)
    unmoved = new_z == z                                                    # too faint at z': curve kept as it was
    assert 10 < unmoved.sum() < 390
    for k in np.flatnonzero(unmoved):
        np.testing.assert_array_equal(out.mag[out.offsets[k]:out.offsets[k + 1]], curves.mag[6 * k:6 * k + 6])
    # every kept point of a moved object is a detection: flux above its error, so err < 1.0857 mag
    moved_rows = ~unmoved[out.owner]
    assert np.all(out.err[moved_rows] < MAG_PER_LN_FLUX)
