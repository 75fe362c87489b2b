"""The labelled data sets training and evaluation use, by name: PLAsTiCC, YSE DR1, their ZTF-like and rebanded
forms, their mix, or one's own files (load_labelled).

The full sets live in ../shared/data, outside the package. Each loader returns a LabelledSet
(mbfast.lightcurves.labelled): a LightCurves table plus per-object labels and regression targets in the table's
object order. Photometry conversions live in mbfast.lightcurves.photometry, flat-file reading in
mbfast.lightcurves.io.
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

from mbfast.lightcurves.io import write_parquet
from mbfast.lightcurves.labelled import UNLABELLED, LabelledSet, load_files, select_objects
from mbfast.lightcurves.sample import PLASTICC_CLASS_ORDER, PLASTICC_CLASSES, SAMPLE_CURVES, SAMPLE_LABELS
from mbfast.lightcurves.snana import read_snana
from mbfast.lightcurves.photometry import MAG_PER_LN_FLUX, SNANA_ZERO_POINT, flux_to_mag
from mbfast.lightcurves.surveys import LSST, PLASTICC, YSE, ZTF
from mbfast.lightcurves.table import LightCurves

# YSE DR1 SPEC_CLASS_BROAD -> our class names; "NA" means no spectroscopic class (label -1)
YSE_CLASSES = {"SN Ia": "Ia", "SN II": "II", "SN Ibc": "Ibc", "Other": "other"}
YSE_CLASS_ORDER = ("Ia", "II", "Ibc", "other")
# SNANA FLT letters in YSE DR1: Pan-STARRS1 g r i z; ZTF forced photometry X = g, Y = r
YSE_FILTERS = {"g": "ps1_g", "r": "ps1_r", "i": "ps1_i", "z": "ps1_z", "X": "ztf_g", "Y": "ztf_r"}


def shared_data_dir() -> Path:
    """The shared data folder: $MBFAST_SHARED_DATA if set, else the first `shared/data` found next to the source
    checkout (editable install) or next to the working directory or one of its parents (the repository's
    `../shared/data` when run from a clone, as CI does with an installed package)."""
    override = os.environ.get("MBFAST_SHARED_DATA")
    if override:
        return Path(override)
    here = Path.cwd().resolve()
    candidates = [Path(__file__).resolve().parents[4] / "shared" / "data"]
    candidates += [folder / "shared" / "data" for folder in (here, *here.parents)]
    return next((folder for folder in candidates if folder.is_dir()), candidates[0])


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}. The full data sets live outside the package (../shared/data next to "
            f"the repository); point MBFAST_SHARED_DATA at that folder, or use "
            f"mbfast.lightcurves.sample.load_sample() for the small PLAsTiCC sample shipped with mbfast")
    return path


def load_plasticc(light_curves: str | Path | None = None, metadata: str | Path | None = None) -> LabelledSet:
    """PLAsTiCC training set (SIMULATED LSST): ugrizy FLUXCAL -> AB mag, 14 classes, `true_z` as regression target.

    Defaults are the files in <shared data>/plasticc_train_simulated. Redshift is masked (NaN) for galactic
    objects (true_z == 0). Objects with no observation left after the S/N cut are absent from the table.
    """
    folder = shared_data_dir() / "plasticc_train_simulated"
    light_curves = _require(Path(light_curves or folder / "plasticc_train_lightcurves.parquet"),
                            "PLAsTiCC light curves")
    metadata = _require(Path(metadata or folder / "plasticc_train_metadata.csv"), "PLAsTiCC metadata")
    table = pq.read_table(light_curves, columns=["object_id", "mjd", "passband", "flux", "flux_err"])
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    magnitudes = flux_to_mag(columns["flux"], columns["flux_err"], SNANA_ZERO_POINT)
    curves = magnitudes.to_curves(columns["object_id"], columns["passband"].astype(np.int64), columns["mjd"],
                                  PLASTICC.bands)
    labels_by_id: dict[int, int] = {}
    redshift_by_id: dict[int, float] = {}
    with open(metadata, newline="") as handle:
        for record in csv.DictReader(handle):
            object_id = int(record["object_id"])
            labels_by_id[object_id] = PLASTICC_CLASS_ORDER.index(PLASTICC_CLASSES[int(record["target"])])
            redshift = float(record["true_z"])
            redshift_by_id[object_id] = redshift if redshift > 0 else np.nan
    object_ids = curves.object_ids
    missing = [int(i) for i in object_ids if int(i) not in labels_by_id]
    if missing:
        raise ValueError(f"{metadata}: no metadata row for obj_id {missing[0]} ({len(missing)} objects in all)")
    labels = np.array([labels_by_id[int(i)] for i in object_ids], dtype=np.int64)
    redshift = np.array([redshift_by_id[int(i)] for i in object_ids], dtype=np.float64)
    return LabelledSet(curves, labels, PLASTICC_CLASS_ORDER, {"redshift": redshift}, magnitudes.n_dropped)


# ---------------------------------------------------------------------------------------------------------------
# The sample shipped in mbfast/data (mbfast.lightcurves.sample), drawn from the full PLAsTiCC set


def write_plasticc_sample(directory: str | Path, per_class: int = 22, seed: int = 0) -> LabelledSet:
    """Write the shipped sample: `per_class` objects of each PLAsTiCC class, drawn from load_plasticc()."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sample = select_objects(load_plasticc(), max_per_class=per_class, seed=seed)
    write_parquet(sample.curves, directory / SAMPLE_CURVES)
    with open(directory / SAMPLE_LABELS, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["obj_id", "class", "redshift"])
        for obj_id, label, redshift in zip(sample.curves.object_ids, sample.labels, sample.targets["redshift"]):
            redshift_text = "" if np.isnan(redshift) else repr(float(redshift))
            writer.writerow([int(obj_id), PLASTICC_CLASS_ORDER[label], redshift_text])
    return sample


# ---------------------------------------------------------------------------------------------------------------
# YSE DR1 (REAL): SNANA text files



def yse_obj_id(name: str) -> int:
    """A stable int64 obj_id from an IAU transient name: year * 10**7 + the letters in base 53.

    Letters a-z count 1..26 and A-Z 27..52 (old designations such as 2021J are upper case), up to four.

    >>> yse_obj_id("2019lbi"), yse_obj_id("2021J")
    (20190033823, 20210000036)
    """
    year, letters = name[:4], name[4:]
    if not (year.isdigit() and 1 <= len(letters) <= 4 and letters.isascii() and letters.isalpha()):
        raise ValueError(f"not an IAU transient name (YYYY + 1-4 letters): {name!r}")
    value = 0
    for letter in letters:
        value = value * 53 + (ord(letter) - ord("a") + 1 if letter.islower() else ord(letter) - ord("A") + 27)
    return int(year) * 10**7 + value


def _redshift(text: str) -> tuple[float, str]:
    """'0.0130 +- 0.005 (SPEC-Z, HELIO)' -> (0.013, 'SPEC-Z'); negative values (-99) -> NaN."""
    fields = text.split()
    value = float(fields[0])
    kind = text[text.index("(") + 1:].split(",")[0] if "(" in text else ""
    return (value if value >= 0 else np.nan), kind


def load_yse(directory: str | Path | None = None, include_unlabelled: bool = False) -> LabelledSet:
    """YSE DR1 (REAL; Aleo et al. 2023): PS1 g r i z + ZTF g r FLUXCAL -> AB mag, spectroscopic classes.

    Parameters
    ----------
    directory : path or None
        Folder of `<IAU name>.snana.dat` files; default <shared data>/yse_dr1_transients/yse_dr1_zenodo_snr_geq_4.
    include_unlabelled : bool
        Also load objects without a spectroscopic class (SPEC_CLASS_BROAD "NA"), with label -1.

    Returns
    -------
    LabelledSet
        Bands YSE.bands (ps1_g, ps1_r, ps1_i, ps1_z, ztf_g, ztf_r); classes Ia, II, Ibc, other (from
        SPEC_CLASS_BROAD); target "redshift" is REDSHIFT_FINAL where it is spectroscopic (SPEC-Z or HOST-Z),
        NaN where it is photometric; `names` holds the IAU names and obj_id is `yse_obj_id(name)`.
        Magnitudes come from FLUXCAL (zero point 27.5); the files' own MAG column disagrees with it by more
        than 0.001 mag on about 5 % of the rows (see docs/data.md).
    """
    directory = Path(directory) if directory is not None else (
        shared_data_dir() / "yse_dr1_transients" / "yse_dr1_zenodo_snr_geq_4")
    paths = sorted(_require(directory, "YSE DR1 folder").glob("*.snana.dat"))
    if not paths:
        raise FileNotFoundError(f"no *.snana.dat files in {directory}")
    obj_ids: list[np.ndarray] = []
    bands: list[str] = []
    columns: dict[str, list[str]] = {"MJD": [], "FLUXCAL": [], "FLUXCALERR": []}
    labels_by_id: dict[int, int] = {}
    redshift_by_id: dict[int, float] = {}
    name_by_id: dict[int, str] = {}
    for path in paths:
        snana = read_snana(path)
        broad = snana.header.get("SPEC_CLASS_BROAD", "NA")
        if broad == "NA":
            if not include_unlabelled:
                continue
            label = UNLABELLED
        elif broad in YSE_CLASSES:
            label = YSE_CLASS_ORDER.index(YSE_CLASSES[broad])
        else:
            raise ValueError(f"{path}: unknown SPEC_CLASS_BROAD {broad!r} (expected one of "
                             f"{', '.join(YSE_CLASSES)} or NA)")
        name = snana.header["SNID"]
        obj_id = yse_obj_id(name)
        redshift, kind = _redshift(snana.header.get("REDSHIFT_FINAL", "-99"))
        labels_by_id[obj_id] = label
        redshift_by_id[obj_id] = redshift if kind in ("SPEC-Z", "HOST-Z") else np.nan
        name_by_id[obj_id] = name
        for flt in snana.columns["FLT"]:
            if flt not in YSE_FILTERS:
                raise ValueError(f"{path}: unknown FLT {flt!r} (expected one of {', '.join(YSE_FILTERS)})")
            bands.append(YSE_FILTERS[flt])
        for key in columns:
            columns[key].extend(snana.columns[key])
        obj_ids.append(np.full(len(snana.columns["FLT"]), obj_id, dtype=np.int64))
    if not obj_ids:
        raise ValueError(f"no object with a spectroscopic class in {directory}; pass include_unlabelled=True "
                         f"to load the unclassified ones")
    obj_id_column = np.concatenate(obj_ids)
    magnitudes = flux_to_mag(np.array(columns["FLUXCAL"], dtype=np.float64),
                             np.array(columns["FLUXCALERR"], dtype=np.float64), SNANA_ZERO_POINT)
    curves = magnitudes.to_curves(obj_id_column, np.array(bands), np.array(columns["MJD"], dtype=np.float64),
                                  YSE.bands)
    object_ids = [int(i) for i in curves.object_ids]
    return LabelledSet(curves, np.array([labels_by_id[i] for i in object_ids], dtype=np.int64), YSE_CLASS_ORDER,
                       {"redshift": np.array([redshift_by_id[i] for i in object_ids], dtype=np.float64)},
                       magnitudes.n_dropped, tuple(name_by_id[i] for i in object_ids), YSE.name)



# ---------------------------------------------------------------------------------------------------------------
# ZTF-like training data. No large labelled set of real ZTF light curves is public, so the ZTF model learns from
# PLAsTiCC g r i made to look like ZTF alert photometry and is checked on the real ZTF photometry of YSE DR1.

# ZTF single-epoch 5-sigma depths (Bellm et al. 2019: median 20.8 g, 20.6 r; i about 20.2)
ZTF_DEPTH = {"g": 20.8, "r": 20.6, "i": 20.2}
ZTF_ERROR_FLOOR = 0.015   # mag, calibration floor added in quadrature
ZTF_I_KEPT = 0.2          # i-band was observed by the partnership survey only: keep a fifth of i observations
ZTF_PEAK_RANGE = (15.5, 19.5)  # an object fainter than this at peak is brightened to a peak drawn uniformly here
ZTF_MAX_LSST_ERR = 0.3    # mag: noisier simulated points would carry more noise than a ZTF detection has


def ztf_error(mag: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """1-sigma mag error of a background-limited detection: S/N 5 at the depth, plus the calibration floor."""
    snr = 5.0 * 10.0 ** (-0.4 * (mag - depth))
    return np.hypot(MAG_PER_LN_FLUX / snr, ZTF_ERROR_FLOOR)   # sigma_mag = MAG_PER_LN_FLUX / (S/N)


def to_ztf_like(labelled: LabelledSet, seed: int = 0) -> LabelledSet:
    """PLAsTiCC (LSST) g r i light curves resampled to ZTF-like depth and noise, as ZTF bands g r i.

    Per object: magnitudes shifted so the peak lands in ZTF_PEAK_RANGE if it was fainter (a closer copy of the
    same event; no K-correction or time dilation), `err` set to ZTF's (`ztf_error`) and noise added up to it
    (the simulated LSST noise already in the magnitudes is kept; points with LSST err >= ZTF_MAX_LSST_ERR are
    dropped), observations fainter than the ZTF depth dropped (alerts are detections), 4 of 5 i-band
    observations dropped. The LSST cadence is kept (sparser per band than ZTF's).
    """
    rng = np.random.default_rng(seed)
    curves = labelled.curves
    lsst = list(curves.bands)
    wanted = np.array([lsst.index(band) for band in ZTF.bands])
    in_ztf = np.isin(curves.band, wanted)
    owner = curves.owner
    peak = np.full(curves.n_objects, np.inf)
    np.minimum.at(peak, owner[in_ztf], curves.mag[in_ztf].astype(np.float64))
    target = rng.uniform(*ZTF_PEAK_RANGE, size=curves.n_objects)
    shift = np.where(np.isfinite(peak), np.maximum(peak - target, 0.0), 0.0)          # (K,) >= 0: brighter only
    band = np.searchsorted(wanted, curves.band.astype(np.int64)).clip(0, len(wanted) - 1).astype(np.int8)
    depth = np.array([ZTF_DEPTH[name] for name in ZTF.bands])[band]
    mag = curves.mag.astype(np.float64) - shift[owner]
    err = ztf_error(mag, depth)
    # the simulated LSST noise stays in the magnitudes: add only what ZTF's noise has beyond it
    lsst_err = curves.err.astype(np.float64)
    mag = mag + np.sqrt(np.maximum(err ** 2 - lsst_err ** 2, 0.0)) * rng.standard_normal(len(mag))
    keep = in_ztf & (mag < depth) & (lsst_err < ZTF_MAX_LSST_ERR)
    keep &= (band != ZTF.bands.index("i")) | (rng.random(len(mag)) < ZTF_I_KEPT)
    ztf_curves = replace(curves, band=band, mag=mag.astype(np.float32), err=err.astype(np.float32), bands=ZTF.bands)
    return with_rows(labelled, ztf_curves.keep_rows(keep), ZTF.name)


def with_rows(labelled: LabelledSet, curves: LightCurves, survey: str) -> LabelledSet:
    """`labelled` with `curves` (its objects, fewer or changed rows) in their place and `survey` as its survey;
    objects left without any observation are left out."""
    return replace(labelled, curves=curves, survey=survey).subset(np.flatnonzero(np.diff(curves.offsets) > 0))


def load_plasticc_ztf() -> LabelledSet:
    """The PLAsTiCC training set (SIMULATED) as ZTF-like g r i photometry (`to_ztf_like`, seed 0)."""
    return to_ztf_like(load_plasticc())


def rebanded(labelled: LabelledSet, mapping: dict[str, str], bands: tuple[str, ...], survey: str) -> LabelledSet:
    """The observations of the bands in `mapping` (old label -> new label), relabelled into band order `bands`;
    objects left without any observation are left out."""
    curves = labelled.curves
    code = np.full(len(curves.bands), -1, dtype=np.int8)
    for old, new in mapping.items():
        code[curves.bands.index(old)] = bands.index(new)
    band = code[curves.band]
    return with_rows(labelled, replace(curves, band=band, bands=bands).keep_rows(band >= 0), survey)


def load_yse_ztf(directory: str | Path | None = None) -> LabelledSet:
    """YSE DR1 (REAL) restricted to its ZTF forced photometry, as ZTF bands (g, r of g r i); same classes as
    `load_yse`; objects without ZTF photometry are left out."""
    return rebanded(load_yse(directory), {"ztf_g": "g", "ztf_r": "r"}, ZTF.bands, ZTF.name)


# YSE broad classes as PLAsTiCC classes, to train on both ("other" has no single PLAsTiCC counterpart)
YSE_AS_PLASTICC = {"Ia": "SNIa", "II": "SNII", "Ibc": "SNIbc"}


def load_ztf_mix() -> LabelledSet:
    """PLAsTiCC made ZTF-like (SIMULATED) plus the REAL YSE DR1 ZTF photometry of the Ia, II and Ibc supernovae,
    labelled with the PLAsTiCC classes. YSE obj_ids (>= 2e10) follow PLAsTiCC's (< 2e8), so the table stays sorted.
    A split of it puts a share of the real objects in every part; `is_yse_id` tells them apart."""
    simulated, real = load_plasticc_ztf(), load_yse_ztf()
    kept = np.flatnonzero(np.isin(np.array(real.class_names)[real.labels], list(YSE_AS_PLASTICC)))
    real = real.subset(kept)
    labels = np.array([simulated.class_names.index(YSE_AS_PLASTICC[real.class_names[k]]) for k in real.labels])
    a, b = simulated.curves, real.curves
    curves = LightCurves(np.concatenate([a.obj_id, b.obj_id]), np.concatenate([a.band, b.band]),
                         np.concatenate([a.t, b.t]), np.concatenate([a.mag, b.mag]), np.concatenate([a.err, b.err]),
                         np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]), a.bands)
    targets = {name: np.concatenate([simulated.targets[name], real.targets[name]]) for name in simulated.targets}
    return LabelledSet(curves, np.concatenate([simulated.labels, labels]), simulated.class_names, targets,
                       simulated.n_rows_dropped_snr + real.n_rows_dropped_snr, (), ZTF.name)


def is_yse_id(obj_id: np.ndarray) -> np.ndarray:
    """bool: the obj_ids that yse_obj_id made (year * 10**7 + letters)."""
    return np.asarray(obj_id) >= 1_000 * 10**7


def load_yse_ps1(directory: str | Path | None = None) -> LabelledSet:
    """YSE DR1 (REAL) restricted to its Pan-STARRS1 photometry, as LSST bands (g r i z of ugrizy): how an LSST
    model does on real griz light curves; same classes as `load_yse`."""
    return rebanded(load_yse(directory), {f"ps1_{band}": band for band in "griz"}, LSST.bands, LSST.name)




# ---------------------------------------------------------------------------------------------------------------
# By name, for `mbfast train --dataset`

FILES = "files"  # the dataset name of one's own light curves + labels


def dataset_loaders() -> dict[str, Callable[[], LabelledSet]]:
    """Named labelled sets for `mbfast train --dataset` (files of one's own go through `--data`/`--labels`)."""
    return {"plasticc": load_plasticc, "plasticc_ztf": load_plasticc_ztf, "yse": load_yse, "yse_ztf": load_yse_ztf,
            "ztf_mix": load_ztf_mix}


def load_labelled(dataset: str, data_path: str | Path | None = None, labels_path: str | Path | None = None,
                  survey: str | None = None) -> LabelledSet:
    """A named set of dataset_loaders(), or with dataset "files" one's own tables (lightcurves.labelled.load_files)."""
    if dataset == FILES:
        if data_path is None or labels_path is None:
            raise ValueError("dataset 'files' needs the light curves (--data) and the labels (--labels)")
        return load_files(data_path, labels_path, survey)
    loaders = dataset_loaders()
    if dataset not in loaders:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(loaders)}, or your own light curves and "
                         f"labels with --data and --labels")
    return loaders[dataset]()
