"""Classification and regression metrics of the evaluation report (paper §5-6), NumPy only.

Averages follow scikit-learn's conventions so numbers compare with the literature: macro averages run over the
classes present in the true or the predicted labels; an undefined precision or recall counts as 0 in F1.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 (C, C): row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return matrix


def _present(matrix: np.ndarray) -> np.ndarray:
    return (matrix.sum(axis=1) > 0) | (matrix.sum(axis=0) > 0)


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """float64 (C,), 0 where a class has no true member."""
    support = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), support, out=np.zeros(len(matrix)), where=support > 0)


def per_class_precision(matrix: np.ndarray) -> np.ndarray:
    """float64 (C,), 0 where a class is never predicted."""
    predicted = matrix.sum(axis=0)
    return np.divide(np.diag(matrix), predicted, out=np.zeros(len(matrix)), where=predicted > 0)


def per_class_f1(matrix: np.ndarray) -> np.ndarray:
    """float64 (C,) 2PR / (P + R), 0 where P + R = 0."""
    precision, recall = per_class_precision(matrix), per_class_recall(matrix)
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros(len(matrix)), where=total > 0)


def macro_recall(matrix: np.ndarray) -> float:
    return float(per_class_recall(matrix)[_present(matrix)].mean())


def macro_f1(matrix: np.ndarray) -> float:
    return float(per_class_f1(matrix)[_present(matrix)].mean())


def accuracy(matrix: np.ndarray) -> float:
    return float(np.trace(matrix) / max(matrix.sum(), 1))


def regression_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2, RMSE and MAPE (%, over true != 0) on the finite true values; NaN where undefined."""
    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    known = np.isfinite(true)
    true, pred = true[known], pred[known]
    if len(true) == 0:
        return {"n": 0, "r2": float("nan"), "rmse": float("nan"), "mape": float("nan")}
    residual = ((true - pred) ** 2).sum()
    total = ((true - true.mean()) ** 2).sum()
    nonzero = true != 0
    return {
        "n": int(len(true)),
        "r2": float(1.0 - residual / total) if total > 0 else float("nan"),
        "rmse": float(np.sqrt(residual / len(true))),
        "mape": float(100.0 * np.mean(np.abs((true[nonzero] - pred[nonzero]) / true[nonzero])))
        if nonzero.any() else float("nan"),
    }


def f1_by_step(step_probs: np.ndarray, step_offsets: np.ndarray, labels: np.ndarray, steps: np.ndarray,
               n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Macro F1 of the prediction after n rows, over the objects with >= n rows (paper Fig. 10).

    step_probs (M, C) and step_offsets (K + 1,) as mbfast.train.loop.Predictions; labels (K,); steps (S,)
    1-based row counts. Returns (macro F1 (S,), objects counted (S,)); F1 is NaN where no object qualifies.
    """
    counts = np.diff(step_offsets)
    scores = np.full(len(steps), np.nan)
    n_objects = np.zeros(len(steps), dtype=np.int64)
    for index, n in enumerate(steps):
        qualified = np.flatnonzero(counts >= n)
        n_objects[index] = len(qualified)
        if len(qualified):
            pred = step_probs[step_offsets[qualified] + n - 1].argmax(axis=1)
            scores[index] = macro_f1(confusion_matrix(labels[qualified], pred, n_classes))
    return scores, n_objects
