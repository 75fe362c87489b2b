"""Figures are readable at the size they are shown (mbfast.train.plots): at most WIDTH_PX wide, no text under
MIN_TEXT_PX, none cut or overlapping, every confusion-matrix value inside its cell; and the figures shipped in
docs/ were made under these rules."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402 (a matplotlib dependency)

from mbfast.lightcurves.sample import PLASTICC_CLASS_ORDER  # noqa: E402
from mbfast.train import plots  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"


def plasticc_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 14-class recall-normalised matrix with most off-diagonal cells 0, and quartiles around it."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, (14, 14)) * (rng.random((14, 14)) < 0.35) + np.diag(rng.integers(5, 30, 14))
    shares = counts / counts.sum(axis=1, keepdims=True)
    return shares, np.clip(shares - 0.03, 0, 1), np.clip(shares + 0.02, 0, 1) * (shares > 0)


def test_plasticc_confusion_matrix_follows_the_rules() -> None:
    shares, q25, q75 = plasticc_like()
    fig, ax = plots.confusion_figure(shares, PLASTICC_CLASS_ORDER, "MTL: recall (%), median of 3 folds", (q25, q75))
    try:
        assert plots.readability_problems(fig, ax) == []
        assert fig.canvas.get_width_height()[0] == plots.WIDTH_PX == 900
        sizes = {text.get_fontsize() * fig.dpi / 72 for text in plots._texts(fig)}
        assert min(sizes) >= plots.MIN_TEXT_PX > 11.1 - 0.01
        cells = {(round(t.get_position()[1]), round(t.get_position()[0])): [] for t in ax.texts}
        for text in ax.texts:
            cells[round(text.get_position()[1]), round(text.get_position()[0])].append(text.get_text())
        assert set(cells) == set(zip(*np.nonzero(shares)))  # blank where 0 in every fold
        i, j = np.argwhere(shares > 0)[0]
        assert cells[i, j] == [f"{100 * shares[i, j]:.0f}", f"{100 * q25[i, j]:.0f}-{100 * q75[i, j]:.0f}"]
    finally:
        plots._pyplot().close(fig)


def test_too_many_classes_leave_out_what_would_not_fit() -> None:
    names = tuple(f"class{k}" for k in range(20))
    shares = np.eye(20) * 0.6 + 0.02
    fig, ax = plots.confusion_figure(shares, names, "20 classes", (shares - 0.01, shares + 0.01))
    try:
        assert ax.get_title().endswith("quartile ranges left out: too many classes to print them readably")
        assert len(ax.texts) == 400 and plots.readability_problems(fig, ax) == []
    finally:
        plots._pyplot().close(fig)
    fig, ax = plots.confusion_figure(np.eye(40), tuple(f"c{k}" for k in range(40)), "40 classes")
    try:
        assert len(ax.texts) == 0 and "values left out" in ax.get_title()
        assert plots.readability_problems(fig, ax) == []
    finally:
        plots._pyplot().close(fig)


def test_an_unreadable_figure_is_refused_and_not_written(tmp_path: Path) -> None:
    fig, ax = plots.new_figure(400, 300)
    ax.set_title("fine")
    ax.text(0.5, 0.5, "tiny", fontsize=6)
    ax.text(0.5, 0.5, "on top", fontsize=10)
    ax.text(1.4, 0.5, "cut off at the right edge", fontsize=10)
    with pytest.raises(ValueError) as error:
        plots.save_figure(fig, tmp_path / "bad.png")
    message = str(error.value)
    assert message.startswith("bad.png would not be readable where it is shown: ")
    assert "text 'tiny' is 8.3 px tall, less than 11.1" in message
    assert "text 'tiny' overlaps text 'on top'" in message
    assert "text 'cut off at the right edge' leaves the 400 x 300 px figure" in message
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(ValueError, match="a figure 1080 px wide is shown scaled down: at most 900 px"):
        plots.new_figure(1080, 1040)


def test_a_value_leaving_its_cell_is_refused() -> None:
    fig, ax = plots.confusion_figure(np.eye(4), ("a", "b", "c", "d"), "cells")
    ax.text(2, 1, "a label wider than its cell", ha="center", va="center", fontsize=10)  # a blank cell
    try:
        assert plots.readability_problems(fig, ax) == [
            "text 'a label wider than its cell' leaves its cell (row 1, column 2)"]
    finally:
        plots._pyplot().close(fig)


def test_saved_figures_carry_the_rules_stamp(tmp_path: Path) -> None:
    plots.save_confusion_matrix(np.eye(4), ("Ia", "II", "Ibc", "other"), "YSE", tmp_path / "yse.png")
    with Image.open(tmp_path / "yse.png") as image:
        assert image.size == (600, 660) and image.text[plots.STAMP_KEY] == plots.STAMP


def test_report_confusion_matrix_over_folds(tmp_path: Path) -> None:
    from mbfast.train.baseline_classifiers.report import plot_confusion

    rng = np.random.default_rng(1)
    true = np.repeat(np.arange(14), 20)
    folds = [np.where(rng.random(len(true)) < 0.6, true, rng.integers(0, 14, len(true))) for _ in range(3)]
    plot_confusion(true, folds, PLASTICC_CLASS_ORDER, "MTL", tmp_path / "mtl.png")
    with Image.open(tmp_path / "mtl.png") as image:
        assert image.size[0] == plots.WIDTH_PX and image.text[plots.STAMP_KEY] == plots.STAMP


def test_figures_shipped_in_docs_were_made_under_the_rules() -> None:
    unchecked = []
    for path in sorted(DOCS.rglob("*.png")):
        with Image.open(path) as image:
            if image.size[0] > plots.WIDTH_PX or image.text.get(plots.STAMP_KEY) != plots.STAMP:
                unchecked.append(f"{path.relative_to(DOCS)} ({image.size[0]} px wide)")
    assert unchecked == [], "not written by mbfast.train.plots under its rules"
