"""Residual, LayerNorm'd LSTM stack with a softmax layer mix (paper §3.2, eq. 3), over padded batches.

One single-layer nn.LSTM per level so state_dict keys match mbfast.model.layout (`lstm.{l}.weight_ih_l0`).
Mirrored one step at a time by mbfast.model.reference.ReferenceModel.stack_step.
Dimension legend: N sequences, T steps, L layers, H hidden, I input width.
"""
from __future__ import annotations

import torch
from torch import nn


class ResidualLSTMStack(nn.Module):
    """r_1 = LN_0(h_1 + W x + b); r_l = LN_{l-1}(h_l + r_{l-1}) for middle layers; the last layer has no LN.

    The authors' code computes LN(2 h_l) from layer 2 on (docs/model.md); this is the true residual the paper
    describes. The mix (eq. 3) combines the raw hidden states h_1..h_L.
    """

    def __init__(self, in_width: int, hidden: int, layers: int, eps: float) -> None:
        super().__init__()
        self.lstm = nn.ModuleList(
            nn.LSTM(in_width if layer == 0 else hidden, hidden, batch_first=True) for layer in range(layers))
        self.residual = nn.Linear(in_width, hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=eps) for _ in range(layers - 1))
        self.mix = nn.Parameter(torch.zeros(layers))  # softmax(0) = 1/L, the authors' initial alpha
        for lstm in self.lstm:
            with torch.no_grad():  # Keras unit_forget_bias: forget gate (2nd quarter, order i f g o) starts at 1
                lstm.bias_ih_l0.zero_()
                lstm.bias_hh_l0.zero_()
                lstm.bias_ih_l0[hidden:2 * hidden] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, T, I) -> raw hidden states of every layer (L, N, T, H).

        Padding after a sequence's end cannot leak into earlier steps: the LSTM is causal and LN is per step.
        """
        hiddens = []
        layer_in = x
        for layer, lstm in enumerate(self.lstm):
            hidden, _ = lstm(layer_in)  # (N, T, H)
            hiddens.append(hidden)
            if layer == len(self.lstm) - 1:
                break
            skip = self.residual(x) if layer == 0 else layer_in
            layer_in = self.norms[layer](hidden + skip)
        return torch.stack(hiddens)

    def mixed(self, hiddens: torch.Tensor) -> torch.Tensor:
        """Eq. 3 with this stack's own weights: (L, ..., H) -> (..., H)."""
        return mix_layers(self.mix, hiddens)


def mix_layers(alpha: torch.Tensor, hiddens: torch.Tensor) -> torch.Tensor:
    """sum_l softmax(alpha)_l h_l; alpha (L,), hiddens (L, ..., H)."""
    return torch.tensordot(torch.softmax(alpha, dim=0), hiddens, dims=1)
