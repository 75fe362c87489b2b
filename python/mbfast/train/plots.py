"""Figures of `mbfast evaluate` and `mbfast report`, drawn to be read at the size they are shown. Needs matplotlib
(the `train` extra).

Shown size: the docs link each PNG, and GitHub (like most viewers) shows it 1:1 up to the ~900 px of a page's
content column and scales wider ones down. So every figure is at most WIDTH_PX wide at DPI, and every text is at
least MIN_TEXT_PT (MIN_TEXT_PX pixels) there. `save_figure` checks these rules, and that no text leaves the
figure or overlaps another, before it writes anything; the confusion matrix also keeps each cell's text inside its
cell, and leaves out what no longer fits when there are many classes (first the quartile ranges, then the values).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DPI = 100
WIDTH_PX = 900
MIN_TEXT_PT = 8.0
MIN_TEXT_PX = MIN_TEXT_PT * DPI / 72  # 11.1 px
LABEL_PT = 10.0     # axis labels, tick labels, titles, the confusion matrix's values
RANGE_PT = MIN_TEXT_PT  # the quartile range under a value
# smallest cell (px) that holds a value ("100" at LABEL_PT), and one that also holds a range ("100-100" at RANGE_PT)
CELL_FOR_VALUE_PX = 28
CELL_FOR_RANGE_PX = 46
# written into every PNG that passed the rules, so a test can tell the figures shipped in docs/ were checked
STAMP_KEY = "mbfast figure rules"
STAMP = f"width <= {WIDTH_PX} px, text >= {MIN_TEXT_PX:.1f} px at {DPI} dpi, no text overlapping or cut"


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def new_figure(width_px: int, height_px: int) -> tuple[Any, Any]:
    """(figure, axes) of that size in pixels at DPI (matplotlib's default 10 pt text is LABEL_PT)."""
    if width_px > WIDTH_PX:
        raise ValueError(f"a figure {width_px} px wide is shown scaled down: at most {WIDTH_PX} px")
    return _pyplot().subplots(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def _texts(fig: Any) -> list[Any]:
    """The texts drawn: visible, not empty, and no label of a tick outside its axis' view (never drawn)."""
    from matplotlib.text import Text

    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * (high - low)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - slack <= tick.get_loc() <= high + slack:
                    hidden.update((id(tick.label1), id(tick.label2)))
    return [text for text in fig.findobj(Text)
            if text.get_visible() and text.get_text().strip() and id(text) not in hidden]


def readability_problems(fig: Any, matrix_axes: Any | None = None) -> list[str]:
    """Every broken rule: figure too wide, text too small, outside the figure, or overlapping another text; and
    with `matrix_axes` (an imshow'd matrix), a text of those axes leaving the cell it is anchored in."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    problems = [f"figure is {width} px wide, more than {WIDTH_PX}"] if width > WIDTH_PX else []
    boxes = []
    for text in _texts(fig):
        label = repr(text.get_text().replace("\n", " "))
        pixels = text.get_fontsize() * fig.dpi / 72
        if pixels < MIN_TEXT_PX - 1e-6:
            problems.append(f"text {label} is {pixels:.1f} px tall, less than {MIN_TEXT_PX:.1f}")
        box = text.get_window_extent(renderer)
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
            problems.append(f"text {label} leaves the {width} x {height} px figure")
        boxes.append((label, box))
    for k, (label, box) in enumerate(boxes):
        for other, other_box in boxes[k + 1:]:
            if box.overlaps(other_box):
                problems.append(f"text {label} overlaps text {other}")
    for text in matrix_axes.texts if matrix_axes is not None else ():
        x, y = text.get_position()
        j, i = round(x), round(y)
        (x0, y0), (x1, y1) = matrix_axes.transData.transform([(j - 0.5, i + 0.5), (j + 0.5, i - 0.5)])
        box = text.get_window_extent(renderer)
        if box.x0 < x0 or box.x1 > x1 or box.y0 < y0 or box.y1 > y1:
            problems.append(f"text {text.get_text()!r} leaves its cell (row {i}, column {j})")
    return problems


def save_figure(fig: Any, path: Path, matrix_axes: Any | None = None) -> None:
    """Write `fig` as a PNG at DPI, stamped with the rules, after checking them (ValueError listing every broken
    one, and nothing written)."""
    plt = _pyplot()
    try:
        problems = readability_problems(fig, matrix_axes)
        if problems:
            raise ValueError(f"{path.name} would not be readable where it is shown: " + "; ".join(problems))
        fig.savefig(path, dpi=DPI, metadata={STAMP_KEY: STAMP})
    finally:
        plt.close(fig)


def save_confusion_matrix(shares: np.ndarray, class_names: tuple[str, ...], title: str, path: Path,
                          quartiles: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """confusion_figure written as a PNG at `path` once it passes the rules."""
    fig, ax = confusion_figure(shares, class_names, title, quartiles)
    save_figure(fig, path, matrix_axes=ax)


def confusion_figure(shares: np.ndarray, class_names: tuple[str, ...], title: str,
                     quartiles: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Any, Any]:
    """Heat map of a (C, C) recall-normalised confusion matrix (rows true, columns predicted). Each cell shows its
    share in percent, with its 25th-75th percentile range over folds under it when `quartiles` (q25, q75) are
    given and differ; cells that are 0 (in every fold) stay blank. Returns (figure, axes)."""
    n_classes = len(class_names)
    width = min(WIDTH_PX, max(600, 200 + 56 * n_classes))
    fig, ax = new_figure(width, width + 60)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n_classes), class_names, rotation=90)
    ax.set_yticks(range(n_classes), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    box = ax.get_window_extent()
    cell_px = min(box.width, box.height) / n_classes
    note = ("values left out: too many classes to print them readably" if cell_px < CELL_FOR_VALUE_PX else
            "quartile ranges left out: too many classes to print them readably"
            if quartiles is not None and cell_px < CELL_FOR_RANGE_PX else None)
    if note:
        ax.set_title(f"{title}\n{note}")
        fig.tight_layout()
        box = ax.get_window_extent()
        cell_px = min(box.width, box.height) / n_classes
    for i in range(n_classes):
        for j in range(n_classes):
            low, high = (quartiles[0][i, j], quartiles[1][i, j]) if quartiles is not None else (0.0, 0.0)
            if cell_px < CELL_FOR_VALUE_PX or (shares[i, j] == 0 and high == 0):
                continue
            colour = "white" if shares[i, j] > 0.5 else "black"
            with_range = quartiles is not None and cell_px >= CELL_FOR_RANGE_PX and low != high
            # the value 7 px above the centre and its range 8 px below (rows run downwards: + is down)
            ax.text(j, i - 7 / cell_px if with_range else i, f"{100 * shares[i, j]:.0f}", ha="center",
                    va="center", fontsize=LABEL_PT, color=colour)
            if with_range:
                ax.text(j, i + 8 / cell_px, f"{100 * low:.0f}-{100 * high:.0f}", ha="center", va="center",
                        fontsize=RANGE_PT, color=colour)
    return fig, ax

