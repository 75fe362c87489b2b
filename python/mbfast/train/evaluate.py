"""`mbfast evaluate`: test-set report of a model file (paper §6): macro recall and F1, per-class F1, confusion
matrix, F1 against the number of rows seen (Fig. 10), class probabilities along one light curve (Fig. 9), and
R^2 / RMSE / MAPE of each regression target. Predictions use the PyTorch model in eval mode.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mbfast.train import metrics
from mbfast.train.training_set import DEFAULT_CACHE, load_training_set
from mbfast.train.export import load_torch_model
from mbfast.train.plots import MIN_TEXT_PT, new_figure, save_confusion_matrix, save_figure
from mbfast.train.loop import Predictions, predict, resolve_device


def object_indices(object_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Indices of `wanted` obj_ids in `object_ids`; raises naming the first unknown one."""
    position = {int(obj): index for index, obj in enumerate(object_ids)}
    missing = [int(obj) for obj in wanted if int(obj) not in position]
    if missing:
        raise ValueError(f"obj_id {missing[0]} of the split is not in the data ({len(missing)} missing)")
    return np.array([position[int(obj)] for obj in wanted], dtype=np.int64)


def evaluate(model_path: str | Path, out_dir: str | Path, dataset: str = "plasticc",
             split_path: str | Path | None = None, part: str = "test", object_id: int | None = None,
             cache_dir: str | Path | None = DEFAULT_CACHE, device: str = "auto", data_path: str | None = None,
             labels_path: str | None = None, survey: str | None = None) -> dict:
    """Write report.json and figures to out_dir for the `part` objects of split.npz (all usable objects when
    split_path is None). dataset "files" reads data_path + labels_path (mbfast.lightcurves.labelled.load_files). Returns the
    report dictionary."""
    device = resolve_device(device)
    model = load_torch_model(model_path, device)
    config = model.config
    names = tuple(target.name for target in config.regression_targets)
    data = load_training_set(dataset, config.n_skip, names, cache_dir, data_path=data_path,
                              labels_path=labels_path, survey=survey)
    if tuple(data.class_names) != config.class_names or tuple(data.bands) != config.bands:
        raise ValueError(f"{model_path}: classes/bands differ from dataset {dataset!r}")
    if split_path is None:
        objects = np.flatnonzero(data.usable)
    else:
        with np.load(split_path) as split:
            objects = object_indices(data.inputs.object_ids, split[part])
    predictions = predict(model, data.inputs, objects, device=device)
    return write_report(predictions, data.labels[objects], data.targets[objects], data.inputs.object_ids[objects],
                        config.class_names, names, out_dir, object_id,
                        extra={"model": str(model_path), "dataset": dataset, "part": part})


def write_report(predictions: Predictions, labels: np.ndarray, targets: np.ndarray, object_ids: np.ndarray,
                 class_names: tuple[str, ...], target_names: tuple[str, ...], out_dir: str | Path,
                 object_id: int | None = None, extra: dict | None = None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_classes = len(class_names)
    pred = predictions.final_probs.argmax(axis=1)
    matrix = metrics.confusion_matrix(labels, pred, n_classes)
    counts = np.diff(predictions.step_offsets)
    steps = np.unique(np.clip(np.round(np.geomspace(1, max(int(counts.max()), 1), 30)), 1, None).astype(int))
    f1_steps, n_at_step = metrics.f1_by_step(predictions.step_probs, predictions.step_offsets, labels, steps,
                                            n_classes)
    report = {
        **(extra or {}),
        "n_objects": int(len(labels)),
        "accuracy": metrics.accuracy(matrix),
        "macro_recall": metrics.macro_recall(matrix),
        "macro_f1": metrics.macro_f1(matrix),
        "per_class_f1": dict(zip(class_names, map(float, metrics.per_class_f1(matrix)))),
        "per_class_support": dict(zip(class_names, map(int, matrix.sum(axis=1)))),
        "confusion_matrix": matrix.tolist(),
        "f1_by_rows": {"rows": steps.tolist(), "macro_f1": [None if np.isnan(v) else float(v) for v in f1_steps],
                       "n_objects": n_at_step.tolist()},
        "regression": {name: metrics.regression_metrics(targets[:, index], predictions.regression[:, index])
                       for index, name in enumerate(target_names)},
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))

    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    save_confusion_matrix(normalised, class_names, f"recall (%), macro F1 {report['macro_f1']:.3f}",
                          out_dir / "confusion_matrix.png")

    fig, ax = new_figure(720, 480)
    ax.plot(steps, f1_steps, marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("window rows seen (central steps)")
    ax.set_ylabel("macro F1 (objects with at least that many rows)")
    fig.tight_layout()
    save_figure(fig, out_dir / "f1_vs_rows.png")

    if object_id is None:  # the longest correctly classified light curve, else the longest
        correct = np.flatnonzero(pred == labels)
        pool = correct if len(correct) else np.arange(len(labels))
        chosen = int(pool[np.argmax(counts[pool])])
    else:
        matches = np.flatnonzero(object_ids == object_id)
        if not len(matches):
            raise ValueError(f"obj_id {object_id} is not among the evaluated objects")
        chosen = int(matches[0])
    probs = predictions.step_probs[predictions.step_offsets[chosen]:predictions.step_offsets[chosen + 1]]
    fig, ax = new_figure(840, 480)
    top = np.argsort(probs.max(axis=0))[::-1][:5]
    for c in top:
        ax.plot(np.arange(1, len(probs) + 1), probs[:, c], label=class_names[c],
                linewidth=2.5 if c == labels[chosen] else 1.0)
    ax.set_xlabel("window rows seen")
    ax.set_ylabel("probability")
    ax.set_title(f"obj_id {int(object_ids[chosen])}, true class {class_names[labels[chosen]]}")
    ax.legend(fontsize=MIN_TEXT_PT)
    fig.tight_layout()
    save_figure(fig, out_dir / "probabilities_one_object.png")
    return report
