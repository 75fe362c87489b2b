"""The confusion-matrix figure shared by `mbfast evaluate` (one model) and the baseline report (folds of several
methods). Needs matplotlib (the `train` extra)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def save_confusion_matrix(shares: np.ndarray, class_names: tuple[str, ...], title: str, path: Path,
                          figsize: tuple[float, float], dpi: int, fontsize: float,
                          cell_text: Callable[[int, int], str] | None = None) -> None:
    """Heat map of a (C, C) recall-normalised confusion matrix (rows true, columns predicted), one label per cell:
    `cell_text(i, j)`, by default the share to 2 decimals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_classes = len(class_names)
    fig, ax = plt.subplots(figsize=figsize)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n_classes):
        for j in range(n_classes):
            text = cell_text(i, j) if cell_text else f"{shares[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(n_classes), class_names, rotation=90)
    ax.set_yticks(range(n_classes), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
