"""`mbfast report`: the paper's comparison (§5, Tables 5-10) on one data set. Every method is trained and tested on
the same stratified folds (mbfast.train.training_set.stratified_split: one shared test set, k train/validation splits):
BRF (class-capped training set), BRF_all (uncapped), the concatenation baseline (Base), the multiband model
(Multi, classification only) and the multi-task model with the regression targets (MTL), plus a random-forest
regressor.

Multi and MTL follow the recipe of the shipped model (mbfast.train.recipe: CONFIG, OPTIONS) with a wall-clock budget
per fold. MTL may instead reuse finished runs of that recipe (`multi_runs`): each run's split.npz must be
the report's fold (check_run_split), so nothing is retrained and nothing is compared on different objects.

Writes report.md, metrics.json, predictions.npz and one confusion-matrix PNG per method (median over folds, with the
25th-75th percentile range where there are several folds). A small-budget run, not the paper's: short tree grid
chosen on the first fold only, neural models stopped by early stopping or by a wall-clock budget (metrics.json says which).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mbfast.lightcurves.labelled import LabelledSet
from mbfast.model.preprocessed import ModelInputs
from mbfast.train import metrics, plots
from mbfast.train.training_set import TrainingSet, cap_per_class, load_inputs, save_inputs, stratified_split
from mbfast.train.plots import save_confusion_matrix

# observation counts at which every method is scored on the same truncated test curves (paper Fig. 10)
PREFIXES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50)
SIMULATED = {"plasticc": "SIMULATED (PLAsTiCC, LSST ugrizy)",
             "yse": "REAL (YSE DR1 spectroscopic subset, PS1 griz + ZTF gr)"}


@dataclass(frozen=True)
class ReportOptions:
    data: str = "plasticc"
    n_folds: int = 3                     # the split's k: validation chunk f of k + 1 (stratified_split)
    folds: tuple[int, ...] | None = None  # which folds to run (None: all k; with multi_runs: the runs' folds)
    seed: int = 0
    max_per_class: int | None = 500      # the capped training set of BRF (BRF_all has no cap)
    trees: tuple[int, ...] = (100, 250, 500)
    regression_trees: tuple[int, ...] = (100, 250)
    multi_minutes: float = 15.0          # Multi's wall-clock budget per fold (early stopping may end it sooner)
    mtl_minutes: float = 15.0            # MTL's, when it is trained here (not reused)
    base_minutes: float = 10.0           # Base's, checked after each epoch
    base_epochs: int = 500               # Base's epoch cap (the budget or patience normally ends it first)
    base_patience: int = 10              # Base: epochs without a better validation macro recall
    batch_size: int | None = None        # None: the recipe's (mbfast.train.recipe)
    steps_wait: int | None = None        # None: the recipe's band-only batches before the central model (§3.6)
    n_skip: int = 2                      # the recipe's
    lr: float | None = None              # None: the recipe's learning rate (Multi and MTL)
    transfer_from: str | None = None     # Multi and MTL start from this model's transferable weights
                                         # (mbfast.train.loop.transfer_weights), e.g. "lsst" for YSE
    n_jobs: int = 1                      # threads for forests and torch
    methods: tuple[str, ...] = ("BRF", "BRF_all", "Base", "Multi", "MTL")
    multi_runs: tuple[str, ...] = ()     # finished MTL runs of the recipe to reuse, one per fold
    cost_objects: int = 300              # test objects timed for the per-object cost


@dataclass
class MethodResult:
    predictions: list = field(default_factory=list)   # per fold: int64 (K_test,) predicted class
    prefix_f1: list = field(default_factory=list)     # per fold: macro F1 on the test curves cut to PREFIXES
    cost_us: list = field(default_factory=list)       # per fold: {"model": µs per object, ...}
    notes: list = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------

def load_labelled(name: str) -> LabelledSet:
    from mbfast.train import datasets

    loaders = {"plasticc": datasets.load_plasticc, "yse": datasets.load_yse}
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(loaders)}")
    return loaders[name]()


def preprocess_cached(labelled: LabelledSet, path: Path, n_skip: int) -> ModelInputs:
    from mbfast.train.preprocess import preprocess

    if path.exists():
        return load_inputs(path)
    inputs = preprocess(labelled.curves, n_skip)
    save_inputs(path, inputs)
    return inputs


def features_cached(labelled: LabelledSet, path: Path):
    from mbfast.train.baseline_classifiers.features import FeatureSet, extract_features

    if path.exists():
        with np.load(path) as stored:
            return FeatureSet(stored["values"], tuple(stored["names"].tolist()), int(stored["n_colours"]))
    features = extract_features(labelled.curves)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, values=features.values, names=np.array(features.names), n_colours=features.n_colours)
    return features


def preprocess_cost_us(labelled: LabelledSet, objects: np.ndarray, n_skip: int) -> float:
    """mbfast.train.preprocess on `objects` in one call, one thread, per object, µs (the neural models' input cost)."""
    from mbfast.train.preprocess import preprocess

    curves = labelled.curves.select(objects)
    preprocess(curves, n_skip, num_threads=1)  # compile / warm up
    start = time.perf_counter()
    preprocess(curves, n_skip, num_threads=1)
    return (time.perf_counter() - start) / len(objects) * 1e6


def feature_cost_us(labelled: LabelledSet, objects: np.ndarray) -> float:
    """light-curve feature extraction, object by object, one thread, per object, µs."""
    from mbfast.train.baseline_classifiers.features import FeatureExtractor

    extractor = FeatureExtractor(labelled.curves.bands)
    curves = labelled.curves.select(objects)
    start = time.perf_counter()
    extractor.transform(curves)
    return (time.perf_counter() - start) / len(objects) * 1e6


# ------------------------------------------------------------------------------------------------------------
# Methods
# ------------------------------------------------------------------------------------------------------------

def recipe(options: ReportOptions, fold: int, minutes: float, with_targets: bool):
    """(config overrides, TrainOptions) of the default model's recipe on this report's fold, budget and data."""
    from mbfast.train.loop import TrainOptions
    from mbfast.train.recipe import CONFIG, OPTIONS

    raw = {**OPTIONS.__dict__, "dataset": options.data, "n_folds": options.n_folds, "fold": fold,
           "seed": options.seed, "max_minutes": minutes, "device": "cpu", "targets": None if with_targets else ()}
    if options.batch_size is not None:
        raw["batch_size"] = options.batch_size
    if options.steps_wait is not None:
        raw["steps_wait"] = options.steps_wait
    if options.lr is not None:
        raw["lr"] = options.lr
    raw["transfer_from"] = options.transfer_from
    return {**CONFIG, "n_skip": options.n_skip}, TrainOptions.from_dict(raw)


def train_multiband(data: TrainingSet, options: ReportOptions, fold: int, run_dir: Path, with_targets: bool,
                    minutes: float) -> Path:
    """Multi (classification only) or MTL (with the data set's regression targets): the recipe, trained on
    this report's fold (same usable mask, seed and n_folds, so the trainer's split is ours). Returns model.mbf."""
    from mbfast.train.loop import train

    if not with_targets:
        data = TrainingSet(data.inputs, data.labels, data.class_names, data.bands, (),
                            np.zeros((len(data.labels), 0)), data.usable, data.curves, data.survey)
    overrides, train_options = recipe(options, fold, minutes, with_targets)
    return train(run_dir, overrides, train_options, progress=False, data=data)


def check_run_split(run_dir: str | Path, object_ids: np.ndarray, train: np.ndarray, val: np.ndarray,
                    test: np.ndarray) -> None:
    """Raise ValueError unless run_dir/split.npz holds exactly the obj_ids of this fold's train, val and test.

    object_ids: int64 (K,) of the report's inputs; train, val, test: indices into them (stratified_split).
    """
    path = Path(run_dir) / "split.npz"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no split.npz (not a finished training run)")
    with np.load(path) as split:
        stored = {part: np.sort(split[part]) for part in ("train", "val", "test")}
    for part, indices in (("test", test), ("train", train), ("val", val)):
        ours = np.sort(object_ids[indices])
        if not np.array_equal(stored[part], ours):
            common = len(np.intersect1d(stored[part], ours))
            raise ValueError(
                f"{run_dir}: its {part} set ({len(stored[part])} objects) is not the report's ({len(ours)} objects, "
                f"{common} in common); train the run with the report's data, seed and n_folds, or pass the report "
                f"the run's (see {Path(run_dir) / 'options.json'})")


def reused_runs(options: ReportOptions, object_ids: np.ndarray, labels: np.ndarray, usable: np.ndarray
                ) -> dict[int, Path]:
    """fold -> run folder of each options.multi_runs entry, after checking data, recipe, split and model file."""
    runs: dict[int, Path] = {}
    for run in map(Path, options.multi_runs):
        run_options = json.loads((run / "options.json").read_text())
        config = json.loads((run / "config.json").read_text())
        problems = [f"{name} {run_options[name]!r} != report's {ours!r}" for name, ours in
                    (("dataset", options.data), ("seed", options.seed), ("n_folds", options.n_folds))
                    if run_options[name] != ours]
        if config["n_skip"] != options.n_skip:
            problems.append(f"n_skip {config['n_skip']} != report's {options.n_skip}")
        if not config["regression_targets"]:
            problems.append("no regression target (not an MTL run)")
        if not (run / "model.mbf").is_file() or not (run / "summary.json").is_file():
            problems.append("no model.mbf / summary.json (still training?)")
        if problems:
            raise ValueError(f"{run}: cannot stand in for MTL: " + "; ".join(problems))
        fold = int(run_options["fold"])
        if fold in runs:
            raise ValueError(f"{run} and {runs[fold]} are both fold {fold}")
        check_run_split(run, object_ids, *stratified_split(labels, usable, options.seed, options.n_folds, fold))
        runs[fold] = run
    return runs


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


def engine_cost_us(model_path: Path, labelled: LabelledSet, objects: np.ndarray) -> dict[str, float]:
    """The C++ engine on one thread, µs per object: `classify` (whole light curve from a fresh state, inputs
    included) and `step` (one new observation, the last of each object, onto the state of all earlier ones)."""
    from mbfast import Engine

    curves = labelled.curves.select(objects)
    engine = Engine.load(model_path, num_threads=1)
    engine.classify(curves)  # warm up
    start = time.perf_counter()
    engine.classify(curves)
    classify = (time.perf_counter() - start) / len(objects) * 1e6
    # rows in (object, t, band) order; each object's last row is held back and timed as one step
    order = np.lexsort((curves.band, curves.t, curves.obj_id))
    obj_id, band, t, mag, err = (column[order] for column in (curves.obj_id, curves.band, curves.t, curves.mag,
                                                               curves.err))
    last = np.r_[obj_id[1:] != obj_id[:-1], True]
    earlier = ~last
    engine.step(obj_id[earlier], band[earlier], t[earlier], mag[earlier], err[earlier], errors="skip")
    start = time.perf_counter()
    engine.step(obj_id[last], band[last], t[last], mag[last], err[last], errors="skip")
    step = (time.perf_counter() - start) / int(last.sum()) * 1e6
    return {"model": classify, "step": step}


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------

def run_report(options: ReportOptions, out_dir: str | Path, log=print) -> dict:
    """Train and evaluate every method on the chosen folds; write report.md, metrics.json and PNGs."""
    import torch

    from mbfast.model.config import ModelConfig
    from mbfast.train.export import load_torch_model
    from mbfast.engine import Engine
    from mbfast.train.baseline_classifiers.features import extract_features
    from mbfast.train.prefix import engine_classes, f1_by_prefix
    from mbfast.train.loop import predict
    from mbfast.train.baseline_classifiers.brf import fit_brf, fit_rf_regressor, predict_cost_us
    from mbfast.train.baseline_classifiers.concat import predict_logits, train_concat

    torch.set_num_threads(options.n_jobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    labelled = load_labelled(options.data)
    cache = out_dir / "cache"      # keyed by the curves' fingerprint: a rerun on other data never reads stale files
    fingerprint = labelled.curves.fingerprint()
    inputs = preprocess_cached(labelled, cache / f"inputs_nskip{options.n_skip}_{fingerprint}.npz", options.n_skip)
    labels, class_names = labelled.labels, tuple(labelled.class_names)
    n_classes = len(class_names)
    target_names = tuple(labelled.targets)
    targets = np.stack([labelled.targets[name] for name in target_names], axis=1)  # (K, G)
    # objects the neural models can classify (>= 1 window row) and that are labelled: the same for every method
    usable = (inputs.n_rows > 0) & (labels >= 0)
    runs = reused_runs(options, inputs.object_ids, labels, usable) if "MTL" in options.methods else {}
    folds = tuple(sorted(runs)) if runs else (options.folds or tuple(range(options.n_folds)))
    if runs and options.folds is not None and tuple(sorted(options.folds)) != folds:
        raise ValueError(f"folds {options.folds} but the reused MTL runs are folds {folds}")
    features = features_cached(labelled, cache / f"features_{fingerprint}.npz")
    data = TrainingSet(inputs, labels, class_names, tuple(labelled.curves.bands), target_names, targets, usable,
                        labelled.curves, labelled.survey)
    log(f"{options.data}: {labelled.curves.n_objects} objects, {int(usable.sum())} usable, "
        f"{features.values.shape[1]} features; folds {folds} of {options.n_folds}; reused MTL runs "
        f"{[str(runs[f]) for f in folds] if runs else 'none'}; {time.perf_counter() - started:.0f} s")

    results = {method: MethodResult() for method in options.methods}
    regression: dict[str, dict[str, list]] = {"RF": {name: [] for name in target_names},
                                               "MTL": {name: [] for name in target_names}}
    chosen_trees: dict[str, int] = {}
    grid_scores: dict[str, dict] = {}
    training_logs: dict[str, list] = {"Base": [], "Multi": [], "MTL": []}
    test_reference = None
    for fold in folds:
        train, val, test = stratified_split(labels, usable, options.seed, options.n_folds, fold)
        test_reference = test if test_reference is None else test_reference
        assert np.array_equal(test, test_reference), "folds must share the test set"
        train_val = np.sort(np.concatenate([train, val]))  # forests need no validation set (§5)
        capped = cap_per_class(train_val, labels, options.max_per_class, options.seed + fold)
        timed = np.sort(test[np.random.default_rng(options.seed).permutation(len(test))[:options.cost_objects]])
        test_curves = labelled.curves.select(test)
        fallback = int(np.bincount(labels[train], minlength=n_classes).argmax())  # before any window row
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
            results[method].prefix_f1.append(f1_by_prefix(
                lambda curves, forest=fitted.model: forest.predict(extract_features(curves).values),
                test_curves, labels[test], n_classes, PREFIXES))
            results[method].cost_us.append({"model": predict_cost_us(fitted.model, features.values[timed])})
            matrix = metrics.confusion_matrix(labels[test], results[method].predictions[-1], n_classes)
            log(f"  {method}: {fitted.n_trees} trees, macro recall {metrics.macro_recall(matrix):.3f}; "
                f"{time.perf_counter() - started:.0f} s")

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
            overrides, train_options = recipe(options, fold, options.base_minutes, False)
            config = ModelConfig(survey=options.data, bands=data.bands, class_names=class_names, **overrides)
            model, train_log = train_concat(config, inputs, labels, train, val, epochs=options.base_epochs,
                                            batch_size=train_options.batch_size, seed=options.seed + fold,
                                            patience=options.base_patience, max_seconds=60 * options.base_minutes)
            training_logs["Base"].append({"epochs": train_log.epochs, "best_epoch": train_log.best_epoch,
                                          "training_minutes": train_log.seconds / 60, "stopped": train_log.stopped,
                                          "best_val_macro_recall": train_log.best_val_recall})
            results["Base"].predictions.append(predict_logits(model, inputs, test).argmax(axis=1))
            results["Base"].cost_us.append({"model": neural_cost_us(
                lambda objects: predict_logits(model, inputs, objects), timed)})
            log(f"  Base: {train_log.epochs} epochs (best {train_log.best_epoch}, {train_log.stopped}); "
                f"{time.perf_counter() - started:.0f} s")

        for method, with_targets in (("Multi", False), ("MTL", True)):
            if method not in results:
                continue
            if method == "MTL" and runs:
                run_dir = runs[fold]
                model_path = run_dir / "model.mbf"
            else:
                run_dir = out_dir / "runs" / f"{method}_fold{fold}"
                minutes = options.multi_minutes if method == "Multi" else options.mtl_minutes
                model_path = train_multiband(data, options, fold, run_dir, with_targets, minutes)
                check_run_split(run_dir, inputs.object_ids, train, val, test)
            summary = json.loads((run_dir / "summary.json").read_text())
            summary["run"] = str(run_dir)
            summary["reused"] = method == "MTL" and bool(runs)
            training_logs[method].append(summary)
            model = load_torch_model(model_path)
            predictions = predict(model, inputs, test)
            results[method].predictions.append(predictions.final_probs.argmax(axis=1))
            engine = Engine.load(model_path, num_threads=options.n_jobs)
            results[method].prefix_f1.append(f1_by_prefix(
                lambda curves, engine=engine: engine_classes(engine, curves, fallback),
                test_curves, labels[test], n_classes, PREFIXES))
            results[method].cost_us.append(engine_cost_us(model_path, labelled, timed))
            if with_targets:
                names = [target.name for target in model.config.regression_targets]
                for index, name in enumerate(target_names):
                    regression["MTL"][name].append(metrics.regression_metrics(
                        targets[test, index], predictions.regression[:, names.index(name)]))
            log(f"  {method}: {summary['epochs']} epochs (best {summary['best_epoch']}, {summary['stopped']}, "
                f"{summary['training_minutes']:.1f} min){' reused ' + str(run_dir) if summary['reused'] else ''}; "
                f"{time.perf_counter() - started:.0f} s")

    test = test_reference
    input_costs = {"features": feature_cost_us(labelled, timed), "preprocess": preprocess_cost_us(
        labelled, timed, options.n_skip)}
    summary = summarise(results, regression, labels[test], class_names, input_costs)
    summary.update(data=options.data, provenance=SIMULATED[options.data], options=_jsonable(vars(options)),
                   folds=list(folds), n_test=int(len(test)), trees=chosen_trees, grid_scores=_jsonable(grid_scores),
                   training=training_logs, wall_minutes=(time.perf_counter() - started) / 60)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
    # what the tables and figures are computed from: test obj_ids, true labels, each method's per-fold predictions
    np.savez(out_dir / "predictions.npz", obj_id=inputs.object_ids[test], true=labels[test],
             **{method: np.array(result.predictions) for method, result in results.items()})
    for method, result in results.items():
        plot_confusion(labels[test], result.predictions, class_names, method,
                       out_dir / f"confusion_{method}.png")
    plot_prefix(summary, out_dir / "f1_by_n_obs.png")
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
        if result.prefix_f1:
            by_fold = np.array(result.prefix_f1)  # (folds, len(PREFIXES))
            out["classification"][method]["f1_by_n_obs"] = {
                n: quartiles(by_fold[:, k]) for k, n in enumerate(PREFIXES)}
        model_cost = float(np.median([cost["model"] for cost in result.cost_us]))
        if method.startswith("BRF"):    # features of the whole curve, then the forest
            extra, how = input_costs["features"], "light-curve features + forest predict_proba"
        elif method == "Base":          # mbfast.train.preprocess of the whole curve, then the PyTorch forward
            extra, how = input_costs["preprocess"], "mbfast.train.preprocess + PyTorch forward"
        else:                           # Engine.classify preprocesses inside
            extra, how = 0.0, "Engine.classify (preprocessing inside)"
        total = extra + model_cost
        # a new observation: the forest and Base recompute the whole curve; the engine applies one step
        steps = [cost["step"] for cost in result.cost_us if "step" in cost]
        out["cost_us"][method] = {"inputs": extra, "model": model_cost, "total": total, "how": how,
                                  "new_observation": float(np.median(steps)) if steps else total}
    for method, by_target in regression.items():
        for name, folds in by_target.items():
            if folds:
                out["regression"].setdefault(name, {})[method] = {
                    key: quartiles([fold[key] for fold in folds]) for key in ("r2", "rmse", "mape")}
    out["support"] = dict(zip(class_names, map(int, np.bincount(true, minlength=n_classes))))
    return out


def plot_prefix(summary: dict, path: Path) -> None:
    """Macro F1 against the number of observations (paper Fig. 10): median over folds, quartile band."""
    entries = {method: entry["f1_by_n_obs"] for method, entry in summary["classification"].items()
               if "f1_by_n_obs" in entry}
    if not entries:
        return
    fig, ax = plots.new_figure(720, 420)
    for method, by_n in entries.items():
        n = np.array(list(by_n), dtype=float)
        median = np.array([by_n[k]["median"] for k in by_n])
        ax.plot(n, median, marker="o", markersize=3, label=method)
        ax.fill_between(n, [by_n[k]["q25"] for k in by_n], [by_n[k]["q75"] for k in by_n], alpha=0.2)
    ax.set_xscale("log")
    ax.set_xticks(PREFIXES, [str(n) for n in PREFIXES])
    ax.minorticks_off()
    ax.set_xlabel("observations seen (first n of each test light curve)", fontsize=plots.LABEL_PT)
    ax.set_ylabel("macro F1", fontsize=plots.LABEL_PT)
    ax.set_title(f"Early classification, {summary['data']} test set: median and quartiles over folds\n"
                 f"(the multiband model classifies from the 3rd observation in a band)", fontsize=plots.LABEL_PT)
    ax.tick_params(labelsize=plots.LABEL_PT)
    ax.legend(fontsize=plots.LABEL_PT)
    fig.tight_layout()
    plots.save_figure(fig, path)


def plot_confusion(true: np.ndarray, predictions: list, class_names: tuple[str, ...], method: str, path: Path) -> None:
    """Recall-normalised confusion matrix, median over folds; the 25th-75th percentile range under each cell when
    there are several folds."""
    n_classes = len(class_names)
    stacked = []
    for pred in predictions:
        matrix = metrics.confusion_matrix(true, pred, n_classes).astype(np.float64)
        stacked.append(matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1))
    q25, median, q75 = np.percentile(np.array(stacked), [25, 50, 75], axis=0)  # (C, C) each

    several = len(predictions) > 1
    title = f"{method}: recall (%), median of {len(predictions)} folds" + (" and quartiles" if several else "")
    save_confusion_matrix(median, class_names, title, path, quartiles=(q25, q75) if several else None)


def markdown(summary: dict, class_names: tuple[str, ...], true: np.ndarray) -> str:
    methods = list(summary["classification"])
    options = summary["options"]
    training = "; ".join(
        f"{method}: " + ", ".join(f"{entry['training_minutes']:.1f} min / {entry['epochs']} epochs "
                                  f"({'early-stopped' if entry['stopped'].startswith('early') else entry['stopped']})"
                                  for entry in entries)
        for method, entries in summary["training"].items() if entries)
    lines = [f"# Baselines vs multiband model: {summary['data']}", "",
             f"Data: **{summary['provenance']}**. {summary['n_test']} test objects shared by folds "
             f"{summary['folds']} of {options['n_folds']} (seed {options['seed']}); medians over folds, "
             f"[25th-75th percentile].",
             f"Trees chosen on the first fold: {summary['trees']}. Budgets per fold: Multi {options['multi_minutes']} "
             f"min, MTL {options['mtl_minutes']} min (unless reused: {options['multi_runs'] or 'none'}), Base "
             f"{options['base_minutes']} min. Multi and MTL start from "
             f"{options.get('transfer_from') or 'random weights'} (lr {options.get('lr') or 'of the recipe'}). "
             f"Training per fold: {training}. "
             f"Wall time {summary['wall_minutes']:.1f} min.", "",
             "## Macro recall and F1", "", "| Method | macro recall | macro F1 |", "|---|---|---|"]
    for method in methods:
        entry = summary["classification"][method]
        lines.append(f"| {method} | {_q(entry['macro_recall'])} | {_q(entry['macro_f1'])} |")
    prefix_methods = [m for m in methods if "f1_by_n_obs" in summary["classification"][m]]
    if prefix_methods:
        lines += ["", "## Macro F1 against observations seen (paper Fig. 10)", "",
                  "Every method on the same test curves cut to their first n observations; an object without a "
                  "window row yet counts as the commonest training class for the multiband model. "
                  "[figure](f1_by_n_obs.png)", "",
                  "| n | " + " | ".join(prefix_methods) + " |", "|---" + "|---" * len(prefix_methods) + "|"]
        for n in PREFIXES:
            lines.append(f"| {n} | " + " | ".join(
                _q(summary["classification"][m]["f1_by_n_obs"][n]) for m in prefix_methods) + " |")
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
              "Whole curve: inputs (light-curve features or mbfast.train.preprocess) + model, per object, on a batch of "
              "test objects. New observation: what it costs to update one object's class after one more "
              "observation (forests and Base recompute the whole curve; the engine applies one Engine.step).", "",
              "| Method | how | inputs | model | whole curve | new observation |", "|---|---|---|---|---|---|"]
    for method, cost in summary["cost_us"].items():
        lines.append(f"| {method} | {cost['how']} | {cost['inputs']:.0f} | {cost['model']:.0f} | "
                     f"{cost['total']:.0f} | {cost['new_observation']:.0f} |")
    lines += ["", "Confusion matrices: " + ", ".join(f"[{m}](confusion_{m}.png)" for m in methods), ""]
    return "\n".join(lines)


def _q(entry: dict, digits: int = 3) -> str:
    return f"{entry['median']:.{digits}f} [{entry['q25']:.{digits}f}-{entry['q75']:.{digits}f}]"
