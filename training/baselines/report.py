"""`mbfast report`: the paper's comparison (§5, Tables 5-10) on one data set. Every method is trained and tested on
the same stratified folds (mbfast.model.data.stratified_split: one shared test set, k train/validation splits):
BRF (class-capped training set), BRF_all (uncapped), the concatenation baseline (Base), the multiband model
(Multi) and the multi-task model with the regression target (MTL), plus a random-forest regressor.

Writes report.md, metrics.json and one confusion-matrix PNG per method (median over folds, with the 25th-75th
percentile range where there are several folds). A small-budget run, not the paper's: short tree grid chosen on
fold 0 only, neural models stopped by a wall-clock budget per fold.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mbfast.datasets import LabelledSet
from mbfast.inputs import ModelInputs
from mbfast.model import metrics
from mbfast.model.data import TrainingData, cap_per_class, load_inputs, save_inputs, stratified_split

SIMULATED = {"plasticc": "SIMULATED (PLAsTiCC, LSST ugrizy)", "yse": "REAL (YSE DR1 spectroscopic subset, PS1 griz + ZTF gr)"}


@dataclass(frozen=True)
class ReportOptions:
    data: str = "plasticc"
    n_folds: int = 3
    seed: int = 0
    max_per_class: int | None = 500      # the capped training set of BRF (BRF_all has no cap)
    trees: tuple[int, ...] = (100, 250, 500)
    regression_trees: tuple[int, ...] = (100, 250)
    neural_minutes: float = 2.0          # per model and fold (Base, Multi, MTL)
    concat_epochs: int = 30
    batch_size: int = 128
    steps_wait: int = 40                 # band-only batches before the multiband central model starts (§3.6)
    band_hidden: int = 64
    n_skip: int = 2
    n_jobs: int = 2
    methods: tuple[str, ...] = ("BRF", "BRF_all", "Base", "Multi", "MTL")
    cost_objects: int = 300              # test objects timed for the per-object cost


@dataclass
class MethodResult:
    predictions: list = field(default_factory=list)   # per fold: int64 (K_test,) predicted class
    cost_us: list = field(default_factory=list)       # per fold: µs per object
    notes: list = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------

def load_labelled(name: str) -> LabelledSet:
    from mbfast import datasets

    loaders = {"plasticc": datasets.load_plasticc, "yse": datasets.load_yse}
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(loaders)}")
    return loaders[name]()


def preprocess_cached(labelled: LabelledSet, path: Path, n_skip: int) -> ModelInputs:
    from mbfast.preprocess import preprocess

    if path.exists():
        return load_inputs(path)
    inputs = preprocess(labelled.curves, n_skip)
    save_inputs(path, inputs)
    return inputs


def features_cached(labelled: LabelledSet, path: Path):
    from training.baselines.features import FeatureSet, extract_features

    if path.exists():
        with np.load(path) as stored:
            return FeatureSet(stored["values"], tuple(stored["names"].tolist()), int(stored["n_colours"]))
    features = extract_features(labelled.curves)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, values=features.values, names=np.array(features.names), n_colours=features.n_colours)
    return features


def preprocess_cost_us(labelled: LabelledSet, objects: np.ndarray, n_skip: int) -> float:
    """mbfast.preprocess on `objects` in one call, one thread, per object, µs (the neural models' input cost)."""
    from mbfast.preprocess import preprocess

    curves = labelled.curves.select(objects)
    preprocess(curves, n_skip, num_threads=1)  # compile / warm up
    start = time.perf_counter()
    preprocess(curves, n_skip, num_threads=1)
    return (time.perf_counter() - start) / len(objects) * 1e6


def feature_cost_us(labelled: LabelledSet, objects: np.ndarray) -> float:
    """light-curve feature extraction, object by object, one thread, per object, µs."""
    from training.baselines.features import FeatureExtractor

    extractor = FeatureExtractor(labelled.curves.bands)
    curves = labelled.curves.select(objects)
    start = time.perf_counter()
    extractor.transform(curves)
    return (time.perf_counter() - start) / len(objects) * 1e6


# ------------------------------------------------------------------------------------------------------------
# Methods
# ------------------------------------------------------------------------------------------------------------

def train_multiband(data: TrainingData, options: ReportOptions, fold: int, run_dir: Path, with_targets: bool):
    """Multi (classification only) or MTL (with the data set's regression targets) with the project trainer,
    on this report's fold: the trainer is given the same usable mask, seed and n_folds, so its split is ours."""
    from mbfast.model.export import load_torch_model
    from mbfast.model.training import TrainOptions, train

    if not with_targets:
        data = TrainingData(data.inputs, data.labels, data.class_names, data.bands, (),
                            np.zeros((len(data.labels), 0)), data.usable)
    train_options = TrainOptions(dataset=options.data, batch_size=options.batch_size, steps_wait=options.steps_wait,
                                 max_minutes=options.neural_minutes, n_folds=options.n_folds, fold=fold,
                                 seed=options.seed, device="cpu", patience=20)
    overrides = dict(band_hidden=options.band_hidden, central_hidden=options.band_hidden, n_skip=options.n_skip)
    path = train(run_dir, overrides, train_options, progress=False, data=data)
    with np.load(run_dir / "split.npz") as split:
        test_ids = split["test"]
    return load_torch_model(path), test_ids


def neural_cost_us(predict_fn, objects: np.ndarray) -> float:
    """predict_fn(objects) over `objects` (batches built inside), one torch thread, per object, µs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predict_fn(objects[: min(len(objects), 16)])  # warm up
        start = time.perf_counter()
        predict_fn(objects)
        return (time.perf_counter() - start) / len(objects) * 1e6
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------

def run_report(options: ReportOptions, out_dir: str | Path, log=print) -> dict:
    """Train and evaluate every method on options.n_folds folds; write report.md, metrics.json and PNGs."""
    import torch

    from mbfast.model.training import predict
    from training.baselines.brf import fit_brf, fit_rf_regressor, predict_cost_us
    from training.baselines.concat import predict_logits, train_concat
    from mbfast.config import ModelConfig

    torch.set_num_threads(options.n_jobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    labelled = load_labelled(options.data)
    inputs = preprocess_cached(labelled, out_dir / "cache" / f"inputs_nskip{options.n_skip}.npz", options.n_skip)
    features = features_cached(labelled, out_dir / "cache" / "features.npz")
    labels, class_names = labelled.labels, tuple(labelled.class_names)
    n_classes = len(class_names)
    target_names = tuple(labelled.targets)
    targets = np.stack([labelled.targets[name] for name in target_names], axis=1)  # (K, G)
    # objects the neural models can classify (>= 1 window row) and that are labelled: the same for every method
    usable = (inputs.n_rows > 0) & (labels >= 0)
    data = TrainingData(inputs, labels, class_names, tuple(labelled.curves.bands), target_names, targets, usable)
    log(f"{options.data}: {labelled.curves.n_objects} objects, {int(usable.sum())} usable, "
        f"{features.values.shape[1]} features; {time.perf_counter() - started:.0f} s")

    results = {method: MethodResult() for method in options.methods}
    regression: dict[str, dict[str, list]] = {"RF": {name: [] for name in target_names},
                                               "MTL": {name: [] for name in target_names}}
    chosen_trees: dict[str, int] = {}
    grid_scores: dict[str, dict] = {}
    training_logs: dict[str, list] = {"Base": [], "Multi": [], "MTL": []}
    test_reference = None
    for fold in range(options.n_folds):
        train, val, test = stratified_split(labels, usable, options.seed, options.n_folds, fold)
        test_reference = test if test_reference is None else test_reference
        assert np.array_equal(test, test_reference), "folds must share the test set"
        train_val = np.sort(np.concatenate([train, val]))  # forests need no validation set (§5)
        capped = cap_per_class(train_val, labels, options.max_per_class, options.seed + fold)
        timed = np.sort(test[np.random.default_rng(options.seed).permutation(len(test))[:options.cost_objects]])
        log(f"fold {fold}: train {len(train)} val {len(val)} test {len(test)} (capped forest set {len(capped)})")

        for method, subset in (("BRF", capped), ("BRF_all", train_val)):
            if method not in results:
                continue
            grid = (chosen_trees[method],) if method in chosen_trees else options.trees
            fitted = fit_brf(features.values[subset], labels[subset], grid=grid, seed=options.seed + fold,
                             n_jobs=options.n_jobs)
            if method not in chosen_trees:
                chosen_trees[method], grid_scores[method] = fitted.n_trees, fitted.grid_scores
            fitted.model.set_params(n_jobs=1)
            results[method].predictions.append(fitted.model.predict(features.values[test]))
            results[method].cost_us.append(predict_cost_us(fitted.model, features.values[timed]))
            log(f"  {method}: {fitted.n_trees} trees, macro recall "
                f"{metrics.macro_recall(metrics.confusion_matrix(labels[test], results[method].predictions[-1], n_classes)):.3f}"
                f"; {time.perf_counter() - started:.0f} s")

        for index, name in enumerate(target_names):  # RF regressor on the capped set (§5.1)
            known = capped[np.isfinite(targets[capped, index])]
            key = f"RF:{name}"
            grid = (chosen_trees[key],) if key in chosen_trees else options.regression_trees
            fitted = fit_rf_regressor(features.values[known], targets[known, index], grid=grid,
                                      seed=options.seed + fold, n_jobs=options.n_jobs)
            if key not in chosen_trees:
                chosen_trees[key], grid_scores[key] = fitted.n_trees, fitted.grid_scores
            fitted.model.set_params(n_jobs=1)
            predicted = fitted.model.predict(features.values[test])
            regression["RF"][name].append(metrics.regression_metrics(targets[test, index], predicted))
            log(f"  RF {name}: {fitted.n_trees} trees, R2 {regression['RF'][name][-1]['r2']:.3f}")

        if "Base" in results:
            config = ModelConfig(survey=options.data, bands=data.bands, class_names=class_names,
                                 band_hidden=options.band_hidden, n_skip=options.n_skip)
            model, train_log = train_concat(config, inputs, labels, train, val, epochs=options.concat_epochs,
                                            batch_size=options.batch_size, seed=options.seed + fold,
                                            max_seconds=60 * options.neural_minutes)
            training_logs["Base"].append({"epochs": train_log.epochs, "best_epoch": train_log.best_epoch,
                                          "seconds": train_log.seconds})
            results["Base"].predictions.append(predict_logits(model, inputs, test).argmax(axis=1))
            results["Base"].cost_us.append(neural_cost_us(lambda objects: predict_logits(model, inputs, objects),
                                                          timed))
            log(f"  Base: {train_log.epochs} epochs (best {train_log.best_epoch}); "
                f"{time.perf_counter() - started:.0f} s")

        for method, with_targets in (("Multi", False), ("MTL", True)):
            if method not in results:
                continue
            model, test_ids = train_multiband(data, options, fold, out_dir / "runs" / f"{method}_fold{fold}",
                                              with_targets)
            if not np.array_equal(test_ids, inputs.object_ids[test]):
                raise RuntimeError(f"{method}: the trainer's test set differs from the report's")
            summary = json.loads((out_dir / "runs" / f"{method}_fold{fold}" / "summary.json").read_text())
            training_logs[method].append(summary)
            predictions = predict(model, inputs, test)
            results[method].predictions.append(predictions.final_probs.argmax(axis=1))
            results[method].cost_us.append(neural_cost_us(lambda objects: predict(model, inputs, objects), timed))
            if with_targets:
                for index, name in enumerate(target_names):
                    regression["MTL"][name].append(
                        metrics.regression_metrics(targets[test, index], predictions.regression[:, index]))
            log(f"  {method}: {summary['epochs']} epochs (best {summary['best_epoch']}, {summary['stopped']}); "
                f"{time.perf_counter() - started:.0f} s")

    test = test_reference
    input_costs = {"features": feature_cost_us(labelled, timed), "preprocess": preprocess_cost_us(
        labelled, timed, options.n_skip)}
    summary = summarise(results, regression, labels[test], class_names, input_costs)
    summary.update(data=options.data, provenance=SIMULATED[options.data], options=_jsonable(vars(options)),
                   n_test=int(len(test)), trees=chosen_trees, grid_scores=_jsonable(grid_scores),
                   training=training_logs, wall_minutes=(time.perf_counter() - started) / 60)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
    for method, result in results.items():
        plot_confusion(labels[test], result.predictions, class_names, method,
                       out_dir / f"confusion_{method}.png")
    (out_dir / "report.md").write_text(markdown(summary, class_names, labels[test]))
    log(f"report written to {out_dir} in {summary['wall_minutes']:.1f} min")
    return summary


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def quartiles(values) -> dict[str, float]:
    q25, median, q75 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def summarise(results: dict[str, MethodResult], regression: dict, true: np.ndarray, class_names: tuple[str, ...],
              input_costs: dict[str, float]) -> dict:
    n_classes = len(class_names)
    out: dict = {"classification": {}, "regression": {}, "cost_us": {}}
    for method, result in results.items():
        matrices = [metrics.confusion_matrix(true, pred, n_classes) for pred in result.predictions]
        per_class = np.array([metrics.per_class_f1(m) for m in matrices])  # (folds, C)
        out["classification"][method] = {
            "macro_recall": quartiles([metrics.macro_recall(m) for m in matrices]),
            "macro_f1": quartiles([metrics.macro_f1(m) for m in matrices]),
            "per_class_f1_median": dict(zip(class_names, map(float, np.median(per_class, axis=0)))),
        }
        model_cost = float(np.median(result.cost_us))
        extra = input_costs["features"] if method.startswith("BRF") else input_costs["preprocess"]
        out["cost_us"][method] = {"inputs": extra, "model": model_cost, "total": extra + model_cost}
    for method, by_target in regression.items():
        for name, folds in by_target.items():
            if folds:
                out["regression"].setdefault(name, {})[method] = {
                    key: quartiles([fold[key] for fold in folds]) for key in ("r2", "rmse", "mape")}
    out["support"] = dict(zip(class_names, map(int, np.bincount(true, minlength=n_classes))))
    return out


def plot_confusion(true: np.ndarray, predictions: list, class_names: tuple[str, ...], method: str, path: Path) -> None:
    """Recall-normalised confusion matrix, median over folds; '[q25-q75]' under it when there are several folds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_classes = len(class_names)
    stacked = []
    for pred in predictions:
        matrix = metrics.confusion_matrix(true, pred, n_classes).astype(np.float64)
        stacked.append(matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1))
    q25, median, q75 = np.percentile(np.array(stacked), [25, 50, 75], axis=0)  # (C, C) each
    size = 0.75 * n_classes + 3
    fig, ax = plt.subplots(figsize=(size, size - 0.5))
    ax.imshow(median, cmap="Blues", vmin=0, vmax=1)
    for i in range(n_classes):
        for j in range(n_classes):
            text = f"{median[i, j]:.2f}"
            if len(predictions) > 1 and (q75[i, j] > 0 or median[i, j] > 0):
                text += f"\n[{q25[i, j]:.2f}-{q75[i, j]:.2f}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=5.5,
                    color="white" if median[i, j] > 0.5 else "black")
    ax.set_xticks(range(n_classes), class_names, rotation=90)
    ax.set_yticks(range(n_classes), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{method}: recall-normalised, median of {len(predictions)} folds")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown(summary: dict, class_names: tuple[str, ...], true: np.ndarray) -> str:
    methods = list(summary["classification"])
    options = summary["options"]
    lines = [f"# Baselines vs multiband model: {summary['data']}", "",
             f"Data: **{summary['provenance']}**. {summary['n_test']} test objects shared by "
             f"{options['n_folds']} folds (seed {options['seed']}); medians over folds, [25th-75th percentile].",
             f"Trees chosen on fold 0: {summary['trees']}. Neural models: {options['neural_minutes']} min of CPU "
             f"training per model and fold (not converged; see `training` in metrics.json). "
             f"Wall time {summary['wall_minutes']:.1f} min.", "",
             "## Macro recall and F1", "", "| Method | macro recall | macro F1 |", "|---|---|---|"]
    for method in methods:
        entry = summary["classification"][method]
        lines.append(f"| {method} | {_q(entry['macro_recall'])} | {_q(entry['macro_f1'])} |")
    lines += ["", "## Per-class F1 (median over folds)", "",
              "| Class | Support | " + " | ".join(methods) + " |", "|---|---" + "|---" * len(methods) + "|"]
    for name in class_names:
        values = " | ".join(f"{summary['classification'][m]['per_class_f1_median'][name]:.2f}" for m in methods)
        lines.append(f"| {name} | {summary['support'][name]} | {values} |")
    if summary["regression"]:
        lines += ["", "## Regression (test objects with a known value)", "",
                  "| Target | Model | R² | RMSE | MAPE (%) |", "|---|---|---|---|---|"]
        for name, by_model in summary["regression"].items():
            for model, entry in by_model.items():
                lines.append(f"| {name} | {model} | {_q(entry['r2'])} | {_q(entry['rmse'])} | "
                             f"{_q(entry['mape'], 1)} |")
    lines += ["", "## Per-object cost (µs, one thread)", "",
              "Inputs: light-curve feature extraction (forests) or mbfast.preprocess (neural models), whole light "
              "curve. Model: forest predict_proba / PyTorch forward on a batch of test objects, per object.", "",
              "| Method | inputs | model | total |", "|---|---|---|---|"]
    for method, cost in summary["cost_us"].items():
        lines.append(f"| {method} | {cost['inputs']:.0f} | {cost['model']:.0f} | {cost['total']:.0f} |")
    lines += ["", "Confusion matrices: " + ", ".join(f"[{m}](confusion_{m}.png)" for m in methods), ""]
    return "\n".join(lines)


def _q(entry: dict, digits: int = 3) -> str:
    return f"{entry['median']:.{digits}f} [{entry['q25']:.{digits}f}-{entry['q75']:.{digits}f}]"
