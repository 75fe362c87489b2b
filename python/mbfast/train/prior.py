"""Prior shift after class-balanced training: a class-balanced model predicts as if every class were equally
common, which maximises recall of the rare classes at the cost of precision on the common ones. Adding
alpha * log(training class frequency) to the classifier's output bias moves it back toward the training prior
(alpha = 0: balanced, alpha = 1: the frequencies of the training set). alpha is chosen on the validation set
for macro F1 (never on the test set) and folded into the exported weights, so the engine needs nothing new.
"""
from __future__ import annotations

import numpy as np
import torch

from mbfast.train.metrics import confusion_matrix, macro_f1
from mbfast.train.multiband import MultibandModel

ALPHAS = tuple(np.round(np.arange(0.0, 1.0001, 0.05), 2))


def log_prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """float64 (C,) log of the class frequencies of `labels` (a class absent from them counts half an object)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return np.log(np.maximum(counts, 0.5) / counts.sum())


def choose_alpha(final_probs: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                 alphas: tuple[float, ...] = ALPHAS) -> tuple[float, dict[float, float]]:
    """The alpha of `alphas` whose shifted argmax has the best macro F1 on (final_probs (K, C), labels (K,));
    ties go to the smaller alpha. Returns (alpha, {alpha: macro F1})."""
    log_probs = np.log(np.maximum(final_probs.astype(np.float64), 1e-30))
    scores = {float(alpha): macro_f1(confusion_matrix(labels, np.argmax(log_probs + alpha * prior, axis=1),
                                                      len(prior)))
              for alpha in alphas}
    best = max(scores.values())
    return next(alpha for alpha in scores if scores[alpha] == best), scores


@torch.no_grad()
def shift_classifier(model: MultibandModel, alpha: float, prior: np.ndarray) -> None:
    """Add alpha * prior to the central classifier's output bias, in place."""
    bias = model.central.classifier.out.bias
    bias += torch.as_tensor(alpha * prior, dtype=bias.dtype, device=bias.device)
