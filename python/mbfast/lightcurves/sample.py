"""The sample of PLAsTiCC shipped in mbfast/data (made by mbfast.train.datasets.write_plasticc_sample; see
mbfast/data/PROVENANCE.md), and the PLAsTiCC class names it is labelled with. Works without ../shared/data.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mbfast.lightcurves.io import read_parquet
from mbfast.lightcurves.labelled import LabelledSet

# PLAsTiCC `target` codes -> the class names astronomers use (Kessler et al. 2019, Table 1)
PLASTICC_CLASSES = {
    90: "SNIa", 42: "SNII", 62: "SNIbc", 67: "SNIa-91bg", 52: "SNIax", 95: "SLSN-I", 15: "TDE", 64: "KN",
    88: "AGN", 65: "M-dwarf", 16: "EB", 92: "RRL", 53: "Mira", 6: "uLens-Single",
}
PLASTICC_CLASS_ORDER = ("SNIa", "SNII", "SNIbc", "SNIa-91bg", "SNIax", "SLSN-I", "TDE", "KN", "AGN", "M-dwarf",
                        "EB", "RRL", "Mira", "uLens-Single")
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data"
# The PLAsTiCC sample shipped in mbfast/data (made by write_plasticc_sample; see mbfast/data/PROVENANCE.md)

SAMPLE_CURVES = "plasticc_sample.parquet"
SAMPLE_LABELS = "plasticc_sample_labels.csv"


def load_sample(directory: str | Path = SAMPLE_DIR) -> LabelledSet:
    """About 300 SIMULATED PLAsTiCC objects (22 per class), shipped with mbfast: works without ../shared/data.

    Magnitudes are already converted (FLUXCAL -> AB, flux > flux_err cut applied), so n_rows_dropped_snr is 0.

    Examples
    --------
    >>> sample = load_sample()
    >>> sample.curves.bands, sample.class_counts()["KN"]
    (('u', 'g', 'r', 'i', 'z', 'y'), 22)
    """
    directory = Path(directory)
    curves = read_parquet(directory / SAMPLE_CURVES)
    labels_by_id: dict[int, int] = {}
    redshift_by_id: dict[int, float] = {}
    with open(directory / SAMPLE_LABELS, newline="") as handle:
        for record in csv.DictReader(handle):
            labels_by_id[int(record["obj_id"])] = PLASTICC_CLASS_ORDER.index(record["class"])
            redshift_by_id[int(record["obj_id"])] = float(record["redshift"]) if record["redshift"] else np.nan
    labels = np.array([labels_by_id[int(i)] for i in curves.object_ids], dtype=np.int64)
    redshift = np.array([redshift_by_id[int(i)] for i in curves.object_ids], dtype=np.float64)
    return LabelledSet(curves, labels, PLASTICC_CLASS_ORDER, {"redshift": redshift}, 0)

