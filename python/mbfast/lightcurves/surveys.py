"""Survey presets: each survey's band order and the codes and spellings its files give its bands (ZTF fid 1 2 3,
PLAsTiCC passband 0-5, lsstg), mapped to a model's bands (band_map).

Conversions of each survey's photometry to AB magnitudes are in mbfast.lightcurves.photometry. This module does not
read files: mbfast.lightcurves.io and mbfast.train.datasets do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mbfast.lightcurves.fields import describe_row


@dataclass(frozen=True)
class Survey:
    """A survey's band labels, in order, and every other way its tables write a band (`codes`: code or label ->
    one of `bands`), e.g. ZTF's fid 1 and 'zg' for g. The one alias table: readers, the batch job and
    Engine.classify all map bands through `band_map`."""

    name: str
    bands: tuple[str, ...]
    codes: dict[str | int, str] = field(default_factory=dict, hash=False, compare=False)

    def label_of(self, code: str | int) -> str | None:
        """The survey band a code or label stands for, None when the survey has no such band."""
        if isinstance(code, str):
            return code if code in self.bands else self.codes.get(code)
        return self.codes.get(int(code))


def _spellings(bands: tuple[str, ...], prefixes: tuple[str, ...]) -> dict[str | int, str]:
    return {prefix + band: band for prefix in prefixes for band in bands}


_LSST_BANDS = ("u", "g", "r", "i", "z", "y")
LSST = Survey("lsst", _LSST_BANDS, _spellings(_LSST_BANDS, ("lsst", "lsst_", "LSST_")))
# ZTF alerts and light-curve services write fid 1/2/3; ZTF forced photometry and ALeRCE write zg/zr/zi or ZTF_g
ZTF = Survey("ztf", ("g", "r", "i"), {1: "g", 2: "r", 3: "i",
                                      **_spellings(("g", "r", "i"), ("z", "ztf", "ztf_", "ZTF_", "ZTF"))})
# PS1 DR2 Detection filterID 1..5
PS1 = Survey("ps1", ("g", "r", "i", "z", "y"), {**dict(enumerate(("g", "r", "i", "z", "y"), start=1)),
                                                 **_spellings(("g", "r", "i", "z", "y"), ("ps1_", "PS1_"))})
GAIA = Survey("gaia", ("BP", "RP"), {"bp": "BP", "rp": "RP", "G_BP": "BP", "G_RP": "RP"})
# PLAsTiCC passband 0..5 is u..y; its SNANA files write lsstu..lssty
PLASTICC = Survey("plasticc", _LSST_BANDS, {**dict(enumerate(_LSST_BANDS)), **LSST.codes})
# YSE DR1: Pan-STARRS1 g r i z and ZTF forced photometry g r are different filters, so six bands; SNANA FLT
# letters g r i z are PS1, X and Y are ZTF g and r
YSE = Survey("yse", ("ps1_g", "ps1_r", "ps1_i", "ps1_z", "ztf_g", "ztf_r"),
             {"g": "ps1_g", "r": "ps1_r", "i": "ps1_i", "z": "ps1_z", "X": "ztf_g", "Y": "ztf_r"})

SURVEYS = {survey.name: survey for survey in (LSST, ZTF, PS1, GAIA, PLASTICC, YSE)}
# what --survey offers for observation tables (YSE is read by its own loader)
TABLE_SURVEYS = ("ztf", "lsst", "ps1", "gaia", "plasticc")


def get_survey(name: str) -> Survey:
    try:
        return SURVEYS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown survey {name!r} (known: {', '.join(SURVEYS)})") from None


@dataclass(frozen=True)
class BandMap:
    """How one table's band column becomes indices into a model's (or a table's) bands.

    `labels` maps text labels, `integers` integer codes (empty when no survey is named: integers are then refused,
    never read as indices), to a band index; `absent` holds the survey's labels and codes for bands the target
    lacks (their rows are rejected as "band not in the model", not as unknown).
    """

    bands: tuple[str, ...]
    labels: dict[str, int]
    integers: dict[int, int]
    absent: frozenset[str | int]
    survey: Survey | None

    def integer_error(self, example: int) -> str:
        return (f"the band column holds integer codes ({example}, ...), which mean a different band in each survey; "
                f"name the survey that wrote them: --survey {'|'.join(TABLE_SURVEYS)} (survey= in Python)")


def band_map(bands: tuple[str, ...], survey: str | Survey | None = None,
             target_survey: str | None = None) -> BandMap:
    """The map from `survey`'s band codes and labels to indices into `bands` (a model's bands, whose model is for
    `target_survey`).

    A survey band goes to the target band of the same label when the two share one band system (same survey, LSST
    and PLAsTiCC, or a target of no known survey), else to the target band '<survey>_<label>' (a model trained on
    several surveys, as YSE's ztf_g). A survey none of whose bands the target has is a ValueError naming both.
    With no survey, text labels are matched to `bands` (and to the aliases of `target_survey`); integers refused.

    >>> m = band_map(("g", "r"), "ztf", "ztf")
    >>> m.integers, m.labels["zr"], sorted(m.absent, key=str)
    ({1: 0, 2: 1}, 1, [3, 'ZTF_i', 'ZTFi', 'i', 'zi', 'ztf_i', 'ztfi'])
    """
    index = {label: position for position, label in enumerate(bands)}
    if survey is None:
        labels = dict(index)
        known = SURVEYS.get(target_survey or "")
        if known is not None:
            for code, label in known.codes.items():
                if isinstance(code, str) and label in index:
                    labels.setdefault(code, index[label])
        return BandMap(tuple(bands), labels, {}, frozenset(), None)
    survey = survey if isinstance(survey, Survey) else get_survey(survey)
    target = SURVEYS.get(target_survey or "")
    same_system = target is None or target.name == survey.name or target.bands == survey.bands
    destination: dict[str, int] = {}
    for label in survey.bands:
        name = label if same_system else f"{survey.name}_{label}"
        if name in index:
            destination[label] = index[name]
    if not destination:
        model = f"{target_survey}: " if target_survey else ""
        raise ValueError(f"the model has none of {survey.name}'s bands ({' '.join(survey.bands)}); its bands are "
                         f"{model}{' '.join(bands)}")
    labels: dict[str, int] = {}
    integers: dict[int, int] = {}
    absent: set[str | int] = set()
    for code, label in [*((band, band) for band in survey.bands), *survey.codes.items()]:
        if label not in destination:
            absent.add(code)
        elif isinstance(code, str):
            labels[code] = destination[label]
        else:
            integers[code] = destination[label]
            labels[str(code)] = destination[label]  # the same code read from a text column
    return BandMap(tuple(bands), labels, integers, frozenset(absent), survey)


def ztf_band_codes(fid: np.ndarray, obj_id: np.ndarray | None = None) -> np.ndarray:
    """ZTF fid 1, 2, 3 -> int8 band indices into ZTF.bands (g, r, i); an unknown fid raises naming the row.

    >>> ztf_band_codes(np.array([1, 2, 3, 2])).tolist()
    [0, 1, 2, 1]
    """
    fid = np.asarray(fid).astype(np.int64)
    codes = np.full(len(fid), -1, dtype=np.int8)
    fids = {code: label for code, label in ZTF.codes.items() if isinstance(code, int)}
    for value, label in fids.items():
        codes[fid == value] = ZTF.bands.index(label)
    bad = np.flatnonzero(codes < 0)
    if len(bad):
        row = int(bad[0])
        where = describe_row(row, int(obj_id[row])) if obj_id is not None else f"row {row}"
        choices = ", ".join(f"{value} ({label})" for value, label in fids.items())
        raise ValueError(f"{where}: fid must be one of {choices}, got {fid[row]}")
    return codes
