"""Early classification (paper Fig. 10): every method scored on the same light curves cut to their first n
observations, so the multiband model and the feature forests are compared on identical information.

NumPy only: a method is a function from LightCurves to predicted class indices.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mbfast.train.metrics import confusion_matrix, macro_f1
from mbfast.lightcurves.table import LightCurves

Classifier = Callable[[LightCurves], np.ndarray]  # curves -> int64 (K,) predicted class of each object


def first_observations(curves: LightCurves, n: int) -> LightCurves:
    """Each object's first n observations (in time order; all of them when it has fewer)."""
    position = np.arange(len(curves)) - curves.offsets[curves.owner]  # (N,) index inside its object
    return curves.keep_rows(position < n)


def engine_classes(engine: Any, curves: LightCurves, fallback: int) -> np.ndarray:
    """int64 (K,) mbfast.Engine.classify's class of each object; `fallback` (e.g. the commonest training class)
    for an object without a window row yet, which the engine leaves unclassified."""
    index = np.asarray(engine.classify(curves).class_index).copy()
    index[index < 0] = fallback
    return index


def f1_by_prefix(classify: Classifier, curves: LightCurves, labels: np.ndarray, n_classes: int,
                 prefixes: tuple[int, ...]) -> list[float]:
    """Macro F1 of `classify` on `curves` cut to each n of `prefixes` (every object counts at every n)."""
    return [macro_f1(confusion_matrix(labels, classify(first_observations(curves, n)), n_classes))
            for n in prefixes]
