"""Survey presets and photometry: hand-computed flux -> AB conversions, PS1 Appendix A cuts, Gaia alternating cadence (§2.1),
ZTF fid mapping, and object selection (§2: minimum observations per band, maximum objects per class)."""
from __future__ import annotations

import numpy as np
import pytest

from mbfast.lightcurves.labelled import LabelledSet, observations_per_band, select_objects
from mbfast.lightcurves.photometry import (ALTERNATING_CADENCE, LOW_SNR, MAG_PER_LN_FLUX, NOT_FINITE,
                                           PS1_INFO_FLAG_BITS, alternating_cadence, flux_to_mag, gaia_to_mag,
                                           lsst_alert_to_mag, plasticc_to_mag, ps1_to_mag, ztf_to_mag)
from mbfast.lightcurves.surveys import GAIA, ZTF, band_map, get_survey, ztf_band_codes
from mbfast.lightcurves.table import from_arrays

MINUTE = 1.0 / (24 * 60)


def test_ps1_3631_jy_is_zero_ab_mag():
    # paper eq. 1: m = -2.5 log10(F / 3631 Jy); 3631 Jy -> 0, 36.31 Jy -> 5
    m = ps1_to_mag([3631.0, 36.31], [1.0, 0.1], [1.0, 1.0], [0, 0], [0, 0], [0, 0])
    np.testing.assert_allclose(m.mag, [0.0, 5.0], atol=1e-12)
    np.testing.assert_allclose(m.err, [1.0857362047581294 / 3631.0, 1.0857362047581294 * 0.1 / 36.31], rtol=1e-12)


def test_snana_fluxcal_zero_point_27_5():
    m = plasticc_to_mag([10 ** ((27.5 - 20) / 2.5), 10 ** ((27.5 - 25) / 2.5)], [100.0, 1.0])
    np.testing.assert_allclose(m.mag, [20.0, 25.0], atol=1e-12)
    # err_mag = 2.5 / ln 10 * err_F / F = 1.0857 * 100 / 1000
    np.testing.assert_allclose(m.err, [0.10857362047581294, 0.10857362047581294], rtol=1e-12)
    assert MAG_PER_LN_FLUX == pytest.approx(1.0857362047581294)


def test_lsst_alert_njy_zero_point_31_4():
    m = lsst_alert_to_mag([1.0e4 * 10 ** (-0.4 * 0.0), 3.631e12], [1.0e3, 1.0e9])
    # 1e4 nJy -> 31.4 - 10 = 21.4; 3631 Jy = 3.631e12 nJy -> 31.4 - 31.40005... ~ 0 (31.4 is rounded)
    np.testing.assert_allclose(m.mag, [21.4, 0.0], atol=1e-4)


def test_snr_cut_keeps_only_flux_above_error_and_counts_reasons():
    flux = np.array([10.0, 10.0, -5.0, 0.0, np.nan, 3.0, 11.0])
    err = np.array([9.99, 10.0, 1.0, 1.0, 1.0, np.inf, 0.0])
    m = flux_to_mag(flux, err, 27.5)
    np.testing.assert_array_equal(m.keep, [True, False, False, False, False, False, False])
    assert m.dropped == {NOT_FINITE: 2, LOW_SNR: 4}
    assert m.n_dropped == 6 and len(m.mag) == 1


def test_ps1_appendix_a_cuts_on_crafted_rows():
    rows = [  # (qf, infoFlag, infoFlag2, infoFlag3, flux, err, kept, why)
        (0.95, 0, 0, 0, 1e-3, 1e-5, True, "clean"),
        (0.90, 0, 0, 0, 1e-3, 1e-5, False, "psfQfPerfect must be > 0.9"),
        (0.95, 8, 0, 0, 1e-3, 1e-5, False, "infoFlag bit 8 listed"),
        (0.95, 4, 0, 0, 1e-3, 1e-5, True, "infoFlag bit 4 not listed"),
        (0.95, 4 | 8, 0, 0, 1e-3, 1e-5, False, "bit mask: 12 has bit 8 set"),
        (0.95, 2147483648, 0, 0, 1e-3, 1e-5, False, "infoFlag bit 31 listed"),
        (0.95, 64, 0, 0, 1e-3, 1e-5, True, "infoFlag bit 64 not listed"),
        (0.95, 0, 64, 0, 1e-3, 1e-5, False, "infoFlag2 bit 64 listed"),
        (0.95, 0, 128, 0, 1e-3, 1e-5, True, "infoFlag2 bit 128 not listed"),
        (0.95, 0, 0, 16384, 1e-3, 1e-5, False, "infoFlag3 bit 16384 listed"),
        (0.95, 0, 0, 4096, 1e-3, 1e-5, True, "infoFlag3 bit 4096 not listed"),
        (0.95, 0, 0, 0, -1e-3, 1e-5, False, "psfFlux <= 0"),
        (0.95, 0, 0, 0, 1e-3, 0.0, False, "psfFluxErr <= 0"),
        (0.95, 0, 0, 0, 1e-5, 2e-5, False, "flux <= flux_err"),
        (0.50, 8, 64, 16384, -1.0, 1.0, False, "counted once, under psfQfPerfect"),
    ]
    qf, flag, flag2, flag3, flux, err, kept, _ = (np.array(column) for column in zip(*rows))
    m = ps1_to_mag(flux, err, qf, flag, flag2, flag3)
    for row, (expected, got) in enumerate(zip(kept, m.keep)):
        assert got == expected, f"row {row}: {rows[row][-1]}"
    assert m.dropped == {"psfQfPerfect <= 0.9": 2, "infoFlag": 3, "infoFlag2": 1, "infoFlag3": 1,
                         "psfFlux <= 0 or psfFluxErr <= 0": 2, LOW_SNR: 1}
    assert sum(m.dropped.values()) == m.n_dropped
    np.testing.assert_allclose(m.mag, -2.5 * np.log10(1e-3 / 3631.0) * np.ones(int(kept.sum())))


def test_ps1_every_listed_info_flag_bit_rejects():
    n = len(PS1_INFO_FLAG_BITS)
    m = ps1_to_mag(np.ones(n), np.full(n, 0.1), np.ones(n), np.array(PS1_INFO_FLAG_BITS), np.zeros(n), np.zeros(n))
    assert not m.keep.any()
    assert all(bin(bit).count("1") == 1 for bit in PS1_INFO_FLAG_BITS)


def test_gaia_alternating_cadence_on_crafted_sequence():
    bp, rp = 0, 1
    rows = [  # (obj_id, band, t, kept): groups of observations within 15 minutes
        (1, bp, 0.0, True),                 # first group: keep the first observation
        (1, rp, 5 * MINUTE, False),
        (1, bp, 0.1, False),                # last kept band is BP -> keep RP
        (1, rp, 0.1 + 1 * MINUTE, True),
        (1, rp, 0.2, False),                # last kept band is RP -> keep BP, although it comes second
        (1, bp, 0.2 + 2 * MINUTE, True),
        (1, bp, 0.3, True),                 # a one-band group is kept whole
        (1, bp, 0.4, True),                 # 20 minutes apart: two groups, both kept
        (1, rp, 0.4 + 20 * MINUTE, True),
        (2, rp, 0.0, False),                # new object: last band resets; tie in t -> band order, BP first
        (2, bp, 0.0, True),
        (2, bp, 0.5, True),                 # same band twice within 15 min: not a multiband group, both kept
        (2, bp, 0.5 + 3 * MINUTE, True),
    ]
    obj_id, band, t, kept = (np.array(column) for column in zip(*rows))
    shuffle = np.random.default_rng(1).permutation(len(rows))
    keep = alternating_cadence(obj_id[shuffle], band[shuffle], t[shuffle])
    np.testing.assert_array_equal(keep, kept[shuffle].astype(bool))


def test_gaia_snr_cut_runs_before_subsampling():
    # the BP partner fails the S/N cut (err >= 1.0857), so the RP observation survives the pairing
    m = gaia_to_mag(np.array([5, 5, 5]), np.array([0, 1, 1]), np.array([0.0, 1 * MINUTE, 1.0]),
                    np.array([15.0, 15.5, 15.6]), np.array([1.2, 0.01, 0.02]))
    np.testing.assert_array_equal(m.keep, [False, True, True])
    np.testing.assert_array_equal(m.mag, [15.5, 15.6])
    assert m.dropped == {"mag or err not finite": 0, LOW_SNR: 1, ALTERNATING_CADENCE: 0}
    curves = m.to_curves(np.array([5, 5, 5]), np.array([0, 1, 1]), np.array([0.0, 1 * MINUTE, 1.0]), GAIA.bands)
    assert curves.bands == ("BP", "RP") and len(curves) == 2


def test_ztf_fid_mapping():
    np.testing.assert_array_equal(ztf_band_codes(np.array([1, 2, 3, 2])), [0, 1, 2, 1])
    assert [ZTF.bands[code] for code in ztf_band_codes(np.array([3, 1]))] == ["i", "g"]
    with pytest.raises(ValueError, match=r"row 1 \(obj_id 77\): fid must be one of 1 \(g\), 2 \(r\), 3 \(i\), got 4"):
        ztf_band_codes(np.array([1, 4]), obj_id=np.array([77, 77]))


def test_ztf_mag_snr_cut():
    m = ztf_to_mag(np.array([18.0, 19.0, 20.0]), np.array([0.05, 1.0857, 1.09]))
    np.testing.assert_array_equal(m.keep, [True, True, False])


def test_get_survey():
    assert get_survey("PS1").bands == ("g", "r", "i", "z", "y")
    assert get_survey("lsst").bands == ("u", "g", "r", "i", "z", "y")
    with pytest.raises(ValueError, match="unknown survey 'hsc'"):
        get_survey("hsc")


def labelled(counts_per_object: list[tuple[int, int]], labels: list[int]) -> LabelledSet:
    """One object per entry with (n_g, n_r) observations; class names A, B."""
    obj_id, band, t = [], [], []
    for k, (n_g, n_r) in enumerate(counts_per_object):
        for b, n in ((0, n_g), (1, n_r)):
            obj_id += [100 + k] * n
            band += [b] * n
            t += list(np.arange(n) + 0.5 * b)
    n = len(t)
    curves = from_arrays(np.array(obj_id), np.array(band), np.array(t, dtype=float), np.full(n, 18.0),
                         np.full(n, 0.1), ("g", "r"))
    k = len(counts_per_object)
    return LabelledSet(curves, np.array(labels), ("A", "B"), {"redshift": np.arange(k, dtype=float)}, 0)


def test_select_objects_min_obs_per_band():
    data = labelled([(4, 4), (4, 3), (3, 9), (5, 6), (0, 8)], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(observations_per_band(data.curves), [[4, 4], [4, 3], [3, 9], [5, 6], [0, 8]])
    picked = select_objects(data, min_obs_per_band=4)
    np.testing.assert_array_equal(picked.curves.object_ids, [100, 103])
    np.testing.assert_array_equal(picked.labels, [0, 1])
    np.testing.assert_array_equal(picked.targets["redshift"], [0.0, 3.0])
    only_r = select_objects(data, min_obs_per_band=4, required_bands=("r",))
    np.testing.assert_array_equal(only_r.curves.object_ids, [100, 102, 103, 104])
    with pytest.raises(ValueError, match="required_bands"):
        select_objects(data, required_bands=("z",))


def test_select_objects_max_per_class_is_seeded_and_keeps_small_classes():
    data = labelled([(1, 1)] * 7, [0, 0, 0, 0, 0, 1, 1])
    first = select_objects(data, max_per_class=3, seed=4)
    again = select_objects(data, max_per_class=3, seed=4)
    np.testing.assert_array_equal(first.curves.object_ids, again.curves.object_ids)
    assert first.class_counts() == {"A": 3, "B": 2}
    assert np.all(np.diff(first.curves.object_ids) > 0)  # original order kept
    seen = {tuple(select_objects(data, max_per_class=3, seed=seed).curves.object_ids) for seed in range(20)}
    assert len(seen) > 1


def test_band_map_reads_each_surveys_codes_and_labels_into_the_models_bands():
    lsst_bands = ("u", "g", "r", "i", "z", "y")
    ztf = band_map(("g", "r"), "ztf", "ztf")  # a g/r ZTF model
    assert ztf.integers == {1: 0, 2: 1}
    assert [ztf.labels[label] for label in ("g", "zg", "ztfg", "ztf_g", "ZTF_g", "r", "zr", "ztfr", "1", "2")] == \
        [0, 0, 0, 0, 0, 1, 1, 1, 0, 1]
    assert {3, "i", "zi"} <= ztf.absent  # ZTF's i: rows rejected as "band not in the model"
    plasticc = band_map(lsst_bands, "plasticc", "plasticc")
    assert plasticc.integers == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5}
    assert plasticc.labels["lsstz"] == 4
    rubin = band_map(lsst_bands, "lsst", "plasticc")  # PLAsTiCC simulates LSST: one band system
    assert rubin.integers == {} and [rubin.labels[b] for b in "ugrizy"] == [0, 1, 2, 3, 4, 5]
    assert band_map(("g", "r", "i", "z", "y"), "ps1", "ps1").integers == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
    assert band_map(("BP", "RP"), "gaia", "gaia").labels["rp"] == 1
    # a model trained on several surveys names its bands <survey>_<band>
    yse = band_map(("ps1_g", "ps1_r", "ps1_i", "ps1_z", "ztf_g", "ztf_r"), "ztf", "yse")
    assert yse.integers == {1: 4, 2: 5} and yse.labels["zg"] == 4
    # no survey: labels only (with the model's own survey's aliases); integers never taken as indices
    plain = band_map(lsst_bands, None, "plasticc")
    assert plain.integers == {} and plain.labels["lsstg"] == 1
    with pytest.raises(ValueError, match=r"the model has none of ztf's bands \(g r i\); its bands are plasticc: "
                                         r"u g r i z y"):
        band_map(lsst_bands, "ztf", "plasticc")  # ZTF g is not LSST g


def test_ztf_fid_codes_are_one_table():
    from mbfast.alerts.ztf import FID_BANDS  # the alert reader's fid map is read from the same table

    assert {code: band for code, band in ZTF.codes.items() if isinstance(code, int)} == FID_BANDS == \
        {1: "g", 2: "r", 3: "i"}
    assert ZTF.label_of(2) == "r" and ZTF.label_of("ztfi") == "i" and ZTF.label_of(4) is None
