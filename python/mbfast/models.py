"""The models shipped with mbfast, chosen by name: `Engine.load("lsst")`, `mbfast classify --model ztf`.

Each shipped model is `mbfast/data/<name>.mbf`, with `<name>.json` beside it (the split it was tested on). Its model
card (data, classes, metrics on simulated and on real data, known limits) is stored inside the model file
(ModelConfig.card) and shown by `mbfast info --model NAME`.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED = ("lsst", "ztf")
DEFAULT = "lsst"
# the shipped model for the alerts of each survey (PLAsTiCC simulates LSST's ugrizy)
FOR_SURVEY = {"lsst": "lsst", "plasticc": "lsst", "ztf": "ztf"}


def shipped_path(name: str) -> Path:
    return DATA_DIR / f"{name}.mbf"


def resolve(model: str | os.PathLike[str] | None) -> Path:
    """A shipped model's name (or None: the default, "lsst") -> its file; anything else is a path, unchanged.

    A name wins over a file of the same name in the working directory: pass "./lsst" for such a file.
    """
    if model is None:
        return shipped_path(DEFAULT)
    if isinstance(model, str) and model in SHIPPED:
        return shipped_path(model)
    return Path(model)


def for_survey(survey: str) -> str | None:
    """The shipped model's name for a survey's alerts, None where none ships."""
    return FOR_SURVEY.get(survey)
