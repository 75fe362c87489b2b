"""[Linear (no bias) -> BatchNorm -> ReLU (-> Dropout)] x layers -> Linear: the band heads, the per-step
classifier and the regressors (paper §3.5, §3.7).

Inputs are (M, F) with M the *valid* positions only, so training-mode BatchNorm statistics never see padding.
In eval mode BatchNorm uses its running statistics (docs/model.md: the authors' code used batch statistics).
"""
from __future__ import annotations

import torch
from torch import nn


class NormedLayer(nn.Module):
    def __init__(self, in_width: int, out_width: int, eps: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_width, out_width, bias=False)
        self.norm = nn.BatchNorm1d(out_width, eps=eps)


class BatchNormFFNN(nn.Module):
    def __init__(self, in_width: int, hidden: int, layers: int, out: int, eps: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(NormedLayer(in_width if k == 0 else hidden, hidden, eps) for k in range(layers))
        self.dropout = nn.Dropout(dropout)  # no parameters: identity in eval mode and when dropout == 0
        self.out = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, F) -> (M, out)."""
        for layer in self.layers:
            x = self.dropout(torch.relu(layer.norm(layer.linear(x))))
        return self.out(x)
