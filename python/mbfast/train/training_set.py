"""TrainingSet: a labelled data set preprocessed for training and evaluation (cached), its stratified splits and
z-scored targets.

NumPy and Numba only. Objects with no window row (no band with >= 3 observations) cannot be classified by the
model and are left out of every split; their count is reported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mbfast.lightcurves.table import LightCurves
from mbfast.model.config import RegressionTarget
from mbfast.model.preprocessed import ModelInputs
from mbfast.train.datasets import FILES, load_labelled
from mbfast.train.preprocess import preprocess as _preprocess

Preprocess = Callable[[LightCurves, int], ModelInputs]


@dataclass(frozen=True)
class TrainingSet:
    inputs: ModelInputs
    labels: np.ndarray                 # int64 (K,)
    class_names: tuple[str, ...]
    bands: tuple[str, ...]
    target_names: tuple[str, ...]
    targets: np.ndarray                # float64 (K, G) physical units, NaN where unknown
    usable: np.ndarray                 # bool (K,) object has >= 1 window row
    curves: LightCurves | None = None  # the light curves behind `inputs`, same object order (for augmentation)
    survey: str = "plasticc"           # what the model's bands are (mbfast.lightcurves.surveys), stored in its config


# preprocessed named data sets are cached outside the working directory (nothing is written there unasked)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mbfast" / "inputs"


def preprocess_curves(curves: LightCurves, n_skip: int) -> ModelInputs:
    return _preprocess(curves, n_skip)


def load_training_set(dataset: str, n_skip: int, target_names: tuple[str, ...] | None = None,
                       cache_dir: str | Path | None = None, preprocess: Preprocess = _preprocess,
                       data_path: str | Path | None = None, labels_path: str | Path | None = None,
                       survey: str | None = None) -> TrainingSet:
    """Load `dataset` (see load_labelled) and preprocess it, caching ModelInputs of named sets as .npz."""
    labelled = load_labelled(dataset, data_path, labels_path, survey)
    if dataset == FILES:
        cache_dir = None
    names = tuple(labelled.targets) if target_names is None else tuple(target_names)
    unknown = [name for name in names if name not in labelled.targets]
    if unknown:
        raise ValueError(f"dataset {dataset!r} has no targets {unknown}; it has {sorted(labelled.targets)}")
    cache = None if cache_dir is None else \
        Path(cache_dir) / f"{dataset}_nskip{n_skip}_{labelled.curves.fingerprint()}.npz"
    if cache is not None and cache.exists():
        inputs = load_inputs(cache)
    else:
        inputs = preprocess(labelled.curves, n_skip)
        if cache is not None:
            save_inputs(cache, inputs)
    targets = np.stack([labelled.targets[name] for name in names], axis=1) if names else \
        np.zeros((labelled.curves.n_objects, 0))
    usable = (inputs.n_rows > 0) & (labelled.labels >= 0)
    return TrainingSet(inputs, labelled.labels, tuple(labelled.class_names), tuple(labelled.curves.bands), names,
                        targets.astype(np.float64), usable, labelled.curves, labelled.survey)


def save_inputs(path: Path, inputs: ModelInputs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: value for name, value in vars(inputs).items() if name != "n_duplicates"}
    np.savez(path, n_duplicates=np.array(inputs.n_duplicates), **arrays)


def load_inputs(path: Path) -> ModelInputs:
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["n_duplicates"] = int(arrays["n_duplicates"])
    return ModelInputs(**arrays)


def stratified_split(labels: np.ndarray, usable: np.ndarray, seed: int, n_folds: int = 7, fold: int = 0,
                     test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) object indices, stratified by class (paper §5: 70/10/20, folds share one test set).

    The test set depends on `seed` only. The rest is cut per class into n_folds + 1 chunks (1/8 of 80 % = 10 %
    with 7 folds); fold f validates on chunk f and trains on the other chunks plus chunk n_folds, so folds
    share the test set and differ in validation set.
    """
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds}), got {fold}")
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for label in np.unique(labels[usable]):
        members = rng.permutation(np.flatnonzero((labels == label) & usable))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        chunks = np.array_split(members[n_test:], n_folds + 1)
        val.append(chunks[fold])
        train += [chunk for index, chunk in enumerate(chunks) if index != fold]
    return tuple(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, val, test))


def cap_per_class(indices: np.ndarray, labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """At most max_per_class objects of each class from `indices` (the authors' max_l), chosen at random."""
    if max_per_class is None:
        return indices
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(indices[labels[indices] == label])[:max_per_class]
            for label in np.unique(labels[indices])]
    return np.sort(np.concatenate(kept))


def fit_targets(names: tuple[str, ...], targets: np.ndarray, train: np.ndarray,
                weights: tuple[float, ...] | None = None) -> tuple[RegressionTarget, ...]:
    """Scaler of each target: mean and std of its known training values (eq. 6's z-scoring)."""
    out = []
    for index, name in enumerate(names):
        known = targets[train, index][np.isfinite(targets[train, index])]
        if len(known) < 2:
            raise ValueError(f"target {name!r} has {len(known)} known training values; need >= 2")
        std = float(known.std()) or 1.0
        out.append(RegressionTarget(name, float(known.mean()), std, 1.0 if weights is None else weights[index]))
    return tuple(out)


def scale_targets(targets: np.ndarray, scalers: tuple[RegressionTarget, ...]) -> np.ndarray:
    """(K, G) physical -> z-scored (NaN stays NaN)."""
    out = np.empty_like(targets, dtype=np.float64)
    for index, scaler in enumerate(scalers):
        out[:, index] = (targets[:, index] - scaler.mean) / scaler.std
    return out
