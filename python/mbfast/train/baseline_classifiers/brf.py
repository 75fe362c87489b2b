"""Random-forest baselines (paper §4.1): a balanced random forest classifier (imbalanced-learn) and a random
forest regressor (scikit-learn), each with a grid search over the number of trees, and their per-object cost.

Inputs are FeatureSet values (features.py); -999 stays in place as the paper's imputation. Not the authors'
grid of 100..4000 trees: a short grid (the report states which), chosen by macro F1 / MSE in stratified folds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

DEFAULT_TREES = (100, 250, 500)


@dataclass(frozen=True)
class FittedForest:
    model: object               # fitted BalancedRandomForestClassifier or RandomForestRegressor
    n_trees: int                # the grid's choice
    grid_scores: dict[int, float]  # n_trees -> mean inner-CV score (macro F1, or -MSE)


def balanced_forest(n_trees: int, seed: int, n_jobs: int = 1):
    """BalancedRandomForestClassifier with the sampling spelled out (imbalanced-learn >= 0.13 defaults)."""
    from imblearn.ensemble import BalancedRandomForestClassifier

    # each tree sees a bootstrap drawn with replacement and undersampled to the smallest class (Chen et al. 2004)
    return BalancedRandomForestClassifier(n_estimators=n_trees, sampling_strategy="all", replacement=True,
                                          bootstrap=False, random_state=seed, n_jobs=n_jobs)


def _grid(estimator, features: np.ndarray, y: np.ndarray, grid: tuple[int, ...], scoring: str, cv, n_jobs: int
          ) -> FittedForest:
    from sklearn.model_selection import GridSearchCV

    if len(grid) == 1:  # nothing to choose: fit once, no inner folds
        estimator.set_params(n_estimators=grid[0])
        return FittedForest(estimator.fit(features, y), grid[0], {})
    search = GridSearchCV(estimator, {"n_estimators": list(grid)}, scoring=scoring, cv=cv, n_jobs=1, refit=True)
    search.fit(features, y)
    scores = {int(n): float(s) for n, s in zip(search.cv_results_["param_n_estimators"],
                                                search.cv_results_["mean_test_score"])}
    best = search.best_estimator_
    best.set_params(n_jobs=n_jobs)
    return FittedForest(best, int(search.best_params_["n_estimators"]), scores)


def fit_brf(features: np.ndarray, labels: np.ndarray, grid: tuple[int, ...] = DEFAULT_TREES, n_folds: int = 3,
            seed: int = 0, n_jobs: int = 1) -> FittedForest:
    """Balanced random forest on (K, F) features and int labels (K,), trees chosen by macro F1 (§4.1).

    Inner folds are stratified; with fewer members than n_folds in some class, n_folds drops to that count.
    """
    from sklearn.model_selection import StratifiedKFold

    smallest = min(int(c) for c in np.bincount(labels) if c > 0)
    folds = StratifiedKFold(n_splits=max(2, min(n_folds, smallest)), shuffle=True, random_state=seed)
    return _grid(balanced_forest(grid[0], seed, n_jobs), features, labels, grid, "f1_macro", folds, n_jobs)


def fit_rf_regressor(features: np.ndarray, target: np.ndarray, grid: tuple[int, ...] = DEFAULT_TREES,
                     n_folds: int = 3, seed: int = 0, n_jobs: int = 1) -> FittedForest:
    """Random forest regressor on (K, F) features and a float target (K,) (no NaN), trees chosen by MSE."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    if not np.all(np.isfinite(target)):
        raise ValueError("fit_rf_regressor: target has NaN/inf; pass only objects with a known value")
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return _grid(RandomForestRegressor(n_estimators=grid[0], random_state=seed, n_jobs=n_jobs), features, target,
                 grid, "neg_mean_squared_error", folds, n_jobs)


def predict_cost_us(model, features: np.ndarray, repeats: int = 3) -> float:
    """Best-of-`repeats` wall time of model.predict_proba (or predict) on all rows of `features`, per object, µs.

    One call on the whole batch: the amortised cost a broker pays when it classifies many objects at once.
    """
    predict = getattr(model, "predict_proba", None) or model.predict
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        predict(features)
        best = min(best, time.perf_counter() - start)
    return best / len(features) * 1e6
