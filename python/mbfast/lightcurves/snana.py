"""SNANA text light curves ("KEY: value" header, "VARLIST:" then "OBS:" rows), read as raw strings, one file at a
time. Converting them (FLUXCAL to magnitudes, filters to bands) is the caller's job (mbfast.train.datasets.load_yse).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SnanaFile:
    """One SNANA text light curve: header keywords (raw strings) and the OBS rows as string columns."""

    header: dict[str, str]
    columns: dict[str, list[str]]   # VARLIST name -> (n_obs,) raw values


def read_snana(path: str | Path) -> SnanaFile:
    """Parse an SNANA text file ("KEY: value" header, "VARLIST:" then "OBS:" rows, optional "END:")."""
    header: dict[str, str] = {}
    names: list[str] = []
    rows: list[list[str]] = []
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "OBS":
                fields = value.split()
                if len(fields) != len(names):
                    raise ValueError(f"{path}:{line_number}: OBS row has {len(fields)} values, VARLIST has "
                                     f"{len(names)} ({' '.join(names) or 'no VARLIST before it'})")
                rows.append(fields)
            elif key == "VARLIST":
                names = value.split()
            elif key == "END":
                break
            else:
                header[key] = value
    if not names:
        raise ValueError(f"{path}: no VARLIST line")
    return SnanaFile(header, {name: [row[k] for row in rows] for k, name in enumerate(names)})

