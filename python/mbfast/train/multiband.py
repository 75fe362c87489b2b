"""The multiband ensemble (paper §3, Fig. 4): one band model per band and a central model, built from ModelConfig.

state_dict keys are exactly mbfast.model.layout.weight_layout(config) (plus BatchNorm num_batches_tracked, dropped on
export). Mirrors mbfast.model.reference.ReferenceModel.step, which does the same maths one observation at a time.
Dimension legend: K objects, B bands, T_b band steps, T central steps, M valid central steps, L layers,
H hidden, C classes, G regression targets, F = config.final_width.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mbfast.model.config import ROW_WIDTH, ModelConfig
from mbfast.train.batch import Batch
from mbfast.train.ffnn import BatchNormFFNN
from mbfast.train.stack import ResidualLSTMStack, mix_layers


class BandModel(nn.Module):
    """Single-band model (§3.2): LSTM stack + a classifier head on the band's own mix (trains the band only)."""

    def __init__(self, config: ModelConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.stack = ResidualLSTMStack(ROW_WIDTH, config.band_hidden, config.band_layers, config.layernorm_eps)
        self.head = BatchNormFFNN(config.band_hidden, config.band_head_hidden, config.band_head_layers,
                                  config.n_classes, config.batchnorm_eps, dropout)


class Translator(nn.Module):
    """Translation layers (§3.3): [Linear -> ReLU] x n, then LayerNorm (the paper's order; docs/model.md)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(config.band_hidden if k == 0 else config.central_hidden, config.central_hidden)
            for k in range(config.translation_layers))
        self.norm = nn.LayerNorm(config.central_hidden, eps=config.layernorm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.norm(x)


class CentralModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.band_mix = nn.Parameter(torch.zeros(config.n_bands, config.band_layers))  # eq. 3, own alphas per band
        self.translators = nn.ModuleList(Translator(config) for _ in range(config.n_bands))
        self.stack = ResidualLSTMStack(config.central_hidden, config.central_hidden, config.central_layers,
                                       config.layernorm_eps)
        self.classifier = BatchNormFFNN(config.final_width, config.classifier_hidden, config.classifier_layers,
                                        config.n_classes, config.batchnorm_eps)
        self.regressors = nn.ModuleList(
            BatchNormFFNN(config.final_width, config.regression_hidden, config.regression_layers, 1,
                          config.batchnorm_eps)
            for _ in config.regression_targets)


@dataclass
class CentralOutput:
    logits: torch.Tensor      # (M, C) per-step class logits at valid central steps, row-major over (K, T)
    regression: torch.Tensor  # (K, G) z-scored, from each object's last step; (M, G) with every_step=True
    embedding: torch.Tensor   # (M, H) central layer mix (the multiband embedding)


class MultibandModel(nn.Module):
    def __init__(self, config: ModelConfig, band_dropout: float = 0.0) -> None:
        super().__init__()
        self.config = config
        self.bands = nn.ModuleList(BandModel(config, band_dropout) for _ in config.bands)
        self.central = CentralModel(config)

    def band_states(self, batch: Batch) -> list[torch.Tensor | None]:
        """Raw hidden states of every band stack: per band (L, K, T_b, H), None for a band absent from the batch."""
        return [band.stack(rows) if rows.shape[1] > 0 else None
                for band, rows in zip(self.bands, batch.band_rows)]

    def band_logits(self, batch: Batch, states: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Each band head on its own mix at the band's valid steps: per band (M_b, C), row-major over (K, T_b).

        None for a band without steps, and in training mode for a band with one step (training BatchNorm needs
        two values; augmentation can leave a band one step in a batch)."""
        out = []
        for band, hiddens, mask in zip(self.bands, states, batch.band_mask):
            if hiddens is None or (self.training and int(mask.sum()) < 2):
                out.append(None)
            else:
                out.append(band.head(band.stack.mixed(hiddens)[mask]))
        return out

    def central_forward(self, batch: Batch, states: list[torch.Tensor | None], every_step: bool = False
                        ) -> CentralOutput:
        """Central model on the band states (§3.3-3.5, §3.7). Pass detached states to keep the central loss out
        of the band models (§3.6)."""
        config, central = self.config, self.central
        translated = []
        for b, hiddens in enumerate(states):
            if hiddens is not None:
                mixed = mix_layers(central.band_mix[b], hiddens)        # (K, T_b, H_band)
                translated.append(central.translators[b](mixed).reshape(-1, config.central_hidden))
        reference = translated[0]
        translated.append(reference.new_zeros(1, config.central_hidden))  # target of padded central steps
        flat = torch.cat(translated)                                       # (sum_b K*T_b + 1, H)
        sequence = flat[batch.state_index]                                 # (K, T, H) in multiband order
        embedding = central.stack.mixed(central.stack(sequence))           # (K, T, H)
        final = torch.cat([embedding, batch.colours, batch.dt_central.unsqueeze(-1)], dim=-1)  # (K, T, F)
        valid = final[batch.central_mask]                                  # (M, F)
        logits = central.classifier(valid)
        if every_step:
            regression_in = valid
        else:
            last = (batch.n_rows - 1).to(torch.long)
            regression_in = final[torch.arange(final.shape[0], device=final.device), last]  # (K, F)
        if len(central.regressors):
            regression = torch.cat([regressor(regression_in) for regressor in central.regressors], dim=-1)
        else:
            regression = regression_in.new_zeros(regression_in.shape[0], 0)
        return CentralOutput(logits, regression, embedding[batch.central_mask])
