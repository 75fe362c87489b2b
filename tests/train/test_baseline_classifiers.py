"""The paper's baselines (mbfast.train.baseline_classifiers): light-curve features, the balanced random forest and the
concatenation model, on hand-made light curves small enough to check by hand; `mbfast report` without its extras."""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("light_curve")
pytest.importorskip("imblearn")
torch = pytest.importorskip("torch")

from mbfast.cli import main  # noqa: E402
from mbfast.model.config import ModelConfig  # noqa: E402
from mbfast.train.baseline_classifiers.brf import fit_brf, fit_rf_regressor  # noqa: E402
from mbfast.train.baseline_classifiers.concat import ConcatModel, train_concat  # noqa: E402
from mbfast.train.baseline_classifiers.features import MISSING, extract_features  # noqa: E402
from mbfast.train.batch import make_batch  # noqa: E402
from mbfast.model.reference import preprocess_reference  # noqa: E402
from mbfast.lightcurves.table import from_arrays  # noqa: E402

BANDS = ("g", "r", "i")


def sine_object(obj_id: int = 1, n: int = 40, amplitude: float = 0.5, period: float = 3.7):
    """g: a sine around 18.0 sampled at its peaks and troughs too; r: constant 17.5; i: no observation."""
    t = np.concatenate([np.linspace(0.0, 4 * period, n), np.linspace(0.05, 20.0, 10)])
    phase = 2 * np.pi * t[:n] / period
    mag = np.concatenate([18.0 + amplitude * np.sin(phase), np.full(10, 17.5)])
    mag[:n][np.argmax(mag[:n])] = 18.0 + amplitude   # exact extremes: amplitude is exactly `amplitude`
    mag[:n][np.argmin(mag[:n])] = 18.0 - amplitude
    band = np.array(["g"] * n + ["r"] * 10)
    return from_arrays(np.full(len(t), obj_id), band, t, mag, np.full(len(t), 0.05), BANDS)


def column(features, name: str) -> np.ndarray:
    return features.values[:, features.names.index(name)]


def test_sine_amplitude_is_half_peak_to_peak() -> None:
    features = extract_features(sine_object(amplitude=0.5))
    assert column(features, "amplitude_g")[0] == pytest.approx(0.5, abs=1e-6)
    assert column(features, "amplitude_r")[0] == pytest.approx(0.0, abs=1e-6)


def test_colours_are_differences_of_band_means() -> None:
    curves = sine_object()
    features = extract_features(curves)
    g_mean = curves.mag[curves.band == 0].astype(np.float64).mean()
    assert column(features, "g-r")[0] == pytest.approx(g_mean - 17.5, abs=1e-5)


def test_missing_band_is_imputed_with_minus_999() -> None:
    features = extract_features(sine_object())
    i_columns = [k for k, name in enumerate(features.names) if name.endswith("_i") or "i" in name.split("-")]
    assert len(i_columns) == (len(features.names) - features.n_colours) // 3 + 2  # i features, g-i, r-i
    np.testing.assert_array_equal(features.values[0, i_columns], MISSING)
    assert np.all(np.isfinite(features.values))
    assert features.values.shape == (1, len(features.names))
    assert features.colour_columns.sum() == features.n_colours == 3


def separable_features(n_per_class: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes split by the sign of every feature (class 1 is the rare one)."""
    rng = np.random.default_rng(seed)
    labels = np.array([0] * (2 * n_per_class) + [1] * n_per_class)
    features = np.where(labels == 0, -1.0, 1.0)[:, None] * rng.uniform(0.5, 2.0, (len(labels), 5))
    return features, labels


def test_brf_learns_a_separable_case_and_picks_from_the_grid() -> None:
    features, labels = separable_features()
    fitted = fit_brf(features, labels, grid=(5, 10), n_folds=2, seed=0)
    assert fitted.n_trees in (5, 10) and set(fitted.grid_scores) == {5, 10}
    test_features, test_labels = separable_features(seed=1)
    probs = fitted.model.predict_proba(test_features)
    assert probs.shape == (len(test_labels), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    assert np.mean(probs.argmax(axis=1) == test_labels) == 1.0


def test_rf_regressor_shapes_and_refuses_nan() -> None:
    features, _ = separable_features()
    target = 2.0 * features[:, 0]
    fitted = fit_rf_regressor(features, target, grid=(5,), seed=0)
    assert fitted.model.predict(features).shape == target.shape
    with pytest.raises(ValueError, match="NaN"):
        fit_rf_regressor(features, np.where(target > 0, target, np.nan), grid=(5,))


def tiny_concat_data():
    """Six objects of two classes over g r i; object 5 has no i rows (its i embedding must be zero)."""
    rng = np.random.default_rng(0)
    obj_id, band, t, mag = [], [], [], []
    for k in range(6):
        for b, name in enumerate(BANDS):
            n = 0 if (k == 5 and name == "i") else 5 + k
            times = np.sort(rng.uniform(0, 30, n)) + 0.01 * np.arange(n)
            obj_id += [k] * n
            band += [name] * n
            t += list(times)
            mag += list(18.0 + (k % 2) * 0.8 + 0.3 * b + rng.normal(0, 0.1, n))
    curves = from_arrays(np.array(obj_id), np.array(band), np.array(t), np.array(mag), np.full(len(t), 0.05),
                         BANDS)
    labels = np.arange(6) % 2
    config = ModelConfig(survey="test", bands=BANDS, class_names=("a", "b"), band_hidden=8, band_layers=2,
                         classifier_hidden=8, classifier_layers=2)
    return config, preprocess_reference(curves, n_skip=0), labels


def test_concat_forward_shapes_and_zero_embedding_for_an_absent_band() -> None:
    config, inputs, labels = tiny_concat_data()
    model = ConcatModel(config).eval()
    batch = make_batch(inputs, np.arange(6), labels).to_torch()
    with torch.no_grad():
        embedding = model.embedding(batch)
        logits = model(batch)
    assert embedding.shape == (6, 3 * 8 + 3)
    assert logits.shape == (6, 2)
    i_slice = slice(2 * 8, 3 * 8)
    assert torch.all(embedding[5, i_slice] == 0)
    assert torch.any(embedding[4, i_slice] != 0)


def test_concat_one_gradient_step_reduces_the_loss() -> None:
    config, inputs, labels = tiny_concat_data()
    torch.manual_seed(0)
    model = ConcatModel(config).train()
    batch = make_batch(inputs, np.arange(6), labels).to_torch()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    before = torch.nn.functional.cross_entropy(model(batch), batch.labels)
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(model(batch), batch.labels)
    assert after.item() < before.item()


def test_train_concat_runs_and_keeps_the_best_epoch() -> None:
    config, inputs, labels = tiny_concat_data()
    model, log = train_concat(config, inputs, labels, train=np.arange(6), val=np.arange(6), epochs=2,
                              batch_size=6, seed=0)
    assert 1 <= log.best_epoch <= log.epochs <= 2 and len(log.history) == log.epochs
    assert not model.training


def write_run(run_dir, object_ids, split, fold: int, n_folds: int = 3, n_skip: int = 2) -> None:
    """A finished-run folder as the trainer leaves it: options.json, config.json, split.npz, model and summary."""
    import json

    train, val, test = split
    run_dir.mkdir()
    np.savez(run_dir / "split.npz", train=object_ids[train], val=object_ids[val], test=object_ids[test])
    (run_dir / "options.json").write_text(json.dumps({"dataset": "toy", "seed": 0, "n_folds": n_folds,
                                                      "fold": fold}))
    (run_dir / "config.json").write_text(json.dumps({"n_skip": n_skip, "regression_targets": [{"name": "z"}]}))
    (run_dir / "model.mbf").write_bytes(b"")
    (run_dir / "summary.json").write_text("{}")


def toy_split_data():
    labels = np.repeat([0, 1, 2], [40, 25, 10])
    object_ids = 1000 + 7 * np.arange(len(labels))
    usable = np.ones(len(labels), dtype=bool)
    usable[3] = False
    return labels, object_ids, usable


def test_reused_run_with_the_reports_split_is_accepted(tmp_path) -> None:
    from mbfast.train.baseline_classifiers.report import ReportOptions, check_run_split, reused_runs
    from mbfast.train.training_set import stratified_split

    labels, object_ids, usable = toy_split_data()
    for fold in (0, 2):
        write_run(tmp_path / f"fold{fold}", object_ids, stratified_split(labels, usable, 0, 3, fold), fold)
    check_run_split(tmp_path / "fold2", object_ids, *stratified_split(labels, usable, 0, 3, 2))
    options = ReportOptions(data="toy", n_folds=3, multi_runs=(str(tmp_path / "fold2"), str(tmp_path / "fold0")))
    runs = reused_runs(options, object_ids, labels, usable)
    assert sorted(runs) == [0, 2] and runs[2].name == "fold2"


def test_reused_run_with_another_split_is_refused(tmp_path) -> None:
    from mbfast.train.baseline_classifiers.report import ReportOptions, check_run_split, reused_runs
    from mbfast.train.training_set import stratified_split

    labels, object_ids, usable = toy_split_data()
    ours = stratified_split(labels, usable, 0, 3, 0)
    # another fold: same test set, other train/val
    write_run(tmp_path / "other_fold", object_ids, stratified_split(labels, usable, 0, 3, 1), fold=0)
    with pytest.raises(ValueError, match="its train set"):
        check_run_split(tmp_path / "other_fold", object_ids, *ours)
    # another seed: another test set
    write_run(tmp_path / "other_seed", object_ids, stratified_split(labels, usable, 1, 3, 0), fold=0)
    with pytest.raises(ValueError, match="its test set"):
        check_run_split(tmp_path / "other_seed", object_ids, *ours)
    # reused_runs reads the fold from options.json and still compares the objects
    with pytest.raises(ValueError, match="is not the report's"):
        reused_runs(ReportOptions(data="toy", n_folds=3, multi_runs=(str(tmp_path / "other_fold"),)),
                    object_ids, labels, usable)
    # a run of another k is refused before its split is read
    write_run(tmp_path / "seven", object_ids, stratified_split(labels, usable, 0, 7, 0), fold=0, n_folds=7)
    with pytest.raises(ValueError, match="n_folds 7 != report's 3"):
        reused_runs(ReportOptions(data="toy", n_folds=3, multi_runs=(str(tmp_path / "seven"),)),
                    object_ids, labels, usable)
    with pytest.raises(ValueError, match="no split.npz"):
        check_run_split(tmp_path, object_ids, *ours)


def test_train_concat_says_why_it_stopped() -> None:
    config, inputs, labels = tiny_concat_data()
    _, log = train_concat(config, inputs, labels, train=np.arange(6), val=np.arange(6), epochs=2, batch_size=6,
                          seed=0)
    assert log.stopped in ("epoch cap 2 reached", "early stopping: no improvement for 5 epochs")
    _, log = train_concat(config, inputs, labels, train=np.arange(6), val=np.arange(6), epochs=50, batch_size=6,
                          seed=0, max_seconds=0.0)
    assert log.epochs == 1 and log.stopped.startswith("time budget")


def test_report_names_the_extras_it_misses(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "light_curve", None)  # as where the `baselines` extra is not installed
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert main(["report", "--data", "plasticc", "--out", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err == ("mbfast report: error: needs light_curve, sklearn: "
                                       "pip install 'mbfast[baselines]'\n")
    assert not (tmp_path / "report").exists()


def test_report_trains_multi_with_the_recipe_or_the_transfer_it_is_given() -> None:
    from mbfast.train.baseline_classifiers.report import ReportOptions, recipe
    from mbfast.train.recipe import OPTIONS

    _, default = recipe(ReportOptions(data="yse"), fold=1, minutes=5.0, with_targets=False)
    assert (default.lr, default.transfer_from, default.fold, default.max_minutes) == (OPTIONS.lr, None, 1, 5.0)
    _, transfer = recipe(ReportOptions(data="yse", lr=1e-3, transfer_from="lsst"), fold=0, minutes=5.0,
                         with_targets=False)
    assert (transfer.lr, transfer.transfer_from, transfer.dataset) == (1e-3, "lsst", "yse")
