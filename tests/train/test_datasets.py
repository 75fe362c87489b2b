"""Data set loaders: the shipped PLAsTiCC sample, YSE DR1 SNANA parsing (values checked by hand against the file
text, on two files in tests/data/yse), and clear errors when the full data sets are missing. The two tests that
need a full data set take it from tests/support/shared_data.shared_data."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mbfast.lightcurves.sample import PLASTICC_CLASS_ORDER, load_sample
from mbfast.lightcurves.snana import read_snana
from mbfast.train.datasets import YSE_CLASS_ORDER, load_plasticc, load_yse, shared_data_dir, yse_obj_id
from mbfast.lightcurves.photometry import SNANA_ZERO_POINT
from mbfast.lightcurves.surveys import YSE
from tests.support.shared_data import shared_data

YSE_DIR = Path(__file__).parents[1] / "data" / "yse"
GALACTIC = {"M-dwarf", "EB", "RRL", "Mira", "uLens-Single"}


def test_sample_has_22_objects_per_class():
    sample = load_sample()
    assert sample.curves.bands == ("u", "g", "r", "i", "z", "y")
    assert sample.class_names == PLASTICC_CLASS_ORDER
    assert sample.class_counts() == {name: 22 for name in PLASTICC_CLASS_ORDER}
    assert sample.curves.n_objects == 308 and len(sample.curves) == 17408
    assert len(np.unique(sample.curves.object_ids)) == 308
    galactic = np.isin(np.array(PLASTICC_CLASS_ORDER)[sample.labels], sorted(GALACTIC))
    redshift = sample.targets["redshift"]
    assert np.isnan(redshift[galactic]).all() and (redshift[~galactic] > 0).all()
    assert (sample.curves.err > 0).all() and np.isfinite(sample.curves.mag).all()


def test_sample_file_is_small():
    folder = Path(__import__("mbfast").__file__).parent / "data"
    assert (folder / "plasticc_sample.parquet").stat().st_size < 1_000_000
    assert (folder / "PROVENANCE.md").is_file()


def test_sample_matches_the_full_plasticc_conversion():
    shared_data("plasticc_train_simulated/plasticc_train_lightcurves.parquet")
    shared_data("plasticc_train_simulated/plasticc_train_metadata.csv")
    sample = load_sample()
    full = load_plasticc()
    index = {int(obj_id): k for k, obj_id in enumerate(full.curves.object_ids)}
    for k in (0, 150, 307):
        obj_id = int(sample.curves.object_ids[k])
        ours, theirs = sample.curves.object(k), full.curves.object(index[obj_id])
        np.testing.assert_array_equal(ours.t, theirs.t)
        np.testing.assert_array_equal(ours.mag, theirs.mag)
        np.testing.assert_array_equal(ours.err, theirs.err)
        assert sample.labels[k] == full.labels[index[obj_id]]


def test_yse_file_parsed_as_written(tmp_path: Path):
    # 2019lbi.snana.dat: SPEC_CLASS_BROAD "SN II", REDSHIFT_FINAL "0.0130 +- 0.005 (SPEC-Z, HELIO)", 93 OBS rows:
    # X 14, Y 34, g 10, r 18, i 9, z 8; first "OBS: 58676.172 X 474 15240.973 258.852 17.042 0.018 0x00",
    # last "OBS: 59048.280 r NULL 497.846 59.789 20.757 0.130 0x00"
    shutil.copy(YSE_DIR / "2019lbi.snana.dat", tmp_path)
    snana = read_snana(tmp_path / "2019lbi.snana.dat")
    assert snana.header["SNID"] == "2019lbi" and snana.header["SPEC_CLASS"] == "SN II"
    assert snana.header["FILTERS"] == "zXiYrg" and snana.header["PARSNIP_PRED"] == "SN Ia"
    assert snana.columns["FLUXCAL"][0] == "15240.973" and len(snana.columns["MJD"]) == 93

    data = load_yse(tmp_path)
    curves = data.curves
    assert data.names == ("2019lbi",) and curves.n_objects == 1 and len(curves) == 93
    assert YSE_CLASS_ORDER[data.labels[0]] == "II"
    assert data.targets["redshift"][0] == pytest.approx(0.013)
    counts = {band: int((curves.band == k).sum()) for k, band in enumerate(YSE.bands)}
    assert counts == {"ps1_g": 10, "ps1_r": 18, "ps1_i": 9, "ps1_z": 8, "ztf_g": 14, "ztf_r": 34}
    assert curves.t[0] == 58676.172 and YSE.bands[curves.band[0]] == "ztf_g"
    # FLUXCAL with zero point 27.5 reproduces the file's MAG and MAGERR columns to their 3 decimals
    assert curves.mag[0] == pytest.approx(17.042, abs=5e-4)
    assert curves.mag[0] == pytest.approx(SNANA_ZERO_POINT - 2.5 * np.log10(15240.973), abs=1e-5)
    assert curves.err[0] == pytest.approx(0.018, abs=5e-4)
    assert curves.t[-1] == 59048.280 and YSE.bands[curves.band[-1]] == "ps1_r"
    assert curves.mag[-1] == pytest.approx(20.757, abs=5e-4) and curves.err[-1] == pytest.approx(0.130, abs=5e-4)


def test_yse_unlabelled_objects_only_on_request(tmp_path: Path):
    # 2019ucc: SPEC_CLASS_BROAD NA, REDSHIFT_FINAL is a PHOTO-Z (so no redshift target), 28 OBS rows
    for name in ("2019lbi", "2019ucc"):
        shutil.copy(YSE_DIR / f"{name}.snana.dat", tmp_path)
    assert load_yse(tmp_path).names == ("2019lbi",)
    (tmp_path / "2019lbi.snana.dat").rename(tmp_path / "moved.txt")
    with pytest.raises(ValueError, match="no object with a spectroscopic class.*include_unlabelled=True"):
        load_yse(tmp_path)
    (tmp_path / "moved.txt").rename(tmp_path / "2019lbi.snana.dat")
    both = load_yse(tmp_path, include_unlabelled=True)
    assert both.names == ("2019lbi", "2019ucc")
    np.testing.assert_array_equal(both.labels, [YSE_CLASS_ORDER.index("II"), -1])
    assert np.isnan(both.targets["redshift"][1])
    assert int(np.diff(both.curves.offsets)[1]) == 28
    np.testing.assert_array_equal(both.curves.object_ids, [yse_obj_id("2019lbi"), yse_obj_id("2019ucc")])


def test_yse_full_release_class_counts():
    shared_data("yse_dr1_transients/yse_dr1_zenodo_snr_geq_4")
    data = load_yse()
    assert data.class_counts() == {"Ia": 314, "II": 120, "Ibc": 38, "other": 20}
    everything = load_yse(include_unlabelled=True)
    assert everything.curves.n_objects == 1975 and len(everything.curves) == 68693
    assert len(set(everything.names)) == 1975


def test_yse_obj_id():
    assert yse_obj_id("2019lbi") == 2019 * 10**7 + (12 * 53 + 2) * 53 + 9
    assert yse_obj_id("2021J") == 2021 * 10**7 + 36
    assert yse_obj_id("2020aaaq") != yse_obj_id("2020aaq")
    with pytest.raises(ValueError, match="not an IAU transient name"):
        yse_obj_id("ZTF19abc")


def test_snana_row_with_wrong_number_of_values(tmp_path: Path):
    path = tmp_path / "bad.snana.dat"
    path.write_text("SNID: 2020abc\nVARLIST: MJD FLT FLUXCAL FLUXCALERR\n"
                    "OBS: 59000.0 g 100.0 5.0\nOBS: 59001.0 g 100.0\n")
    with pytest.raises(ValueError, match=r"bad.snana.dat:4: OBS row has 3 values, VARLIST has 4"):
        read_snana(path)


def test_missing_shared_data_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MBFAST_SHARED_DATA", str(tmp_path / "nowhere"))
    assert shared_data_dir() == tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="PLAsTiCC light curves not found at .*nowhere.*MBFAST_SHARED_DATA"):
        load_plasticc()
    with pytest.raises(FileNotFoundError, match="YSE DR1 folder not found at .*load_sample"):
        load_yse()


def test_preprocessed_cache_follows_the_curves_not_the_name(tmp_path, monkeypatch) -> None:
    from dataclasses import replace

    from mbfast.train import datasets
    from mbfast.train.training_set import load_training_set

    sample = load_sample()
    changed = replace(sample, curves=replace(sample.curves, mag=sample.curves.mag * np.float32(1.01)))
    assert changed.curves.fingerprint() != sample.curves.fingerprint()
    assert replace(sample.curves, bands=("u", "g", "r", "i", "z", "Y")).fingerprint() != sample.curves.fingerprint()
    served = {"plasticc": sample}
    monkeypatch.setattr(datasets, "dataset_loaders", lambda: {"plasticc": lambda: served["plasticc"]})
    calls = []

    def counting_preprocess(curves, n_skip):
        calls.append(curves.fingerprint())
        from mbfast.train.preprocess import preprocess
        return preprocess(curves, n_skip)

    first = load_training_set("plasticc", 2, cache_dir=tmp_path, preprocess=counting_preprocess)
    again = load_training_set("plasticc", 2, cache_dir=tmp_path, preprocess=counting_preprocess)
    assert len(calls) == 1                                              # same curves: read from the cache
    np.testing.assert_array_equal(again.inputs.rows, first.inputs.rows)
    served["plasticc"] = changed                                        # same name, other curves (a new reader)
    fresh = load_training_set("plasticc", 2, cache_dir=tmp_path, preprocess=counting_preprocess)
    assert calls == [sample.curves.fingerprint(), changed.curves.fingerprint()]
    assert not np.array_equal(fresh.inputs.rows, first.inputs.rows)
