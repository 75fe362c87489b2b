"""Concatenation baseline (paper §4.2, "Base" in Tables 5-7): the single-band LSTM stacks trained jointly, their
last embeddings concatenated with the colours, one classifier head and one classification loss.

Reuses the multiband model's parts (mbfast.train: ResidualLSTMStack, BatchNormFFNN, make_batch) so the two
differ only in the central model. Not the paper's multiband model: no central LSTM, no translation layers.
Dimension legend: K objects, B bands, T_b band steps, L layers, H band hidden, P colour pairs, C classes.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mbfast.model.config import ROW_WIDTH, ModelConfig
from mbfast.model.preprocessed import ModelInputs
from mbfast.train.batch import Batch, make_batch
from mbfast.train.ffnn import BatchNormFFNN
from mbfast.train.stack import ResidualLSTMStack


class ConcatModel(nn.Module):
    """B band stacks (§3.2) -> last valid mix of each band (zeros for a band with no rows) ++ colours -> FFNN."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stacks = nn.ModuleList(
            ResidualLSTMStack(ROW_WIDTH, config.band_hidden, config.band_layers, config.layernorm_eps)
            for _ in config.bands)
        self.head = BatchNormFFNN(config.n_bands * config.band_hidden + config.n_colours, config.classifier_hidden,
                                  config.classifier_layers, config.n_classes, config.batchnorm_eps)

    def embedding(self, batch: Batch) -> torch.Tensor:
        """(K, B*H + P): each band's eq. 3 mix at its last valid step, then the colours at the object's last row."""
        n_objects = batch.n_rows.shape[0]
        parts = []
        for stack, rows, mask in zip(self.stacks, batch.band_rows, batch.band_mask):
            last = torch.zeros(n_objects, self.config.band_hidden, dtype=torch.float32, device=batch.n_rows.device)
            if rows.shape[1] > 0:
                mixed = stack.mixed(stack(rows))                      # (K, T_b, H)
                length = mask.sum(dim=1)                              # (K,) valid steps of this band
                present = length > 0
                index = (length - 1).clamp(min=0)
                picked = mixed[torch.arange(n_objects, device=mixed.device), index]  # (K, H)
                last = torch.where(present.unsqueeze(1), picked, last)
            parts.append(last)
        final_row = (batch.n_rows - 1).to(torch.long)
        parts.append(batch.colours[torch.arange(n_objects, device=batch.colours.device), final_row])  # (K, P)
        return torch.cat(parts, dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Class logits (K, C) from each object's last observation."""
        return self.head(self.embedding(batch))


@dataclass
class TrainLog:
    epochs: int = 0
    best_epoch: int = 0
    best_val_recall: float = 0.0
    seconds: float = 0.0
    stopped: str = ""           # why training ended: early stopping, the time budget or the epoch cap
    history: list = field(default_factory=list)  # (epoch, train loss, val macro recall)


def macro_recall(true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean over the classes present in `true` of the fraction predicted correctly."""
    recalls = [np.mean(pred[true == c] == c) for c in range(n_classes) if np.any(true == c)]
    return float(np.mean(recalls))


def predict_logits(model: ConcatModel, inputs: ModelInputs, objects: np.ndarray, batch_size: int = 256
                   ) -> np.ndarray:
    """float32 (K, C) logits of `objects` (indices into inputs), eval mode, in `objects` order."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(objects), batch_size):
            batch = make_batch(inputs, objects[start:start + batch_size]).to_torch()
            out.append(model(batch).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.n_classes), dtype=np.float32)


def train_concat(config: ModelConfig, inputs: ModelInputs, labels: np.ndarray, train: np.ndarray,
                 val: np.ndarray, epochs: int = 10, batch_size: int = 128, learning_rate: float = 1e-3,
                 patience: int = 5, seed: int = 0, max_seconds: float | None = None) -> tuple[ConcatModel, TrainLog]:
    """AdamW on cross-entropy of the last-step logits; keeps the weights of the best validation macro recall.

    The learning-rate schedule follows §3.6 (x0.95 every 60 steps). Stops after `epochs`, after `patience`
    epochs without improvement, or once `max_seconds` have passed (checked after each epoch).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ConcatModel(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=60, gamma=0.95)
    log, best_state, since_best = TrainLog(), copy.deepcopy(model.state_dict()), 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(train)
        losses = []
        for first in range(0, len(order), batch_size):
            objects = order[first:first + batch_size]
            if len(objects) < 2:  # BatchNorm needs two objects in training mode
                continue
            batch = make_batch(inputs, objects, labels).to_torch()
            loss = nn.functional.cross_entropy(model(batch), batch.labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.detach().item())
        recall = macro_recall(labels[val], predict_logits(model, inputs, val).argmax(1), config.n_classes)
        log.history.append((epoch, float(np.mean(losses)), recall))
        log.epochs = epoch
        if recall > log.best_val_recall:
            log.best_val_recall, log.best_epoch, since_best = recall, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        if since_best >= patience:
            log.stopped = f"early stopping: no improvement for {patience} epochs"
            break
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            log.stopped = f"time budget of {max_seconds / 60:.3g} min reached"
            break
    else:
        log.stopped = f"epoch cap {epochs} reached"
    log.seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    return model.eval(), log


def forward_cost_us(model: nn.Module, inputs: ModelInputs, objects: np.ndarray, batch_size: int = 256) -> float:
    """Wall time of make_batch + forward over `objects` in batches of `batch_size`, per object, µs."""
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(objects), batch_size):
            model(make_batch(inputs, objects[first:first + batch_size]).to_torch())
    return (time.perf_counter() - start) / len(objects) * 1e6
