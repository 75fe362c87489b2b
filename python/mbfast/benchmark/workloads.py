"""The step workloads every implementation is timed on: the paper's ZTF model shape and pre-generated rounds of
observations for pre-warmed objects (`mbfast bench`, bench/bench_step.py, bench/bench_cuda.py).
Dimension legend: N rows per call (distinct objects), R rounds, B bands, P colour pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mbfast.model.config import ModelConfig

BATCH_SIZES = (1, 16, 256, 4096, 65536)

# The paper's ZTF configuration (Becker et al. 2025): bands g r, band stack 3 x 128, central stack 2 x 128,
# classifier 3 x 128, 15 classes; other sizes at their ModelConfig defaults, no regression targets.
ZTF_CONFIG = ModelConfig(survey="ztf", bands=("g", "r"), class_names=tuple(f"class{c}" for c in range(15)),
                         band_hidden=128, band_layers=3, central_hidden=128, central_layers=2,
                         classifier_hidden=128, classifier_layers=3)


def rounds_for(batch: int) -> int:
    """Timed calls per batch size: ~20 k rows in all, 3 to 200 calls."""
    return max(3, min(200, 20_000 // batch))


@dataclass(frozen=True)
class StepRounds:
    """Observations for `n_rounds` calls of N rows, one row per object, every row a predicted one.

    Objects are pre-warmed by `warm` with 2 observations per band; round k then gives object i one observation in
    band (i + k) % B at t = T0 + 2 B + k days, so every later round is the 3rd or later observation of its band and
    forms a window row. The baselines get the same band per row and ready window rows (they do no preprocessing).
    """

    obj_id: np.ndarray      # int64 (N,)
    band: np.ndarray        # int8 (R, N)
    t: np.ndarray           # float64 (R, N) MJD
    mag: np.ndarray         # float32 (R, N)
    err: np.ndarray         # float32 (R, N)
    obj_index: np.ndarray   # int64 (N,) state rows of the baselines, a permutation
    rows: np.ndarray        # float32 (N, 4) window rows of the baselines
    colours: np.ndarray     # float32 (N, P)
    dt_central: np.ndarray  # float32 (N, 1)

    T0 = 60_000.0

    @classmethod
    def make(cls, config: ModelConfig, batch: int, n_rounds: int, seed: int = 0) -> StepRounds:
        rng = np.random.default_rng(seed)
        n_bands = config.n_bands
        objects = np.arange(batch, dtype=np.int64)
        band = ((objects[None, :] + np.arange(n_rounds)[:, None]) % n_bands).astype(np.int8)
        t = cls.T0 + 2 * n_bands + np.repeat(np.arange(n_rounds, dtype=np.float64)[:, None], batch, axis=1)
        mag = (20.0 + 0.2 * rng.standard_normal((n_rounds, batch))).astype(np.float32)
        err = np.full((n_rounds, batch), 0.05, dtype=np.float32)
        rows = np.column_stack([np.log10(rng.uniform(0.5, 3.0, (batch, 2))),
                                0.2 * rng.standard_normal((batch, 2))]).astype(np.float32)
        colours = (0.3 * rng.standard_normal((batch, config.n_colours))).astype(np.float32)
        dt_central = np.log10(1.0 + rng.uniform(0.0, 3.0, (batch, 1))).astype(np.float32)
        return cls(objects * 7919 + 1, band, t, mag, err, rng.permutation(batch).astype(np.int64), rows, colours,
                   dt_central)

    def warm(self, engine: object) -> None:
        """Give every object 2 observations per band (status warming_up) at t = T0 .. T0 + 2 B - 1."""
        n_bands = len(engine.bands)  # type: ignore[attr-defined]
        for j in range(2 * n_bands):
            n = len(self.obj_id)
            engine.step(self.obj_id, np.full(n, j % n_bands, dtype=np.int8),  # type: ignore[attr-defined]
                        np.full(n, self.T0 + j), np.full(n, 20.0, dtype=np.float32),
                        np.full(n, 0.05, dtype=np.float32), outputs=())

    def engine_args(self, k: int) -> tuple[np.ndarray, ...]:
        return self.obj_id, self.band[k], self.t[k], self.mag[k], self.err[k]

    def baseline_args(self, k: int) -> tuple[np.ndarray, ...]:
        return self.obj_index, self.band[k].astype(np.int64), self.rows, self.colours, self.dt_central
