"""Padded batches from ModelInputs: one padded sequence per (object, band), plus the central sequence in
multiband order with, for every central step, the index of its band state (paper §3.3: sort by order o).

NumPy only, so batches can be built without torch; `Batch.to_torch` moves them to a device.
Dimension legend: K objects in the batch, B bands, T_b steps of band b, T central steps, P colour pairs, G targets.
Central valid positions taken row-major over (K, T) are exactly the batch objects' ModelInputs rows, in order.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mbfast.model.preprocessed import ModelInputs


Array = Any  # np.ndarray; torch.Tensor after Batch.to_torch


@dataclass
class Batch:
    band_rows: list[Array]  # per band: float32 (K, T_b, 4) window rows of eq. 2, zero padded
    band_mask: list[Array]  # per band: bool (K, T_b) valid steps
    band_weight: list[Array]  # per band: float32 (K, T_b) eq. 4 weights of the band loss (0 on padding)
    state_index: Array   # int64 (K, T) index of each central step's band state in the flattened, concatenated
                         # band tensors [band 0 (K*T_0), band 1 (K*T_1), ...]; padding -> one zero row at the end
    band_of_step: Array  # int64 (M,) band of each valid central step (M = sum of rows)
    band_position: Array  # int64 (M,) index of each valid central step among its band's valid positions
    central_mask: Array  # bool (K, T)
    colours: Array       # float32 (K, T, P)
    dt_central: Array    # float32 (K, T)
    central_weight: Array  # float32 (K, T) eq. 4 weights of the central loss
    n_rows: Array        # int64 (K,) central steps per object (>= 1)
    labels: Array        # int64 (K,) or None
    targets: Array       # float32 (K, G) z-scored regression targets, NaN where unknown; or None

    def to_torch(self, device: str = "cpu") -> Batch:
        import torch

        def convert(value):
            if value is None:
                return None
            if isinstance(value, list):
                return [convert(item) for item in value]
            return torch.as_tensor(value, device=device)

        return Batch(**{item.name: convert(getattr(self, item.name)) for item in fields(self)})


def object_rows(inputs: ModelInputs, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of `objects` in order: (row index (M,), batch object of each row (M,), step inside the object (M,))."""
    starts = inputs.offsets[objects]
    counts = inputs.offsets[objects + 1] - starts
    owner = np.repeat(np.arange(len(objects)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    step = np.arange(counts.sum()) - np.repeat(first, counts)
    return np.repeat(starts, counts) + step, owner, step


def make_batch(inputs: ModelInputs, objects: np.ndarray, labels: np.ndarray | None = None,
               targets: np.ndarray | None = None) -> Batch:
    """Batch of the objects at indices `objects` of `inputs` (each must have >= 1 row).

    labels (K_all,) and targets (K_all, G) are indexed by the same object indices as `inputs`.
    """
    objects = np.asarray(objects, dtype=np.int64)
    n_objects, n_bands = len(objects), inputs.n_obs.shape[1]
    rows, owner, step = object_rows(inputs, objects)
    n_rows = inputs.offsets[objects + 1] - inputs.offsets[objects]
    if np.any(n_rows < 1):
        raise ValueError(f"object {int(objects[np.argmin(n_rows)])} (obj_id "
                         f"{int(inputs.object_ids[objects[np.argmin(n_rows)]])}) has no window row to batch")
    n_steps = int(n_rows.max())
    band = inputs.band[rows].astype(np.int64)
    band_step = inputs.band_step[rows].astype(np.int64)

    band_rows, band_mask, band_weight = [], [], []
    state_index = np.empty(len(rows), dtype=np.int64)
    band_position = np.empty(len(rows), dtype=np.int64)
    base = 0
    for b in range(n_bands):
        mine = band == b
        length = int(band_step[mine].max()) + 1 if mine.any() else 0
        padded = np.zeros((n_objects, length, 4), dtype=np.float32)
        mask = np.zeros((n_objects, length), dtype=bool)
        weight = np.zeros((n_objects, length), dtype=np.float32)
        padded[owner[mine], band_step[mine]] = inputs.rows[rows[mine]]
        mask[owner[mine], band_step[mine]] = True
        weight[owner[mine], band_step[mine]] = inputs.weight_band[rows[mine]]
        flat = owner[mine] * length + band_step[mine]
        state_index[mine] = base + flat
        # valid positions of a band are taken row-major over (K, T_b): rank of `flat` among them
        band_position[mine] = np.searchsorted(np.flatnonzero(mask.ravel()), flat)
        base += n_objects * length
        band_rows.append(padded)
        band_mask.append(mask)
        band_weight.append(weight)

    def central(values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        out = np.full((n_objects, n_steps) + values.shape[1:], fill, dtype=values.dtype)
        out[owner, step] = values
        return out

    return Batch(
        band_rows=band_rows, band_mask=band_mask, band_weight=band_weight,
        state_index=central(state_index, fill=base), band_of_step=band, band_position=band_position,
        central_mask=central(np.ones(len(rows), dtype=bool), fill=False),
        colours=central(inputs.colours[rows]), dt_central=central(inputs.dt_central[rows]),
        central_weight=central(inputs.weight_central[rows]), n_rows=n_rows.astype(np.int64),
        labels=None if labels is None else np.asarray(labels)[objects].astype(np.int64),
        targets=None if targets is None else np.asarray(targets)[objects].astype(np.float32),
    )
