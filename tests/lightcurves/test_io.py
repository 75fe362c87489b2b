"""Flat-row Parquet/CSV reading and writing: round trip, column mapping, band labels or codes, row-naming errors; and
observation rows (DataFrame, Arrow, dict) into LightCurves and Engine.classify (lightcurves.io.curves_from_arrow)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from mbfast.engine import Engine
from mbfast.lightcurves.io import read_csv, read_parquet, write_parquet
from mbfast.lightcurves.surveys import LSST, ZTF
from mbfast.lightcurves.table import LightCurves, from_arrays


def random_curves(seed: int = 0, n: int = 200):
    rng = np.random.default_rng(seed)
    return from_arrays(rng.integers(0, 20, n), rng.integers(0, 6, n), 60000.0 + rng.uniform(0, 1000, n),
                       rng.uniform(15, 25, n), rng.uniform(0.01, 0.5, n), LSST.bands)


def assert_same(a, b):
    for field in ("obj_id", "band", "t", "mag", "err", "offsets"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
        assert getattr(a, field).dtype == getattr(b, field).dtype, field
    assert a.bands == b.bands


def test_parquet_round_trip_is_exact(tmp_path: Path):
    curves = random_curves()
    write_parquet(curves, tmp_path / "curves.parquet")
    back = read_parquet(tmp_path / "curves.parquet")  # band order comes from the file's metadata
    assert_same(curves, back)
    table = pq.read_table(tmp_path / "curves.parquet")
    assert table.column_names == ["obj_id", "band", "t", "mag", "err"]
    assert set(table.column("band").to_pylist()) <= set(LSST.bands)


def test_parquet_with_other_column_names_and_band_codes(tmp_path: Path):
    # ZTF fid 3, 1, 2 = i, g, r: survey codes, not indices into (g, r, i)
    table = pa.table({"object_id": [3, 3, 1], "passband": pa.array([3, 1, 2], pa.int8()), "mjd": [2.0, 1.0, 5.0],
                      "m": [18.0, 19.0, 20.0], "sigma": [0.1, 0.2, 0.3], "extra": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "other.parquet")
    curves = read_parquet(tmp_path / "other.parquet", survey="ztf",
                          columns={"obj_id": "object_id", "band": "passband", "t": "mjd", "mag": "m", "err": "sigma"})
    np.testing.assert_array_equal(curves.obj_id, [1, 3, 3])
    np.testing.assert_array_equal(curves.t, [5.0, 1.0, 2.0])
    assert [ZTF.bands[b] for b in curves.band] == ["r", "g", "i"]
    np.testing.assert_array_equal(curves.err, np.float32([0.3, 0.2, 0.1]))
    pq.write_table(table.set_column(1, "passband", pa.array([3, 0, 2], pa.int8())), tmp_path / "fid0.parquet")
    with pytest.raises(ValueError, match=r"fid0.parquet: row 1 \(obj_id 3\): unknown band '0'"):
        read_parquet(tmp_path / "fid0.parquet", survey="ztf", columns={"obj_id": "object_id", "band": "passband",
                                                                       "t": "mjd", "mag": "m", "err": "sigma"})


def test_parquet_without_band_order_needs_survey(tmp_path: Path):
    pq.write_table(pa.table({"obj_id": [1], "band": ["g"], "t": [1.0], "mag": [18.0], "err": [0.1]}),
                   tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="pass survey="):
        read_parquet(tmp_path / "plain.parquet")
    assert read_parquet(tmp_path / "plain.parquet", survey=("g", "r")).bands == ("g", "r")


def test_missing_column_is_named(tmp_path: Path):
    pq.write_table(pa.table({"obj_id": [1], "band": ["g"], "t": [1.0], "mag": [18.0]}), tmp_path / "no_err.parquet")
    with pytest.raises(ValueError, match=r"no_err.parquet: no column for err \(tried \('err', 'mag_err', 'magerr', "
                                         r"'sigmapsf', 'err_mag'\)\); columns are \['obj_id', 'band', 't', 'mag'\]"):
        read_parquet(tmp_path / "no_err.parquet", survey="lsst")
    with pytest.raises(ValueError, match=r"column 'sigma' \(given for err\) not found"):
        read_parquet(tmp_path / "no_err.parquet", survey="lsst", columns={"err": "sigma"})
    with pytest.raises(ValueError, match="columns keys must be among"):
        read_parquet(tmp_path / "no_err.parquet", survey="lsst", columns={"flux": "f"})


def test_file_readers_know_the_aliases_of_the_batch_reader(tmp_path: Path):
    # ZTF names (objectId, fid, mjd, magpsf, sigmapsf), as mbfast classify reads them: no columns= needed
    table = pa.table({"objectId": [5, 5], "fid": pa.array([2, 1], pa.int8()), "mjd": [2.0, 1.0],
                      "magpsf": [18.0, 19.0], "sigmapsf": [0.1, 0.2]})
    pq.write_table(table, tmp_path / "ztf.parquet")
    curves = read_parquet(tmp_path / "ztf.parquet", survey="ztf")
    np.testing.assert_array_equal(curves.t, [1.0, 2.0])
    assert [ZTF.bands[b] for b in curves.band] == ["g", "r"]
    pa_csv.write_csv(table, tmp_path / "ztf.csv")
    assert_same(read_csv(tmp_path / "ztf.csv", survey="ztf"), curves)


def test_csv_labels_and_bad_rows(tmp_path: Path):
    path = tmp_path / "curves.csv"
    path.write_text("id,filter,mjd,mag,magerr\n"
                    "8,g,59000.5,18.1,0.05\n"
                    "8,r,59000.4,18.3,0.06\n"
                    "9,i,59001.0,19.0,0.10\n")
    names = {"obj_id": "id", "band": "filter", "t": "mjd", "err": "magerr"}
    curves = read_csv(path, survey="ztf", columns=names)
    np.testing.assert_array_equal(curves.obj_id, [8, 8, 9])
    np.testing.assert_array_equal(curves.t, [59000.4, 59000.5, 59001.0])
    np.testing.assert_array_equal(curves.band, [1, 0, 2])
    assert curves.t.dtype == np.float64

    path.write_text("id,filter,mjd,mag,magerr\n8,g,59000.5,18.1,0.05\n9,g,59000.6,18.2,-0.02\n")
    with pytest.raises(ValueError, match=r"curves.csv: row 1 \(obj_id 9\): err must be > 0, got -0.02"):
        read_csv(path, survey="ztf", columns=names)
    path.write_text("id,filter,mjd,mag,magerr\n8,g,59000.5,18.1,0.05\n9,g,59000.6,,0.1\n")
    with pytest.raises(ValueError, match=r"row 1 \(obj_id 9\): mag is missing"):
        read_csv(path, survey="ztf", columns=names)
    path.write_text("id,filter,mjd,mag,magerr\n8,u,59000.5,18.1,0.05\n")
    with pytest.raises(ValueError, match=r"row 0 \(obj_id 8\): unknown band .*'u'"):
        read_csv(path, survey="ztf", columns=names)


def test_write_then_read_csv_agree_with_parquet(tmp_path: Path):
    curves = random_curves(seed=3, n=50)
    write_parquet(curves, tmp_path / "c.parquet")
    table = pq.read_table(tmp_path / "c.parquet")
    table.to_pandas().to_csv(tmp_path / "c.csv", index=False, float_format="%.17g")
    assert_same(read_csv(tmp_path / "c.csv", survey="lsst"), curves)


def test_engine_classify_takes_dataframes_arrow_tables_and_dicts(small_model_path: Path) -> None:
    engine = Engine.load(small_model_path, num_threads=1)
    columns = {"obj_id": [7, 7, 7, 7, 3, 3, 3], "band": ["g", "r", "g", "g", "i", "i", "i"],
               "t": [1.0, 1.5, 2.0, 3.0, 0.5, 1.0, 2.5], "mag": [20.0, 20.5, 19.8, 19.9, 18.0, 18.1, 18.3],
               "err": [0.1, 0.1, 0.05, 0.1, 0.02, 0.02, 0.03]}
    expected = engine.classify(from_arrays(*(np.array(columns[name]) for name in columns), engine.bands))
    frame = pd.DataFrame(columns)
    for rows in (frame, pa.Table.from_pandas(frame), columns, {name: np.array(v) for name, v in columns.items()}):
        got = engine.classify(rows)
        np.testing.assert_array_equal(got.obj_id, [3, 7])
        np.testing.assert_array_equal(got.probs, expected.probs)
    table = engine.classify(frame).to_pandas()
    assert table.index.name == "obj_id" and table.index.tolist() == [3, 7]
    assert table.columns.tolist() == ["SNIa", "SNII", "AGN", "EB", "class", *(f"n_obs_{b}" for b in engine.bands)]
    assert table["n_obs_g"].tolist() == [0, 3] and table["n_obs_i"].tolist() == [3, 0]
    np.testing.assert_array_equal(table[["SNIa", "SNII", "AGN", "EB"]].to_numpy(), expected.probs)
    assert table["class"].tolist() == [engine.class_names[i] for i in expected.class_index]
    with pytest.raises(ValueError, match="classify takes a LightCurves table, a pandas DataFrame, a pyarrow Table"):
        engine.classify([1, 2, 3])  # type: ignore[arg-type]


def test_text_ids_and_survey_codes_in_python(small_model_path: Path) -> None:
    frame = pd.DataFrame({"objectId": ["ZTF21aaxtctv"] * 3 + ["SN 2023ixf"] * 3, "passband": [1, 1, 1, 2, 2, 2],
                          "mjd": [1.0, 2.0, 3.0] * 2, "magpsf": [19.0] * 6, "sigmapsf": [0.1] * 6})
    curves = LightCurves.from_pandas(frame, survey="plasticc")  # PLAsTiCC passband 1 = g, 2 = r
    assert curves.bands == ("u", "g", "r", "i", "z", "y")
    assert sorted(curves.names.tolist()) == ["SN 2023ixf", "ZTF21aaxtctv"]
    assert {name: curves.bands[curves.band[curves.offsets[k]]] for k, name in enumerate(curves.names)} == {
        "ZTF21aaxtctv": "g", "SN 2023ixf": "r"}
    assert LightCurves.from_arrow(pa.Table.from_pandas(frame), survey="plasticc").names.tolist() == \
        curves.names.tolist()
    engine = Engine.load(small_model_path, num_threads=1)
    scores = engine.classify(frame, survey="plasticc").to_pandas()
    assert sorted(scores.index) == ["SN 2023ixf", "ZTF21aaxtctv"]
    with pytest.raises(ValueError, match=r"the band column holds integer codes \(1, ...\).*--survey"):
        engine.classify(frame)
    with pytest.raises(ValueError, match=r"row 4 \(obj_id SN 2023ixf\): err must be > 0 \(1 of 6 rows refused\)"):
        engine.classify(frame.assign(sigmapsf=[0.1] * 4 + [-0.1, 0.1]), survey="plasticc")


@pytest.mark.parametrize("shape", [(), (2, 3)])
def test_from_arrays_refuses_0d_and_2d_input_in_one_line(shape: tuple[int, ...]) -> None:
    obj_id = np.ones(shape, dtype=np.int64)
    with pytest.raises(ValueError, match=re.escape(f"obj_id must be a 1-d array, got {len(shape)}-d (shape {shape})")):
        from_arrays(obj_id, np.full(shape, "g"), np.ones(shape), np.ones(shape), np.ones(shape), ("g",))
