"""PyTorch baseline of Engine.step: one observation per row, LSTM-cell maths with torch matmuls, states in
(n_objects, ...) tensors gathered and scattered by index. Weights come from an mbfast model file.

Not the training model (mbfast.train runs whole sequences); this is what one would write to serve the model from
PyTorch one observation at a time. BatchNorm is folded into the preceding Linear (eval mode: running statistics).
Maths mirror mbfast.model.reference.ReferenceModel.step. Dimension legend: N rows (distinct objects), K objects held,
B bands, L band layers, H band hidden, Lc central layers, Hc central hidden, P colour pairs, C classes, T targets.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from mbfast.model.config import ModelConfig
from mbfast.model.modelfile import ModelFile


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class StackWeights(nn.Module):
    """One residual LayerNorm'd LSTM stack (mbfast/train/stack.py), weights transposed for x @ W."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str, layers: int) -> None:
        super().__init__()
        self.layers = layers
        self.hidden = w[f"{prefix}.residual.bias"].shape[0]  # a Python int: exporters want static norm shapes
        for layer in range(layers):
            cell = f"{prefix}.lstm.{layer}"
            self.register_buffer(f"w_ih_{layer}", _tensor(w[f"{cell}.weight_ih_l0"].T))     # (in, 4H)
            self.register_buffer(f"w_hh_{layer}", _tensor(w[f"{cell}.weight_hh_l0"].T))     # (H, 4H)
            self.register_buffer(f"bias_{layer}", _tensor(w[f"{cell}.bias_ih_l0"] + w[f"{cell}.bias_hh_l0"]))
        self.register_buffer("residual_w", _tensor(w[f"{prefix}.residual.weight"].T))        # (in, H)
        self.register_buffer("residual_b", _tensor(w[f"{prefix}.residual.bias"]))
        for layer in range(layers - 1):
            self.register_buffer(f"norm_w_{layer}", _tensor(w[f"{prefix}.norms.{layer}.weight"]))
            self.register_buffer(f"norm_b_{layer}", _tensor(w[f"{prefix}.norms.{layer}.bias"]))

    def step(self, x: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, eps: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, in), hidden/cell (N, L, H) -> new hidden, new cell (N, L, H)."""
        new_hidden, new_cell = [], []
        layer_in = x
        for layer in range(self.layers):
            gates = torch.addmm(getattr(self, f"bias_{layer}"), layer_in, getattr(self, f"w_ih_{layer}"))
            gates = gates.addmm(hidden[:, layer], getattr(self, f"w_hh_{layer}"))   # (N, 4H), order i f g o
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * cell[:, layer] + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            new_hidden.append(h)
            new_cell.append(c)
            if layer == self.layers - 1:
                break
            skip = torch.addmm(self.residual_b, x, self.residual_w) if layer == 0 else layer_in
            layer_in = nn.functional.layer_norm(h + skip, (self.hidden,), getattr(self, f"norm_w_{layer}"),
                                                getattr(self, f"norm_b_{layer}"), eps)
        return torch.stack(new_hidden, dim=1), torch.stack(new_cell, dim=1)


class FoldedFFNN(nn.Module):
    """[Linear -> BatchNorm (running stats, folded into the Linear) -> ReLU] x layers -> Linear."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str, layers: int, eps: float) -> None:
        super().__init__()
        self.layers = layers
        for layer in range(layers):
            name = f"{prefix}.layers.{layer}"
            scale = w[f"{name}.norm.weight"] / np.sqrt(w[f"{name}.norm.running_var"] + eps)
            self.register_buffer(f"w_{layer}", _tensor((w[f"{name}.linear.weight"] * scale[:, None]).T))
            self.register_buffer(f"b_{layer}", _tensor(w[f"{name}.norm.bias"] - w[f"{name}.norm.running_mean"] * scale))
        self.register_buffer("out_w", _tensor(w[f"{prefix}.out.weight"].T))
        self.register_buffer("out_b", _tensor(w[f"{prefix}.out.bias"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in range(self.layers):
            x = torch.relu(torch.addmm(getattr(self, f"b_{layer}"), x, getattr(self, f"w_{layer}")))
        return torch.addmm(self.out_b, x, self.out_w)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class CentralWeights(nn.Module):
    """Central stack, its layer mix, the classifier and the regressors: shared by every band's step."""

    def __init__(self, model: ModelFile) -> None:
        super().__init__()
        config, w = model.config, model.tensors
        self.stack = StackWeights(w, "central.stack", config.central_layers)
        self.register_buffer("mix", _tensor(_softmax(w["central.stack.mix"])))                  # (Lc,)
        self.classifier = FoldedFFNN(w, "central.classifier", config.classifier_layers, config.batchnorm_eps)
        self.regressors = nn.ModuleList(
            FoldedFFNN(w, f"central.regressors.{k}", config.regression_layers, config.batchnorm_eps)
            for k in range(len(config.regression_targets)))
        self.register_buffer("target_std", _tensor(np.array([t.std for t in config.regression_targets])))
        self.register_buffer("target_mean", _tensor(np.array([t.mean for t in config.regression_targets])))


class BandStep(nn.Module):
    """One band step + one central step for rows of band `band`, on gathered states: a pure function of its inputs,
    so torch.compile and the ONNX exporter see one graph. forward returns (band_hidden, band_cell, central_hidden,
    central_cell, probs) and, when the model has regression targets, regression (N, T) in physical units."""

    def __init__(self, model: ModelFile, band: int, central: CentralWeights) -> None:
        super().__init__()
        config, w = model.config, model.tensors
        self.config = config
        self.stack = StackWeights(w, f"bands.{band}.stack", config.band_layers)
        self.central = central
        self.register_buffer("translation_mix", _tensor(_softmax(w["central.band_mix"][band])))  # (L,)
        self.translation_layers = config.translation_layers
        for layer in range(config.translation_layers):
            name = f"central.translators.{band}.layers.{layer}"
            self.register_buffer(f"tw_{layer}", _tensor(w[f"{name}.weight"].T))
            self.register_buffer(f"tb_{layer}", _tensor(w[f"{name}.bias"]))
        self.register_buffer("tnorm_w", _tensor(w[f"central.translators.{band}.norm.weight"]))
        self.register_buffer("tnorm_b", _tensor(w[f"central.translators.{band}.norm.bias"]))

    def forward(self, rows: torch.Tensor, band_hidden: torch.Tensor, band_cell: torch.Tensor,
                central_hidden: torch.Tensor, central_cell: torch.Tensor, colours: torch.Tensor,
                dt_central: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """rows (N, 4), band_* (N, L, H), central_* (N, Lc, Hc), colours (N, P), dt_central (N, 1)."""
        config = self.config
        eps = config.layernorm_eps
        band_hidden, band_cell = self.stack.step(rows, band_hidden, band_cell, eps)
        x = torch.einsum("l,nlh->nh", self.translation_mix, band_hidden)                    # (N, H), eq. 3
        for layer in range(self.translation_layers):
            x = torch.relu(torch.addmm(getattr(self, f"tb_{layer}"), x, getattr(self, f"tw_{layer}")))
        x = nn.functional.layer_norm(x, (config.central_hidden,), self.tnorm_w, self.tnorm_b, eps)    # (N, Hc)
        central_hidden, central_cell = self.central.stack.step(x, central_hidden, central_cell, eps)
        embedding = torch.einsum("l,nlh->nh", self.central.mix, central_hidden)           # (N, Hc)
        final = torch.cat([embedding, colours, dt_central], dim=1)                          # (N, F)
        probs = torch.softmax(self.central.classifier(final), dim=1)                        # (N, C)
        outputs = (band_hidden, band_cell, central_hidden, central_cell, probs)
        if len(self.central.regressors):
            regression = torch.cat([regressor(final) for regressor in self.central.regressors], dim=1)
            outputs += (regression * self.central.target_std + self.central.target_mean,)
        return outputs


class TorchStepper:
    """States of `n_objects` objects in dense tensors and a step over rows of distinct objects.

    `band_steps` may be replaced by compiled versions (torch.compile) of the same BandStep modules.
    """

    def __init__(self, model: ModelFile, n_objects: int) -> None:
        config = model.config
        self.config: ModelConfig = config
        central = CentralWeights(model)
        self.band_steps: list[nn.Module] = [BandStep(model, band, central).eval() for band in range(config.n_bands)]
        self.band_hidden = [torch.zeros(n_objects, config.band_layers, config.band_hidden)  # B x (K, L, H)
                            for _ in config.bands]
        self.band_cell = [torch.zeros_like(state) for state in self.band_hidden]
        self.central_hidden = torch.zeros(n_objects, config.central_layers, config.central_hidden)  # (K, Lc, Hc)
        self.central_cell = torch.zeros_like(self.central_hidden)

    def to(self, device: torch.device) -> TorchStepper:
        """Move the step modules and every state tensor to `device` (the CUDA benchmark's PyTorch baseline)."""
        self.band_steps = [band_step.to(device) for band_step in self.band_steps]
        self.band_hidden = [state.to(device) for state in self.band_hidden]
        self.band_cell = [state.to(device) for state in self.band_cell]
        self.central_hidden = self.central_hidden.to(device)
        self.central_cell = self.central_cell.to(device)
        return self

    @torch.inference_mode()
    def step(self, obj_index: torch.Tensor, band: torch.Tensor, rows: torch.Tensor, colours: torch.Tensor,
             dt_central: torch.Tensor) -> torch.Tensor:
        """obj_index int64 (N,) distinct state rows, band int64 (N,), rows (N, 4), colours (N, P), dt_central (N, 1)
        -> probs (N, C), on the states' device. States of the rows' objects are advanced in place."""
        probs = torch.empty(len(band), self.config.n_classes, device=self.central_hidden.device)
        for b, band_step in enumerate(self.band_steps):
            picked = (band == b).nonzero().squeeze(1)                                         # (M,)
            if len(picked) == 0:
                continue
            index = obj_index[picked]
            out = band_step(rows[picked], self.band_hidden[b][index], self.band_cell[b][index],
                            self.central_hidden[index], self.central_cell[index], colours[picked],
                            dt_central[picked])
            self.band_hidden[b][index] = out[0]
            self.band_cell[b][index] = out[1]
            self.central_hidden[index] = out[2]
            self.central_cell[index] = out[3]
            probs[picked] = out[4]
        return probs


def compile_stepper(stepper: TorchStepper) -> TorchStepper:
    """Replace each BandStep by torch.compile(BandStep, dynamic=True): one graph per band for every batch size.
    Compilation happens lazily, on the first call (run it under warnings.catch_warnings: torch's own
    deprecation warnings fire there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stepper.band_steps = [torch.compile(band_step, dynamic=True) for band_step in stepper.band_steps]
    return stepper
