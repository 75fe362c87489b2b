"""Loaders for the labelled data sets in ../shared/data (and the small sample shipped in mbfast/data).

Each returns a LightCurves table plus per-object labels and truth in the table's object order.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mbfast.surveys import PLASTICC, SNANA_ZERO_POINT, flux_to_mag
from mbfast.table import LightCurves, from_arrays

# PLAsTiCC `target` codes -> the class names astronomers use (Kessler et al. 2019, Table 1)
PLASTICC_CLASSES = {
    90: "SNIa", 42: "SNII", 62: "SNIbc", 67: "SNIa-91bg", 52: "SNIax", 95: "SLSN-I", 15: "TDE", 64: "KN",
    88: "AGN", 65: "M-dwarf", 16: "EB", 92: "RRL", 53: "Mira", 6: "uLens-Single",
}
PLASTICC_CLASS_ORDER = ("SNIa", "SNII", "SNIbc", "SNIa-91bg", "SNIax", "SLSN-I", "TDE", "KN", "AGN", "M-dwarf",
                        "EB", "RRL", "Mira", "uLens-Single")
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PLASTICC_DIR = SHARED_DATA / "plasticc_train_simulated"


@dataclass(frozen=True)
class LabelledSet:
    curves: LightCurves
    labels: np.ndarray                 # int64 (K,) index into class_names
    class_names: tuple[str, ...]
    targets: dict[str, np.ndarray]     # name -> float64 (K,), NaN where unknown (masked in the loss)
    n_rows_dropped_snr: int            # observations removed by the flux > flux_err cut


def load_plasticc(light_curves: str | Path = PLASTICC_DIR / "plasticc_train_lightcurves.parquet",
                  metadata: str | Path = PLASTICC_DIR / "plasticc_train_metadata.csv") -> LabelledSet:
    """PLAsTiCC training set (SIMULATED LSST): ugrizy FLUXCAL -> AB mag, 14 classes, `true_z` as regression target.

    Redshift is masked (NaN) for galactic objects (true_z == 0). Objects with no observation left after the
    S/N cut are absent from the table.
    """
    table = pq.read_table(light_curves, columns=["object_id", "mjd", "passband", "flux", "flux_err"])
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    magnitudes = flux_to_mag(columns["flux"], columns["flux_err"], SNANA_ZERO_POINT)
    keep = magnitudes.keep
    curves = from_arrays(columns["object_id"][keep], columns["passband"][keep].astype(np.int64),
                         columns["mjd"][keep], magnitudes.mag, magnitudes.err, PLASTICC.bands)
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
    return LabelledSet(curves, labels, PLASTICC_CLASS_ORDER, {"redshift": redshift}, int((~keep).sum()))
