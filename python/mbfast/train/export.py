"""PyTorch state_dict <-> mbfast model file. The file's tensor names are the state_dict keys (mbfast.model.layout).

Export checks "state_dict == layout" and lists every missing, extra or mis-shaped tensor in one error.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mbfast.model.config import ModelConfig
from mbfast.model.modelfile import check_tensors, read_model, write_model
from mbfast.train.multiband import MultibandModel

# BatchNorm's step counter: not needed at inference (momentum is fixed), so not in the layout
SKIPPED_SUFFIXES = (".num_batches_tracked",)


def state_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """state_dict -> {name: float32 array}, without the BatchNorm step counters."""
    return {name: value.detach().cpu().to(torch.float32).numpy().copy() for name, value in state_dict.items()
            if not name.endswith(SKIPPED_SUFFIXES)}


def export_model(model: MultibandModel, path: str | os.PathLike[str], config: ModelConfig | None = None) -> None:
    """Write `model` (its weights, BatchNorm running statistics included) to an mbfast model file.

    Raises mbfast.model.modelfile.ModelFileError listing every tensor that does not match weight_layout(config).
    """
    write_model(path, config or model.config, state_tensors(model.state_dict()))


def load_torch_model(path: str | os.PathLike[str], device: str = "cpu") -> MultibandModel:
    """Read a model file into a MultibandModel in eval mode."""
    model_file = read_model(path)
    model = MultibandModel(model_file.config)
    check_tensors(model_file.config, state_tensors(model.state_dict()))  # the modules match the layout
    state = {name: torch.from_numpy(array.copy()) for name, array in model_file.tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [name for name in missing if not name.endswith(SKIPPED_SUFFIXES)]
    if left or unexpected:
        raise ValueError(f"{path}: tensors missing from the file {left}, unexpected {list(unexpected)}")
    return model.to(device).eval()


def export_run(run_dir: str | Path, out: str | Path) -> None:
    """Export run_dir/checkpoint.pt: its best weights so far, or the current ones before any validation."""
    run_dir = Path(run_dir)
    config = ModelConfig.from_json((run_dir / "config.json").read_text())
    saved = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = MultibandModel(config)
    state = saved["state"]["best_state"] if saved["state"].get("best_state") is not None else saved["model"]
    model.load_state_dict(state)
    export_model(model, out, config)
