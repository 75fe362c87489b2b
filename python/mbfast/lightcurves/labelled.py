"""LabelledSet: a LightCurves table with a class label and regression targets per object, and load_files, which
reads one's own labelled light curves (a table of rows plus a labels CSV) as one; select_objects, the paper's
object selection (§2).

The training data sets (mbfast.train.datasets) and the shipped sample (mbfast.lightcurves.sample) are LabelledSets.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mbfast.lightcurves.io import read_csv, read_parquet
from mbfast.lightcurves.surveys import SURVEYS
from mbfast.lightcurves.table import LightCurves

UNLABELLED = -1
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class LabelledSet:
    curves: LightCurves
    labels: np.ndarray                 # int64 (K,) index into class_names; -1 where unlabelled
    class_names: tuple[str, ...]
    targets: dict[str, np.ndarray]     # name -> float64 (K,), NaN where unknown (masked in the loss)
    n_rows_dropped_snr: int            # observations removed by the flux > flux_err cut
    names: tuple[str, ...] = ()        # (K,) survey names of the objects (e.g. IAU names), empty if none
    survey: str = "plasticc"           # the survey preset of curves.bands (mbfast.lightcurves.surveys), stored in models

    def subset(self, object_indices: np.ndarray) -> LabelledSet:
        """The objects at `object_indices` (in that order); n_rows_dropped_snr is carried over unchanged."""
        object_indices = np.asarray(object_indices, dtype=np.int64)
        names = tuple(self.names[i] for i in object_indices) if self.names else ()
        return LabelledSet(self.curves.select(object_indices), self.labels[object_indices], self.class_names,
                           {name: values[object_indices] for name, values in self.targets.items()},
                           self.n_rows_dropped_snr, names, self.survey)

    def class_counts(self) -> dict[str, int]:
        """Class name -> number of objects (unlabelled ones under "unlabelled" when present)."""
        counts = {name: int((self.labels == k).sum()) for k, name in enumerate(self.class_names)}
        n_unlabelled = int((self.labels == UNLABELLED).sum())
        if n_unlabelled:
            counts["unlabelled"] = n_unlabelled
        return counts


def load_files(curves_path: str | Path, labels_path: str | Path, survey: str | None = None) -> LabelledSet:
    """Light curves (Parquet or CSV: obj_id, band, t, mag, err) + a labels CSV (obj_id, label, then optional
    regression targets, empty where unknown) as a LabelledSet for training.

    Classes are the distinct labels in sorted order. `survey` names the band order (mbfast.lightcurves.surveys;
    required for CSV, read from a Parquet file written by mbfast otherwise). Objects without a label row are left
    out; a label row without light curve is an error naming the obj_id.
    """
    from mbfast.lightcurves.io import read_csv

    curves_path, labels_path = Path(curves_path), Path(labels_path)
    for path, what in ((curves_path, "light curves"), (labels_path, "labels")):
        if not path.exists():
            raise FileNotFoundError(f"{what} not found at {path}")
    curves = (read_csv(curves_path, survey) if curves_path.suffix.lower() == ".csv"
              else read_parquet(curves_path, survey))
    with open(labels_path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if "obj_id" not in header or LABEL_COLUMN not in header:
            raise ValueError(f"{labels_path}: the labels CSV needs columns obj_id and {LABEL_COLUMN}, has {header}")
        target_names = [name for name in header if name not in ("obj_id", LABEL_COLUMN)]
        label_by_id: dict[int, str] = {}
        targets_by_id: dict[int, list[float]] = {}
        for line, record in enumerate(reader, start=2):
            try:
                obj_id = int(record["obj_id"])
                values = [float(record[name]) if record[name].strip() else np.nan for name in target_names]
            except ValueError as error:
                raise ValueError(f"{labels_path} line {line}: {error}") from None
            if not record[LABEL_COLUMN].strip():
                raise ValueError(f"{labels_path} line {line} (obj_id {obj_id}): empty label")
            if obj_id in label_by_id:
                raise ValueError(f"{labels_path} line {line}: obj_id {obj_id} is labelled twice")
            label_by_id[obj_id] = record[LABEL_COLUMN].strip()
            targets_by_id[obj_id] = values
    object_ids = [int(i) for i in curves.object_ids]
    known = set(object_ids)
    missing = [obj_id for obj_id in label_by_id if obj_id not in known]
    if missing:
        raise ValueError(f"{labels_path}: obj_id {missing[0]} has a label but no light curve in {curves_path} "
                         f"({len(missing)} such objects)")
    chosen = np.array([k for k, obj_id in enumerate(object_ids) if obj_id in label_by_id], dtype=np.int64)
    class_names = tuple(sorted(set(label_by_id.values())))
    labels = np.array([class_names.index(label_by_id[object_ids[k]]) for k in chosen], dtype=np.int64)
    targets = {name: np.array([targets_by_id[object_ids[k]][j] for k in chosen], dtype=np.float64)
               for j, name in enumerate(target_names)}
    bands_survey = next((name for name, preset in SURVEYS.items() if preset.bands == curves.bands), "custom")
    return LabelledSet(curves.select(chosen), labels, class_names, targets, 0, (), survey or bands_survey)


def observations_per_band(curves: LightCurves) -> np.ndarray:
    """int64 (K, B): number of observations of each object in each band."""
    object_index = np.repeat(np.arange(curves.n_objects), np.diff(curves.offsets))
    counts = np.zeros((curves.n_objects, len(curves.bands)), dtype=np.int64)
    np.add.at(counts, (object_index, curves.band.astype(np.int64)), 1)
    return counts


def select_objects(labelled_set: LabelledSet, min_obs_per_band: int = 0, max_per_class: int | None = None,
                   seed: int = 0, required_bands: tuple[str, ...] | None = None) -> LabelledSet:
    """The paper's object selection (§2): enough observations per band, then at most `max_per_class` per class.

    Parameters
    ----------
    labelled_set : LabelledSet
    min_obs_per_band : int
        Keep objects with at least this many observations in each of `required_bands` (the paper uses 4).
    max_per_class : int or None
        Sample at most this many objects of each class, uniformly without replacement (Gaia 40 000, PS1 and
        ZTF 10 000); classes with fewer are used entirely. Unlabelled objects (label -1) count as one class.
    seed : int
        Seed of the sampling (numpy.random.default_rng).
    required_bands : tuple of str or None
        Bands the minimum applies to; None means every band of the table.

    Returns
    -------
    LabelledSet
        The selected objects, in their original table order.
    """
    curves = labelled_set.curves
    bands = curves.bands if required_bands is None else required_bands
    unknown = [band for band in bands if band not in curves.bands]
    if unknown:
        raise ValueError(f"required_bands {unknown} not in the table's bands {curves.bands}")
    counts = observations_per_band(curves)[:, [curves.bands.index(band) for band in bands]]
    eligible = np.flatnonzero(np.all(counts >= min_obs_per_band, axis=1))
    if max_per_class is not None:
        rng = np.random.default_rng(seed)
        chosen = []
        for label in np.unique(labelled_set.labels[eligible]):
            members = eligible[labelled_set.labels[eligible] == label]
            if len(members) > max_per_class:
                members = rng.choice(members, size=max_per_class, replace=False)
            chosen.append(members)
        eligible = np.sort(np.concatenate(chosen)) if chosen else eligible
    return labelled_set.subset(eligible)
