"""Training pipeline: metrics on hand-computed cases, splits, losses, detached central training, a tiny
end-to-end run (deterministic, resumable, exported), the evaluation report and the CLI wiring."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mbfast.model.config import ModelConfig, RegressionTarget  # noqa: E402
from mbfast.lightcurves.sample import load_sample  # noqa: E402
from mbfast.train import metrics  # noqa: E402
from mbfast.train.batch import make_batch  # noqa: E402
from mbfast.train.training_set import (TrainingSet, cap_per_class, fit_targets, scale_targets,  # noqa: E402
                               stratified_split)
from mbfast.train.evaluate import write_report  # noqa: E402
from mbfast.train.export import load_torch_model  # noqa: E402
from mbfast.train.multiband import MultibandModel  # noqa: E402
from mbfast.train.augment import Augmentation  # noqa: E402
from mbfast.train.loop import (TrainOptions, augmented_epoch, band_losses, central_loss, predict, train,  # noqa: E402
                               transfer_weights, weighted_ce)
from mbfast.train.prior import log_prior  # noqa: E402
from mbfast.model.modelfile import read_model  # noqa: E402
from mbfast.model.reference import preprocess_reference  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(band_hidden=6, band_layers=2, central_hidden=5, central_layers=2, translation_layers=2,
            classifier_hidden=4, classifier_layers=2, band_head_hidden=4, band_head_layers=1,
            regression_hidden=4, regression_layers=1, n_skip=2)


# ---------------------------------------------------------------------------------------------- metrics
def test_confusion_recall_f1_by_hand() -> None:
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    matrix = metrics.confusion_matrix(true, pred, 4)
    np.testing.assert_array_equal(matrix[:3, :3], [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert matrix[3].sum() == 0 and matrix[:, 3].sum() == 0
    # recall 2/3, 1/2, 1; precision 1, 1/2, 1/2; F1 0.8, 0.5, 2/3; class 3 absent: not averaged
    np.testing.assert_allclose(metrics.per_class_recall(matrix)[:3], [2 / 3, 1 / 2, 1])
    np.testing.assert_allclose(metrics.per_class_f1(matrix), [0.8, 0.5, 2 / 3, 0.0])
    assert metrics.macro_recall(matrix) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert metrics.macro_f1(matrix) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics.accuracy(matrix) == pytest.approx(4 / 6)


def test_class_only_predicted_counts_in_macro_f1() -> None:
    matrix = metrics.confusion_matrix(np.array([0, 0]), np.array([0, 1]), 2)
    # class 0: P 1, R 1/2, F1 2/3; class 1: never true, predicted once: F1 0 (scikit-learn's convention)
    assert metrics.macro_f1(matrix) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.macro_recall(matrix) == pytest.approx((0.5 + 0) / 2)


def test_regression_metrics_by_hand() -> None:
    true = np.array([1.0, 2.0, 3.0, np.nan])
    pred = np.array([1.0, 2.5, 2.0, 7.0])
    out = metrics.regression_metrics(true, pred)
    # residuals 0, .5, 1 -> SS 1.25; SS_tot 2; R2 = 1 - 1.25/2; RMSE sqrt(1.25/3); MAPE (0 + 25 + 33.3)/3 %
    assert out["n"] == 3
    assert out["r2"] == pytest.approx(0.375)
    assert out["rmse"] == pytest.approx(np.sqrt(1.25 / 3))
    assert out["mape"] == pytest.approx(100 * (0 + 0.25 + 1 / 3) / 3)


def test_f1_by_step_uses_prediction_after_n_rows() -> None:
    # object 0 (class 0): 3 steps predicting 1, 0, 0; object 1 (class 1): 1 step predicting 1
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.9, 0.1], [0.3, 0.7]])
    offsets = np.array([0, 3, 4])
    f1, counted = metrics.f1_by_step(probs, offsets, np.array([0, 1]), np.array([1, 2, 3, 4]), 2)
    # n=1: both objects, predictions (1, 1) vs (0, 1): F1 class0 0, class1 2/3 -> 1/3
    assert f1[0] == pytest.approx(1 / 3)
    np.testing.assert_allclose(f1[1:3], [1.0, 1.0])  # only object 0 left, right after 2 and 3 rows
    assert np.isnan(f1[3])
    np.testing.assert_array_equal(counted, [2, 1, 1, 0])


# ------------------------------------------------------------------------------------------------ splits
def test_stratified_split_proportions_and_shared_test_set() -> None:
    labels = np.repeat(np.arange(3), [400, 160, 40])
    usable = np.ones(len(labels), dtype=bool)
    usable[:10] = False
    splits = [stratified_split(labels, usable, seed=4, n_folds=7, fold=fold) for fold in range(3)]
    for train_idx, val_idx, test_idx in splits:
        everything = np.concatenate([train_idx, val_idx, test_idx])
        assert len(np.unique(everything)) == len(everything) == usable.sum()
        assert not np.isin(np.arange(10), everything).any()
        assert len(test_idx) == pytest.approx(0.2 * usable.sum(), abs=3)
        assert len(val_idx) == pytest.approx(0.1 * usable.sum(), abs=3)
        for label in range(3):  # each class in the same proportion in every part
            share = (labels[test_idx] == label).mean()
            assert share == pytest.approx((labels[usable] == label).mean(), abs=0.02)
    np.testing.assert_array_equal(splits[0][2], splits[1][2])  # folds share the test set
    assert not np.isin(splits[0][1], splits[1][1]).any()       # and have disjoint validation sets
    again = stratified_split(labels, usable, seed=4, n_folds=7, fold=0)
    for first, second in zip(splits[0], again):
        np.testing.assert_array_equal(first, second)


def test_cap_per_class() -> None:
    labels = np.repeat(np.arange(3), [50, 5, 20])
    kept = cap_per_class(np.arange(75), labels, 10, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[kept]), [10, 5, 10])


def test_target_scaler_uses_known_training_values() -> None:
    targets = np.array([[1.0], [3.0], [np.nan], [100.0]])
    (scaler,) = fit_targets(("z",), targets, np.array([0, 1, 2]), (2.0,))
    assert (scaler.mean, scaler.std, scaler.weight) == (2.0, 1.0, 2.0)
    z = scale_targets(targets, (scaler,))
    np.testing.assert_allclose(z[[0, 1, 3], 0], [-1.0, 1.0, 98.0])
    assert np.isnan(z[2, 0])


# ------------------------------------------------------------------------------------------------ losses
@pytest.fixture(scope="module")
def tiny_data() -> TrainingSet:
    data = load_sample()
    n_obs = np.diff(data.curves.offsets)
    # 6 short light curves per class keep the training tests fast
    chosen = np.concatenate([np.flatnonzero((data.labels == label) & (n_obs >= 12) & (n_obs <= 60))[:6]
                             for label in range(len(data.class_names))])
    inputs = preprocess_reference(data.curves.select(chosen), n_skip=2)
    targets = data.targets["redshift"][chosen][:, None]
    return TrainingSet(inputs, data.labels[chosen], data.class_names, data.curves.bands, ("redshift",),
                        targets, inputs.n_rows > 0, data.curves.select(chosen))


def tiny_model(data: TrainingSet, seed: int = 0) -> MultibandModel:
    torch.manual_seed(seed)
    config = ModelConfig("plasticc", data.bands, data.class_names, **TINY,
                         regression_targets=(RegressionTarget("redshift", 0.5, 0.5, 1.0),))
    return MultibandModel(config)


def test_weighted_ce_is_eq5() -> None:
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([1, 1, 0])
    weights = torch.tensor([0.0, 0.25, 0.75])  # first step skipped (N_skip)
    ce = -torch.log_softmax(logits, -1)[torch.arange(3), labels]
    expected = (0.25 * ce[1] + 0.75 * ce[2]) / 2
    torch.testing.assert_close(weighted_ce(logits, labels, weights, 2), expected)


def test_central_loss_masks_unknown_targets(tiny_data) -> None:
    model = tiny_model(tiny_data).train()
    objects = np.flatnonzero(tiny_data.usable)[:20]
    z = scale_targets(tiny_data.targets, model.config.regression_targets)
    z_all_unknown = np.full_like(z, np.nan)
    batch = make_batch(tiny_data.inputs, objects, tiny_data.labels, z_all_unknown).to_torch()
    weights = torch.ones(1)
    _, cls, reg = central_loss(model, batch, [s.detach() if s is not None else None for s in model.band_states(batch)],
                               weights)
    assert reg.item() == 0.0 and cls.item() > 0.0
    batch = make_batch(tiny_data.inputs, objects, tiny_data.labels, z).to_torch()
    _, _, reg = central_loss(model, batch, model.band_states(batch), weights)
    assert reg.item() > 0.0 and torch.isfinite(reg)


def test_central_loss_sends_no_gradient_to_band_models(tiny_data) -> None:
    model = tiny_model(tiny_data).train()
    objects = np.flatnonzero(tiny_data.usable)[:20]
    z = scale_targets(tiny_data.targets, model.config.regression_targets)
    batch = make_batch(tiny_data.inputs, objects, tiny_data.labels, z).to_torch()
    with torch.no_grad():
        states = model.band_states(batch)
    loss, _, _ = central_loss(model, batch, states, torch.ones(1))
    loss.backward()
    assert all(p.grad is None for p in model.bands.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.central.parameters())
    model.zero_grad(set_to_none=True)
    sum(band_losses(model, batch, model.band_states(batch))).backward()
    assert all(p.grad is None for p in model.central.parameters())


# ---------------------------------------------------------------------------------------------- training
def run_tiny(tmp_path, name: str, tiny_data, **changes) -> tuple:
    options = TrainOptions(**{"batch_size": 16, "steps_wait": 2, "max_epochs": 3, "patience": 5, "seed": 1,
                              "device": "cpu", **changes})
    path = train(tmp_path / name, TINY, options, cache_dir=None, progress=False, data=tiny_data)
    return path, json.loads((tmp_path / name / "history.json").read_text())


def test_tiny_training_is_deterministic_resumable_and_exported(tmp_path, tiny_data) -> None:
    path_a, history_a = run_tiny(tmp_path, "a", tiny_data)
    assert len(history_a) == 3 and history_a[-1]["step"] > 2
    # same seed, interrupted after one epoch, then resumed: byte-identical to the uninterrupted run
    run_tiny(tmp_path, "c", tiny_data, max_epochs=1)
    path_c = train(tmp_path / "c", None, TrainOptions(max_epochs=3), resume=True, cache_dir=None, progress=False,
                   data=tiny_data)
    assert path_c.read_bytes() == path_a.read_bytes()
    model_file = read_model(path_a)
    (target,) = model_file.config.regression_targets
    train_idx, _, _ = stratified_split(tiny_data.labels, tiny_data.usable, 1)
    known = tiny_data.targets[train_idx, 0]
    assert target.mean == pytest.approx(np.nanmean(known)) and target.std == pytest.approx(np.nanstd(known))
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["stopped"].startswith("max_epochs")


def test_init_from_starts_from_a_model_files_weights(tmp_path, tiny_data) -> None:
    source, _ = run_tiny(tmp_path, "source", tiny_data, max_epochs=1)
    copied, _ = run_tiny(tmp_path, "copy", tiny_data, max_epochs=0, init_from=str(source))
    before, after = read_model(source).tensors, read_model(copied).tensors
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    fresh, _ = run_tiny(tmp_path, "fresh", tiny_data, max_epochs=0, seed=5)
    assert any(not np.array_equal(read_model(fresh).tensors[name], before[name]) for name in before)
    other = dict(TINY, band_hidden=7)
    with pytest.raises(ValueError, match="band_hidden differ"):
        train(tmp_path / "wrong", other, TrainOptions(max_epochs=0, init_from=str(source)), cache_dir=None,
              progress=False, data=tiny_data)


def test_redshift_augmentation_moves_the_target_and_resumes_identically(tmp_path, tiny_data) -> None:
    scaler = RegressionTarget("redshift", 0.5, 0.25)
    redshift = tiny_data.targets[:, 0]
    augmentation = Augmentation(truncate=0.0, obs_dropout=0.0, band_dropout=0.0, redraw=False, redshift=1.0)
    curves = tiny_data.curves   # renumbered 0..K-1 as train() does: preprocessing wants obj_id sorted
    curves = replace(curves, obj_id=np.repeat(np.arange(curves.n_objects), np.diff(curves.offsets)))
    inputs, targets_z = augmented_epoch(curves, tiny_data.targets, (scaler,), augmentation,
                                        np.random.default_rng(0), n_skip=2)
    new_z = targets_z[:, 0] * scaler.std + scaler.mean
    known = np.isfinite(redshift) & (redshift > 0)
    np.testing.assert_array_equal(np.isfinite(new_z), np.isfinite(redshift))   # galactic stays unknown
    ratio = new_z[known] / redshift[known]
    assert np.all((ratio > 0.5 - 1e-6) & (ratio < 2.0 + 1e-6)) and np.mean(np.abs(ratio - 1) > 0.01) > 0.8
    assert inputs.n_rows.shape == (curves.n_objects,) and np.all(inputs.n_rows > 0)
    # through train(): interrupted after one epoch and resumed, byte-identical to the uninterrupted run
    path_a, _ = run_tiny(tmp_path, "a", tiny_data, augment_redshift=0.5)
    run_tiny(tmp_path, "b", tiny_data, augment_redshift=0.5, max_epochs=1)
    path_b = train(tmp_path / "b", None, TrainOptions(max_epochs=3), resume=True, cache_dir=None, progress=False,
                   data=tiny_data)
    assert path_b.read_bytes() == path_a.read_bytes()
    path_off, _ = run_tiny(tmp_path, "off", tiny_data)
    assert path_off.read_bytes() != path_a.read_bytes()
    no_redshift = replace(tiny_data, target_names=("mass",))
    with pytest.raises(ValueError, match="augment_redshift needs .* 'redshift'"):
        run_tiny(tmp_path, "none", no_redshift, augment_redshift=0.5)


@torch.no_grad()
def test_class_weights_change_the_loss_as_written(tiny_data) -> None:
    model = tiny_model(tiny_data)
    objects = np.flatnonzero(tiny_data.usable)[:20]
    batch = make_batch(tiny_data.inputs, objects, tiny_data.labels, np.zeros((len(tiny_data.labels), 1))
                       ).to_torch()
    states = model.band_states(batch)
    target_weights = torch.ones(1)
    plain, _, _ = central_loss(model, batch, states, target_weights)
    ones, _, _ = central_loss(model, batch, states, target_weights, object_weight=torch.ones(len(objects)))
    assert float(ones) == pytest.approx(float(plain), rel=1e-6)  # weight 1 everywhere is the paper's loss
    # one object weighted 3x: its eq. 5 sum counts 3 times, the normaliser grows by 2
    weight = torch.ones(len(objects))
    weight[0] = 3.0
    _, cls_w, _ = central_loss(model, batch, states, target_weights, object_weight=weight)
    _, cls, _ = central_loss(model, batch, states, target_weights)
    out = model.central_forward(batch, states)
    first = batch.central_mask[0]
    own = torch.nn.functional.cross_entropy(out.logits[:int(first.sum())], batch.labels[0].repeat(int(first.sum())),
                                            reduction="none")
    own_sum = float((own * batch.central_weight[0][first]).sum())
    expected = (float(cls) * len(objects) + 2 * own_sum) / (len(objects) + 2)
    assert float(cls_w) == pytest.approx(expected, rel=1e-5)
    bands = band_losses(model, batch, states, torch.ones(len(objects)))
    assert [float(x) for x in bands] == pytest.approx([float(x) for x in band_losses(model, batch, states)])


def test_prior_shift_is_folded_into_the_classifier_bias(tmp_path, tiny_data) -> None:
    shifted, _ = run_tiny(tmp_path, "shifted", tiny_data, max_epochs=2)
    plain, _ = run_tiny(tmp_path, "plain", tiny_data, max_epochs=2, prior_shift=False)
    alpha = json.loads((tmp_path / "shifted" / "summary.json").read_text())["prior_shift"]
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["prior_shift"] is None
    train_idx, _, _ = stratified_split(tiny_data.labels, tiny_data.usable, 1)
    expected = alpha * log_prior(tiny_data.labels[train_idx], 14)
    a, b = read_model(shifted).tensors, read_model(plain).tensors
    name = "central.classifier.out.bias"
    np.testing.assert_allclose(a[name] - b[name], expected, atol=1e-6)
    assert all(np.array_equal(a[key], b[key]) for key in a if key != name)


def test_time_budget_stops_gracefully(tmp_path, tiny_data) -> None:
    path, history = run_tiny(tmp_path, "budget", tiny_data, max_minutes=0.0, max_epochs=50)
    summary = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert summary["stopped"].startswith("time budget") and len(history) == 1
    assert read_model(path).config.n_classes == 14


def test_report_files_and_predict(tmp_path, tiny_data) -> None:
    model = tiny_model(tiny_data).eval()
    objects = np.flatnonzero(tiny_data.usable)[:30]
    predictions = predict(model, tiny_data.inputs, objects, batch_size=7)
    assert predictions.step_probs.shape == (tiny_data.inputs.n_rows[objects].sum(), 14)
    np.testing.assert_allclose(predictions.final_probs, predictions.step_probs[predictions.step_offsets[1:] - 1])
    report = write_report(predictions, tiny_data.labels[objects], tiny_data.targets[objects],
                          tiny_data.inputs.object_ids[objects], tiny_data.class_names, ("redshift",), tmp_path)
    for name in ("report.json", "confusion_matrix.png", "f1_vs_rows.png", "probabilities_one_object.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert 0.0 <= report["macro_f1"] <= 1.0 and set(report["regression"]) == {"redshift"}


def test_cli_registers_train_evaluate_export() -> None:
    from mbfast.cli import train as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "runs/x", "--band-hidden", "32", "--max-minutes", "5", "--resume"])
    assert args.band_hidden == 32 and args.max_minutes == 5.0 and args.resume and args.run is cli.run_train
    assert parser.parse_args(["train", "runs/y", "--transfer-from", "lsst"]).transfer_from == "lsst"
    options = cli.train_options(parser.parse_args(["train", "runs/z", "--augment-redshift", "0.5"]))
    assert options.augment_redshift == 0.5 and options.augment_truncate == 0.5 and options.augment_redraw
    off = cli.train_options(parser.parse_args(["train", "runs/z", "--augment-redshift", "0.5", "--no-augment"]))
    assert not off.augmentation.active and off.augment_redshift == 0.0
    assert parser.parse_args(["evaluate", "m.mbf", "out"]).run is cli.run_evaluate
    assert parser.parse_args(["export", "runs/x", "m.mbf"]).run is cli.run_export


def test_registering_the_commands_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, mbfast.cli.train, mbfast.train.metrics, mbfast.train.training_set; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_transfer_copies_band_stacks_by_filter_and_the_central_stack(small_config, small_model_path) -> None:
    config = replace(small_config, survey="yse", bands=("ps1_g", "ztf_r", "X"), class_names=("Ia", "II", "Ibc"),
                     regression_targets=())
    model = MultibandModel(config)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    copied = transfer_weights(model, str(small_model_path))
    source = load_torch_model(small_model_path).state_dict()   # bands u g r i z y
    after = model.state_dict()
    for ours, theirs in ((0, 1), (1, 2)):                      # ps1_g <- g, ztf_r <- r
        for prefix in ("bands", "central.translators"):
            names = [name for name in after if name.startswith(f"{prefix}.{ours}.") and ".head." not in name]
            assert names
            for name in names:
                torch.testing.assert_close(after[name], source[name.replace(f"{prefix}.{ours}.",
                                                                            f"{prefix}.{theirs}.", 1)], rtol=0, atol=0)
        torch.testing.assert_close(after["central.band_mix"][ours], source["central.band_mix"][theirs])
    for name in after:
        if name.startswith(("bands.2.", "central.translators.2.", "central.classifier.")) or ".head." in name:
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=name)   # no source: as it was
        if name.startswith("central.stack."):
            torch.testing.assert_close(after[name], source[name], rtol=0, atol=0, msg=name)
    torch.testing.assert_close(after["central.band_mix"][2], before["central.band_mix"][2])
    assert "central.stack.lstm.0.weight_ih_l0" in copied and not any("classifier" in name for name in copied)
    unrelated = replace(config, bands=("X", "Y2"), band_hidden=5, central_hidden=5, central_layers=3)
    with pytest.raises(ValueError, match="no weight carries over"):
        transfer_weights(MultibandModel(unrelated), str(small_model_path))
