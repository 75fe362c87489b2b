"""mbfast.train.preprocess (Numba) against mbfast.model.reference, real PLAsTiCC curves, random curves and hand-computed cases.

Tolerances: every array exactly equal to the reference except the eq. 4 loss weights (rtol 1e-6: a float
summation order may differ). Hand-computed literals are compared with rtol 1e-6.
"""
from __future__ import annotations

from dataclasses import fields, replace

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbfast.lightcurves.sample import load_sample
from mbfast.model.preprocessed import ModelInputs
from mbfast.train.preprocess import check_sorted, preprocess
from mbfast.model.reference import preprocess_reference
from mbfast.lightcurves.table import LightCurves, from_arrays

WEIGHT_FIELDS = ("weight_band", "weight_central")


def assert_matches_reference(fast: ModelInputs, reference: ModelInputs) -> None:
    for item in fields(ModelInputs):
        mine, theirs = getattr(fast, item.name), getattr(reference, item.name)
        if item.name in WEIGHT_FIELDS:
            diff = float(np.max(np.abs(mine - theirs), initial=0.0))
            np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=0,
                                       err_msg=f"field {item.name}, max diff {diff:.3g}")
        else:
            np.testing.assert_array_equal(mine, theirs, err_msg=f"field {item.name}")
            assert np.asarray(mine).dtype == np.asarray(theirs).dtype, item.name


# ----------------------------------------------------------------------------------------------------------------
# Real light curves
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plasticc_sample() -> LightCurves:
    """The shipped PLAsTiCC sample: 308 objects, 22 per class, 6 bands."""
    return load_sample().curves


@pytest.mark.parametrize("n_skip", [0, 3])
def test_plasticc_matches_reference(plasticc_sample: LightCurves, n_skip: int) -> None:
    fast = preprocess(plasticc_sample, n_skip)
    assert fast.n_objects >= 300
    assert len(fast.band) > 10_000
    assert_matches_reference(fast, preprocess_reference(plasticc_sample, n_skip))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba has a single thread here")
def test_threads_give_identical_results(plasticc_sample: LightCurves) -> None:
    preprocess(plasticc_sample, 2, num_threads=1).assert_equal(preprocess(plasticc_sample, 2, num_threads=2))


# ----------------------------------------------------------------------------------------------------------------
# Random small light curves: ties, duplicates, missing bands, short objects
# ----------------------------------------------------------------------------------------------------------------

@st.composite
def light_curves(draw: st.DrawFn) -> LightCurves:
    n_bands = draw(st.integers(2, 6))
    step = draw(st.sampled_from([0.5, 0.013, 1.0 / 3.0, 7.25]))  # float64 grids: exact and inexact steps
    obj_id, band, t, mag, err = [], [], [], [], []
    for object_id in draw(st.lists(st.integers(-50, 50), min_size=1, max_size=5, unique=True)):
        n_obs = draw(st.integers(1, 40))
        slots = draw(st.lists(st.integers(0, 30), min_size=n_obs, max_size=n_obs))  # few slots: ties, repeats
        for slot in slots:
            obj_id.append(object_id)
            band.append(draw(st.integers(0, n_bands - 1)))
            t.append(59_000.0 + slot * step)
            mag.append(draw(st.floats(14.0, 26.0, width=32)))
            err.append(draw(st.floats(0.0078125, 1.0, width=32)))
    return from_arrays(np.array(obj_id), np.array(band), np.array(t), np.array(mag), np.array(err),
                       tuple("ugrizy"[:n_bands]))


@settings(max_examples=100, deadline=None)
@given(curves=light_curves(), n_skip=st.integers(0, 5))
def test_random_curves_match_reference(curves: LightCurves, n_skip: int) -> None:
    assert_matches_reference(preprocess(curves, n_skip), preprocess_reference(curves, n_skip))


def test_empty_table_matches_reference() -> None:
    curves = LightCurves(np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0), np.zeros(0, np.float32),
                         np.zeros(0, np.float32), np.zeros(1, np.int64), ("g", "r"))
    fast = preprocess(curves, 2)
    assert fast.n_objects == 0 and fast.rows.shape == (0, 4) and fast.colours.shape == (0, 1)
    assert_matches_reference(fast, preprocess_reference(curves, 2))


# ----------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# ----------------------------------------------------------------------------------------------------------------

def test_one_band_four_observations_by_hand() -> None:
    # g only (r never observed); dt = 1, 10, 100 days; dmag = +0.5, -0.25, +0.75; err 0.1 then 0.2 on the rows
    curves = from_arrays([7, 7, 7, 7], ["g"] * 4, [0.0, 1.0, 11.0, 111.0], [20.0, 20.5, 20.25, 21.0],
                         [0.3, 0.3, 0.1, 0.2], ("g", "r"))
    inputs = preprocess(curves, n_skip=0)
    np.testing.assert_array_equal(inputs.offsets, [0, 2])
    np.testing.assert_array_equal(inputs.object_ids, [7])
    np.testing.assert_array_equal(inputs.rows, np.array([[0.0, 1.0, 0.5, -0.25],
                                                         [1.0, 2.0, -0.25, 0.75]], dtype=np.float32))
    np.testing.assert_array_equal(inputs.band, [0, 0])
    np.testing.assert_array_equal(inputs.band_step, [0, 1])
    np.testing.assert_array_equal(inputs.t, [11.0, 111.0])
    np.testing.assert_array_equal(inputs.err, np.array([0.1, 0.2], dtype=np.float32))
    np.testing.assert_array_equal(inputs.colours, [[0.0], [0.0]])  # g - r with r unobserved
    # first row: 11 days after the object's first observation; second: 100 days after the first row
    np.testing.assert_allclose(inputs.dt_central, [np.log10(12.0), np.log10(101.0)], rtol=1e-6)
    # eq. 4: (1/0.1, 1/0.2) / 15 = (2/3, 1/3); central: band sum 0.3 / u = (3, 1.5), over 4.5 = (2/3, 1/3)
    np.testing.assert_allclose(inputs.weight_band, [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(inputs.weight_central, [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_array_equal(inputs.n_obs, [[4, 0]])
    np.testing.assert_array_equal(inputs.t0, [[0.0, 0.0]])
    np.testing.assert_array_equal(inputs.m0, [[20.0, 0.0]])
    assert inputs.n_duplicates == 0


def test_two_bands_colours_and_dt_by_hand() -> None:
    # (t, band, mag): g 20 21 22 23 at t 0 1 3 10; r 19 19.5 20.5 at t 0 2 4, plus a repeat of (r, 4)
    curves = from_arrays([3] * 8, ["g", "r", "g", "r", "g", "r", "r", "g"],
                         [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 10.0],
                         [20.0, 19.0, 21.0, 19.5, 22.0, 20.5, 30.0, 23.0], [0.1] * 8, ("g", "r"))
    inputs = preprocess(curves, n_skip=1)
    log2, log7 = np.log10(2.0), np.log10(7.0)
    # rows: g at t=3 (g obs 3), r at t=4 (r obs 3; the repeat with mag 30 is dropped), g at t=10 (g obs 4)
    np.testing.assert_allclose(inputs.rows, [[0.0, log2, 1.0, 1.0],
                                             [log2, log2, 0.5, 1.0],
                                             [log2, log7, 1.0, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(inputs.band, [0, 1, 0])
    np.testing.assert_array_equal(inputs.band_step, [0, 0, 1])
    np.testing.assert_array_equal(inputs.t, [3.0, 4.0, 10.0])
    # g - r of cumulative means: 21 - 19.25, 21 - 59/3, 21.5 - 59/3
    np.testing.assert_allclose(inputs.colours, [[1.75], [4 / 3], [11 / 6]], rtol=1e-6)
    # days since the previous row (the first row counts from the first observation at t=0): 3, 1, 6
    np.testing.assert_allclose(inputs.dt_central, [np.log10(4.0), log2, log7], rtol=1e-6)
    # n_skip = 1: band g keeps its step 1 only, band r has nothing left; central keeps rows 1 and 2, and
    # each is alone in its band, so u~ = 1 for both
    np.testing.assert_allclose(inputs.weight_band, [0.0, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(inputs.weight_central, [0.0, 0.5, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(inputs.n_obs, [[4, 3]])
    np.testing.assert_array_equal(inputs.t0, [[0.0, 0.0]])
    np.testing.assert_array_equal(inputs.m0, [[20.0, 19.0]])
    assert inputs.n_duplicates == 1


def test_one_band_survey_has_no_colours() -> None:
    curves = from_arrays([1] * 3, ["G"] * 3, [0.0, 1.0, 11.0], [15.0, 15.5, 15.25], [0.01] * 3, ("G",))
    inputs = preprocess(curves, n_skip=0)
    assert inputs.colours.shape == (1, 0)
    np.testing.assert_array_equal(inputs.rows, np.array([[0.0, 1.0, 0.5, -0.25]], dtype=np.float32))


def test_duplicates_dropped_keeping_first_and_counted() -> None:
    # object 1: (g, t=5) three times; (r, t=5) is not a repeat (other band); object 2: (g, t=1) twice
    curves = from_arrays([1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2],
                         ["g", "g", "g", "r", "g", "g", "g", "g", "g", "g", "g"],
                         [1.0, 2.0, 5.0, 5.0, 5.0, 5.0, 9.0, 1.0, 1.0, 2.0, 3.0],
                         [20.0, 21.0, 22.0, 18.0, 99.0, 98.0, 23.0, 17.0, 50.0, 17.5, 18.5], [0.1] * 11, ("g", "r"))
    inputs = preprocess(curves, n_skip=0)
    assert inputs.n_duplicates == 3
    np.testing.assert_array_equal(inputs.n_obs, [[4, 1], [3, 0]])
    # the kept (g, 5) has mag 22: rows of object 1 are g at t=5 and t=9
    np.testing.assert_allclose(inputs.rows[:2, 2:], [[1.0, 1.0], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(inputs.rows[2, 2:], [0.5, 1.0], rtol=1e-6)
    assert_matches_reference(inputs, preprocess_reference(curves, 0))


# ----------------------------------------------------------------------------------------------------------------
# Unsorted input
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture
def sorted_curves() -> LightCurves:
    return from_arrays([4, 4, 4, 4, 9, 9, 9], ["g", "r", "g", "g", "r", "r", "g"],
                       [0.0, 0.0, 1.0, 2.0, 5.0, 6.0, 7.0], [20.0] * 7, [0.1] * 7, ("g", "r"))


def permuted(curves: LightCurves, order: list[int]) -> LightCurves:
    return replace(curves, obj_id=curves.obj_id[order], band=curves.band[order], t=curves.t[order],
                   mag=curves.mag[order], err=curves.err[order])


def test_sorted_input_passes(sorted_curves: LightCurves) -> None:
    check_sorted(sorted_curves)


def test_time_out_of_order_names_row(sorted_curves: LightCurves) -> None:
    curves = permuted(sorted_curves, [0, 1, 3, 2, 4, 5, 6])
    with pytest.raises(ValueError, match=r"row 3 \(obj_id 4\): t = 1.0 is before t = 2.0 of row 2.*sorted"):
        check_sorted(curves)
    with pytest.raises(ValueError, match=r"row 3 \(obj_id 4\)"):
        preprocess(curves, 0)


def test_band_out_of_order_at_same_t_names_row(sorted_curves: LightCurves) -> None:
    with pytest.raises(ValueError, match=r"row 1 \(obj_id 4\): band 0 at t = 0.0 follows band 1"):
        check_sorted(permuted(sorted_curves, [1, 0, 2, 3, 4, 5, 6]))


def test_first_bad_row_is_reported(sorted_curves: LightCurves) -> None:
    # two disorders, in objects 4 and 9: the earlier row is named
    with pytest.raises(ValueError, match=r"row 3 \(obj_id 4\)"):
        check_sorted(permuted(sorted_curves, [0, 1, 3, 2, 4, 6, 5]))


def test_object_order_and_offsets_checked(sorted_curves: LightCurves) -> None:
    swapped = permuted(sorted_curves, [4, 5, 6, 0, 1, 2, 3])
    swapped = replace(swapped, offsets=np.array([0, 3, 7]))
    with pytest.raises(ValueError, match=r"row 3 \(obj_id 4\): starts object 1 but obj_id 4 is not greater"):
        check_sorted(swapped)
    with pytest.raises(ValueError, match=r"row 4 \(obj_id 9\): obj_id differs from its object's first row 0"):
        check_sorted(replace(sorted_curves, offsets=np.array([0, 7])))
    with pytest.raises(ValueError, match=r"offsets must run from 0 to 7"):
        check_sorted(replace(sorted_curves, offsets=np.array([0, 4, 6])))


def test_check_false_skips_the_check(sorted_curves: LightCurves) -> None:
    # documented: unsorted input then gives meaningless rows, here the log10 of a negative dt
    with pytest.warns(RuntimeWarning, match="invalid value encountered in log10"):
        inputs = preprocess(permuted(sorted_curves, [0, 1, 3, 2, 4, 5, 6]), 0, check=False)
    assert np.isnan(inputs.rows[0, 1])


def test_bad_arguments() -> None:
    curves = from_arrays([1], ["g"], [0.0], [20.0], [0.1], ("g", "r"))
    with pytest.raises(ValueError, match="n_skip must be >= 0"):
        preprocess(curves, -1)
    with pytest.raises(ValueError, match="num_threads must be in"):
        preprocess(curves, 0, num_threads=0)
