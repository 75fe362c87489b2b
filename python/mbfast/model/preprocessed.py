"""ModelInputs: the preprocessed form of many light curves, as flat arrays + offsets (paper eq. 2, §3.4–3.6).

Produced by mbfast.train.preprocess (Numba) and mbfast.model.reference (NumPy, slow and obvious); consumed by training and
by the parity tests. Dimension legend: K objects, R window rows over all objects, B bands, P colour pairs.
Rows of one object are listed in multiband order, so a row's position inside its object is its dense rank.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class ModelInputs:
    offsets: np.ndarray         # int64 (K + 1,) object k owns rows offsets[k]:offsets[k+1]
    object_ids: np.ndarray      # int64 (K,)
    rows: np.ndarray            # float32 (R, 4) [log10 dt_prev, log10 dt, dmag_prev, dmag] of eq. 2
    band: np.ndarray            # int8 (R,) band index of the row
    band_step: np.ndarray       # int32 (R,) index of the row inside its band's sequence (0 = band's 3rd obs)
    t: np.ndarray               # float64 (R,) MJD of the row's (newest) observation
    err: np.ndarray             # float32 (R,) 1-sigma mag of the row's observation (loss weights only)
    colours: np.ndarray         # float32 (R, P) forward-filled cumulative-mean colours (Appendix B)
    dt_central: np.ndarray      # float32 (R,) log10(1 + days since the previous row of the object) (§3.5)
    weight_band: np.ndarray     # float32 (R,) eq. 4 weights of the band model's loss, sum 1 per (object, band)
    weight_central: np.ndarray  # float32 (R,) eq. 4 weights of the central loss, sum 1 per object
    n_obs: np.ndarray           # int32 (K, B) observations per band
    t0: np.ndarray              # float64 (K, B) first MJD per band (0 where n_obs == 0)
    m0: np.ndarray              # float32 (K, B) first mag per band (0 where n_obs == 0)
    n_duplicates: int           # observations dropped as repeats of an (obj_id, band, t) already seen

    @property
    def n_objects(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_rows(self) -> np.ndarray:
        """int64 (K,) rows (= central steps = predictions) per object."""
        return np.diff(self.offsets)

    def assert_equal(self, other: ModelInputs, exact: bool = True) -> None:
        """Field-by-field comparison used by parity tests; names the first differing field."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if exact:
                np.testing.assert_array_equal(mine, theirs, err_msg=f"field {item.name}")
            else:
                np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-6, err_msg=f"field {item.name}")
