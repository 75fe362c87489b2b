"""LightCurves and from_arrays: sorting, offsets, validation errors naming row/obj_id/field, object/select."""
from __future__ import annotations

import numpy as np
import pytest

from mbfast.lightcurves.table import from_arrays

BANDS = ("g", "r", "i")


def small_table():
    # rows given out of order on purpose: obj 7 before obj 3, times shuffled
    obj_id = np.array([7, 3, 7, 3, 3, 7])
    band = np.array(["r", "g", "g", "i", "g", "g"])
    t = np.array([2.0, 5.0, 1.0, 4.0, 4.0, 2.0])
    mag = np.array([17.0, 18.0, 16.0, 19.0, 20.0, 15.0])
    err = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    return from_arrays(obj_id, band, t, mag, err, BANDS)


def test_sorted_by_obj_id_t_band_with_offsets():
    curves = small_table()
    np.testing.assert_array_equal(curves.obj_id, [3, 3, 3, 7, 7, 7])
    np.testing.assert_array_equal(curves.t, [4.0, 4.0, 5.0, 1.0, 2.0, 2.0])
    # at equal t the band order decides: g (0) before i (2), g before r (1)
    np.testing.assert_array_equal(curves.band, [0, 2, 0, 0, 0, 1])
    np.testing.assert_array_equal(curves.mag, np.float32([20.0, 19.0, 18.0, 16.0, 15.0, 17.0]))
    np.testing.assert_array_equal(curves.offsets, [0, 3, 6])
    np.testing.assert_array_equal(curves.object_ids, [3, 7])
    assert curves.n_objects == 2 and len(curves) == 6
    assert curves.t.dtype == np.float64 and curves.mag.dtype == np.float32 and curves.band.dtype == np.int8


def test_sorted_input_skips_the_sort_and_gives_the_same_table_without_sharing_memory():
    sorted_once = small_table()
    columns = (sorted_once.obj_id, sorted_once.band, sorted_once.t, sorted_once.mag, sorted_once.err)
    again = from_arrays(*columns, BANDS)
    for name in ("obj_id", "band", "t", "mag", "err", "offsets"):
        np.testing.assert_array_equal(getattr(again, name), getattr(sorted_once, name), err_msg=name)
        assert not np.shares_memory(getattr(again, name), getattr(sorted_once, name)), name
    # one row out of place (equal obj_id and t, band order broken) must still be sorted
    swapped = [np.array(column)[[0, 2, 1, 3, 4, 5]] for column in columns]  # rows 1, 2: t 4.0 then 5.0 -> 5.0, 4.0
    np.testing.assert_array_equal(from_arrays(*swapped, BANDS).t, sorted_once.t)
    tie = [np.array(column)[[1, 0, 2, 3, 4, 5]] for column in columns]  # same obj and t, band i before g
    np.testing.assert_array_equal(from_arrays(*tie, BANDS).band, sorted_once.band)


def test_band_codes_equal_band_labels():
    by_label = small_table()
    codes = np.array([1, 0, 0, 2, 0, 0])
    by_code = from_arrays(np.array([7, 3, 7, 3, 3, 7]), codes, np.array([2.0, 5.0, 1.0, 4.0, 4.0, 2.0]),
                          np.array([17.0, 18.0, 16.0, 19.0, 20.0, 15.0]), np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
                          BANDS)
    np.testing.assert_array_equal(by_code.band, by_label.band)
    np.testing.assert_array_equal(by_code.mag, by_label.mag)


def test_object_and_select():
    curves = small_table()
    second = curves.object(1)
    np.testing.assert_array_equal(second.obj_id, [7, 7, 7])
    np.testing.assert_array_equal(second.offsets, [0, 3])
    np.testing.assert_array_equal(second.mag, np.float32([16.0, 15.0, 17.0]))
    swapped = curves.select(np.array([1, 0]))
    np.testing.assert_array_equal(swapped.obj_id, [7, 7, 7, 3, 3, 3])
    np.testing.assert_array_equal(swapped.offsets, [0, 3, 6])
    np.testing.assert_array_equal(swapped.t, [1.0, 2.0, 2.0, 4.0, 4.0, 5.0])
    assert swapped.bands == BANDS
    empty = curves.select(np.array([], dtype=np.int64))
    assert empty.n_objects == 0 and len(empty) == 0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("err", -0.02, r"row 2 \(obj_id 11\): err must be > 0, got -0.02"),
    ("err", 0.0, r"row 2 \(obj_id 11\): err must be > 0"),
    ("mag", np.nan, r"row 2 \(obj_id 11\): mag must be finite, got nan"),
    ("t", np.inf, r"row 2 \(obj_id 11\): t must be finite, got inf"),
    ("band", "Y", r"row 2 \(obj_id 11\): unknown band .*'Y'.* \(expected one of g, r, i\)"),
])
def test_bad_row_names_row_obj_id_and_field(field, value, message):
    columns = {"obj_id": np.array([10, 10, 11]), "band": np.array(["g", "r", "g"], dtype=object),
               "t": np.array([1.0, 2.0, 3.0]), "mag": np.array([18.0, 18.5, 19.0]), "err": np.array([0.1, 0.1, 0.1])}
    columns[field][2] = value
    with pytest.raises(ValueError, match=message):
        from_arrays(columns["obj_id"], columns["band"], columns["t"], columns["mag"], columns["err"], BANDS)


def test_band_code_out_of_range_and_length_mismatch():
    with pytest.raises(ValueError, match=r"row 1 \(obj_id 5\): band must be in 0..2"):
        from_arrays(np.array([5, 5]), np.array([0, 3]), np.zeros(2), np.zeros(2), np.ones(2), BANDS)
    with pytest.raises(ValueError, match="mismatched lengths"):
        from_arrays(np.array([5, 5]), np.array([0]), np.zeros(2), np.zeros(2), np.ones(2), BANDS)
    with pytest.raises(ValueError, match=r"row 0: obj_id must be an exact integer, got 5.5"):
        from_arrays(np.array([5.5]), np.array([0]), np.zeros(1), np.zeros(1), np.ones(1), BANDS)
    with pytest.raises(ValueError, match="obj_id must be integers or text ids, got dtype bool"):
        from_arrays(np.array([True]), np.array([0]), np.zeros(1), np.zeros(1), np.ones(1), BANDS)
