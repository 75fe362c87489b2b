"""Slow, obvious NumPy versions of preprocessing and of one model step: the reference every fast path is tested against.

Not for production: one Python loop iteration per observation. docs/model.md states the same maths in prose.
Dimension legend: B bands, L layers, H hidden, C classes, P colour pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mbfast.model.config import ModelConfig
from mbfast.model.preprocessed import ModelInputs
from mbfast.model.modelfile import ModelFile
from mbfast.lightcurves.table import LightCurves


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing (paper §3.1, §3.4-3.6, Appendix B)
# ----------------------------------------------------------------------------------------------------------------

def preprocess_reference(curves: LightCurves, n_skip: int) -> ModelInputs:
    """Window rows, multiband order, colours, multiband dt and eq. 4 loss weights for every object."""
    n_bands = len(curves.bands)
    pairs = [(a, b) for a in range(n_bands) for b in range(a + 1, n_bands)]
    columns: dict[str, list] = {name: [] for name in
                                ("rows", "band", "band_step", "t", "err", "colours", "dt_central",
                                 "weight_band", "weight_central")}
    offsets = [0]
    n_obs = np.zeros((curves.n_objects, n_bands), dtype=np.int32)
    t0 = np.zeros((curves.n_objects, n_bands), dtype=np.float64)
    m0 = np.zeros((curves.n_objects, n_bands), dtype=np.float32)
    n_duplicates = 0
    for k in range(curves.n_objects):
        start, stop = int(curves.offsets[k]), int(curves.offsets[k + 1])
        band_times: list[list[float]] = [[] for _ in range(n_bands)]
        band_mags: list[list[float]] = [[] for _ in range(n_bands)]
        mag_sum = np.zeros(n_bands)
        object_rows: list[dict] = []
        previous_row_t = float(curves.t[start])  # first multiband dt counts from the object's first observation
        for obs in range(start, stop):
            b, t, mag = int(curves.band[obs]), float(curves.t[obs]), float(curves.mag[obs])
            if band_times[b] and band_times[b][-1] == t:
                n_duplicates += 1  # documented policy: keep the first of repeated (obj_id, band, t)
                continue
            band_times[b].append(t)
            band_mags[b].append(mag)
            mag_sum[b] += mag
            count = len(band_times[b])
            if count < 3:
                continue
            times, mags = band_times[b], band_mags[b]
            row = [np.log10(times[-2] - times[-3]), np.log10(times[-1] - times[-2]),
                   mags[-2] - mags[-3], mags[-1] - mags[-2]]
            means = [mag_sum[i] / len(band_times[i]) if band_times[i] else 0.0 for i in range(n_bands)]
            colours = [means[a] - means[c] if band_times[a] and band_times[c] else 0.0 for a, c in pairs]
            object_rows.append(dict(rows=row, band=b, band_step=count - 3, t=t, err=float(curves.err[obs]),
                                    colours=colours, dt_central=np.log10(1.0 + max(t - previous_row_t, 0.0))))
            previous_row_t = t
        for b in range(n_bands):
            n_obs[k, b] = len(band_times[b])
            if band_times[b]:
                t0[k, b], m0[k, b] = band_times[b][0], band_mags[b][0]
        add_loss_weights(object_rows, n_skip)
        for row in object_rows:
            for name, value in row.items():
                columns[name].append(value)
        offsets.append(offsets[-1] + len(object_rows))
    return ModelInputs(
        offsets=np.array(offsets, dtype=np.int64),
        object_ids=curves.object_ids.astype(np.int64),
        rows=np.array(columns["rows"], dtype=np.float32).reshape(-1, 4),
        band=np.array(columns["band"], dtype=np.int8),
        band_step=np.array(columns["band_step"], dtype=np.int32),
        t=np.array(columns["t"], dtype=np.float64),
        err=np.array(columns["err"], dtype=np.float32),
        colours=np.array(columns["colours"], dtype=np.float32).reshape(len(columns["band"]), len(pairs)),
        dt_central=np.array(columns["dt_central"], dtype=np.float32),
        weight_band=np.array(columns["weight_band"], dtype=np.float32),
        weight_central=np.array(columns["weight_central"], dtype=np.float32),
        n_obs=n_obs, t0=t0, m0=m0, n_duplicates=n_duplicates,
    )


def add_loss_weights(object_rows: list[dict], n_skip: int) -> None:
    """Eq. 4 with N_skip, for the band losses and for the central loss (§3.6).

    Band: w = (1/u) / sum(1/u) over the band's steps >= n_skip. Central: over central steps >= n_skip, each
    band's uncertainties are first divided by their band sum, then w = (1/u~) / sum(1/u~).
    """
    for row in object_rows:
        row["weight_band"] = 0.0
        row["weight_central"] = 0.0
    bands = {row["band"] for row in object_rows}
    for b in bands:
        kept = [row for row in object_rows if row["band"] == b and row["band_step"] >= n_skip]
        total = sum(1.0 / row["err"] for row in kept)
        for row in kept:
            row["weight_band"] = (1.0 / row["err"]) / total
    central = object_rows[n_skip:]
    band_sums = {b: sum(row["err"] for row in central if row["band"] == b) for b in bands}
    inverse = [band_sums[row["band"]] / row["err"] for row in central]
    for row, value in zip(central, inverse):
        row["weight_central"] = value / sum(inverse)


# ----------------------------------------------------------------------------------------------------------------
# One model step (paper §3.2-3.5), inference semantics: BatchNorm with running statistics
# ----------------------------------------------------------------------------------------------------------------

def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max())
    return shifted / shifted.sum()


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    return (x - x.mean()) / np.sqrt(x.var() + eps) * weight + bias


@dataclass
class StackState:
    hidden: np.ndarray  # (L, H)
    cell: np.ndarray    # (L, H)


@dataclass
class ObjectState:
    """Recurrent state of one object: one stack per band and the central stack."""

    bands: list[StackState]
    central: StackState
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutput:
    probs: np.ndarray       # (C,) class probabilities after this step
    regression: np.ndarray  # (T,) regression targets in physical units
    embedding: np.ndarray   # (H,) central layer mix (the multiband embedding)
    band_probs: np.ndarray  # (C,) the band model's own head, used to train it


class ReferenceModel:
    """The model as a plain NumPy function of (state, row), float64 throughout."""

    def __init__(self, model: ModelFile) -> None:
        self.config: ModelConfig = model.config
        self.w = {name: array.astype(np.float64) for name, array in model.tensors.items()}

    def new_state(self) -> ObjectState:
        config = self.config
        band_state = [StackState(np.zeros((config.band_layers, config.band_hidden)),
                                 np.zeros((config.band_layers, config.band_hidden))) for _ in config.bands]
        central = StackState(np.zeros((config.central_layers, config.central_hidden)),
                             np.zeros((config.central_layers, config.central_hidden)))
        return ObjectState(band_state, central)

    def stack_step(self, prefix: str, layers: int, x: np.ndarray, state: StackState) -> None:
        """Residual LayerNorm'd LSTM stack, one step; updates `state` in place (mirrors train/stack.py)."""
        w, eps = self.w, self.config.layernorm_eps
        layer_in = x
        for layer in range(layers):
            cell = f"{prefix}.lstm.{layer}"
            gates = (w[f"{cell}.weight_ih_l0"] @ layer_in + w[f"{cell}.bias_ih_l0"]
                     + w[f"{cell}.weight_hh_l0"] @ state.hidden[layer] + w[f"{cell}.bias_hh_l0"])
            i, f, g, o = np.split(gates, 4)
            state.cell[layer] = sigmoid(f) * state.cell[layer] + sigmoid(i) * np.tanh(g)
            state.hidden[layer] = sigmoid(o) * np.tanh(state.cell[layer])
            if layer == layers - 1:
                break
            if layer == 0:  # first residual projects the input to H
                skip = w[f"{prefix}.residual.weight"] @ x + w[f"{prefix}.residual.bias"]
            else:
                skip = layer_in
            layer_in = layer_norm(state.hidden[layer] + skip, w[f"{prefix}.norms.{layer}.weight"],
                                  w[f"{prefix}.norms.{layer}.bias"], eps)

    def ffnn(self, prefix: str, layers: int, x: np.ndarray) -> np.ndarray:
        """[Linear -> BatchNorm (running stats) -> ReLU] x layers -> Linear."""
        w, eps = self.w, self.config.batchnorm_eps
        for layer in range(layers):
            name = f"{prefix}.layers.{layer}"
            x = w[f"{name}.linear.weight"] @ x
            x = ((x - w[f"{name}.norm.running_mean"]) / np.sqrt(w[f"{name}.norm.running_var"] + eps)
                 * w[f"{name}.norm.weight"] + w[f"{name}.norm.bias"])
            x = np.maximum(x, 0.0)
        return w[f"{prefix}.out.weight"] @ x + w[f"{prefix}.out.bias"]

    def step(self, state: ObjectState, band: int, row: np.ndarray, colours: np.ndarray,
             dt_central: float) -> StepOutput:
        """One band step + one central step for a window row of `band` (paper §3.5: two evaluations)."""
        config, w = self.config, self.w
        band_state = state.bands[band]
        self.stack_step(f"bands.{band}.stack", config.band_layers, np.asarray(row, dtype=np.float64), band_state)
        band_mix = softmax(w[f"bands.{band}.stack.mix"]) @ band_state.hidden
        band_probs = softmax(self.ffnn(f"bands.{band}.head", config.band_head_layers, band_mix))
        # translation: the central model's own mix of this band's layers (eq. 3), FFNN, then LayerNorm (§3.3)
        translated = softmax(w["central.band_mix"][band]) @ band_state.hidden
        for layer in range(config.translation_layers):
            name = f"central.translators.{band}.layers.{layer}"
            translated = np.maximum(w[f"{name}.weight"] @ translated + w[f"{name}.bias"], 0.0)
        translated = layer_norm(translated, w[f"central.translators.{band}.norm.weight"],
                                w[f"central.translators.{band}.norm.bias"], config.layernorm_eps)
        self.stack_step("central.stack", config.central_layers, translated, state.central)
        embedding = softmax(w["central.stack.mix"]) @ state.central.hidden
        final = np.concatenate([embedding, np.asarray(colours, dtype=np.float64), [float(dt_central)]])
        probs = softmax(self.ffnn("central.classifier", config.classifier_layers, final))
        regression = np.array([
            self.ffnn(f"central.regressors.{index}", config.regression_layers, final)[0] * target.std + target.mean
            for index, target in enumerate(config.regression_targets)])
        return StepOutput(probs, regression, embedding, band_probs)

    def run_object(self, inputs: ModelInputs, k: int) -> list[StepOutput]:
        """Every step of object k of `inputs`, in multiband order."""
        state = self.new_state()
        return [self.step(state, int(inputs.band[r]), inputs.rows[r], inputs.colours[r], float(inputs.dt_central[r]))
                for r in range(int(inputs.offsets[k]), int(inputs.offsets[k + 1]))]
