"""weight_layout(config): the name and shape of every tensor in a model file; random_weights(config) fills them.

Names are the PyTorch state_dict keys of mbfast.train.MultibandModel, so export checks "state_dict == layout"
and the C++ loader asks for each name and checks its shape. Two version numbers (byte layout in mbfast/model/modelfile.py):
FORMAT_VERSION is the byte layout of the container, LAYOUT_REVISION the tensor names below.
"""
from __future__ import annotations

import numpy as np

from mbfast.model.config import ROW_WIDTH, ModelConfig

FORMAT_VERSION = 1
LAYOUT_REVISION = 1

Shape = tuple[int, ...]


def recurrent_stack_layout(prefix: str, in_width: int, hidden: int, layers: int) -> list[tuple[str, Shape]]:
    """Residual LayerNorm'd LSTM stack (paper §3.2); gates in PyTorch order i, f, g, o."""
    entries: list[tuple[str, Shape]] = []
    for layer in range(layers):
        layer_in = in_width if layer == 0 else hidden
        entries += [
            (f"{prefix}.lstm.{layer}.weight_ih_l0", (4 * hidden, layer_in)),
            (f"{prefix}.lstm.{layer}.weight_hh_l0", (4 * hidden, hidden)),
            (f"{prefix}.lstm.{layer}.bias_ih_l0", (4 * hidden,)),
            (f"{prefix}.lstm.{layer}.bias_hh_l0", (4 * hidden,)),
        ]
    entries += [(f"{prefix}.residual.weight", (hidden, in_width)), (f"{prefix}.residual.bias", (hidden,))]
    for layer in range(layers - 1):
        entries += [(f"{prefix}.norms.{layer}.weight", (hidden,)), (f"{prefix}.norms.{layer}.bias", (hidden,))]
    entries.append((f"{prefix}.mix", (layers,)))
    return entries


def batchnorm_ffnn_layout(prefix: str, in_width: int, hidden: int, layers: int, out: int) -> list[tuple[str, Shape]]:
    """[Linear (no bias) -> BatchNorm -> ReLU] x layers -> Linear(out)."""
    entries: list[tuple[str, Shape]] = []
    for layer in range(layers):
        layer_in = in_width if layer == 0 else hidden
        entries += [
            (f"{prefix}.layers.{layer}.linear.weight", (hidden, layer_in)),
            (f"{prefix}.layers.{layer}.norm.weight", (hidden,)),
            (f"{prefix}.layers.{layer}.norm.bias", (hidden,)),
            (f"{prefix}.layers.{layer}.norm.running_mean", (hidden,)),
            (f"{prefix}.layers.{layer}.norm.running_var", (hidden,)),
        ]
    entries += [(f"{prefix}.out.weight", (out, hidden)), (f"{prefix}.out.bias", (out,))]
    return entries


def weight_layout(config: ModelConfig) -> list[tuple[str, Shape]]:
    """Every tensor of the model, in file order."""
    entries: list[tuple[str, Shape]] = []
    for band in range(config.n_bands):
        entries += recurrent_stack_layout(f"bands.{band}.stack", ROW_WIDTH, config.band_hidden, config.band_layers)
        entries += batchnorm_ffnn_layout(f"bands.{band}.head", config.band_hidden, config.band_head_hidden,
                                         config.band_head_layers, config.n_classes)
    entries.append(("central.band_mix", (config.n_bands, config.band_layers)))
    for band in range(config.n_bands):
        for layer in range(config.translation_layers):
            layer_in = config.band_hidden if layer == 0 else config.central_hidden
            entries += [
                (f"central.translators.{band}.layers.{layer}.weight", (config.central_hidden, layer_in)),
                (f"central.translators.{band}.layers.{layer}.bias", (config.central_hidden,)),
            ]
        entries += [
            (f"central.translators.{band}.norm.weight", (config.central_hidden,)),
            (f"central.translators.{band}.norm.bias", (config.central_hidden,)),
        ]
    entries += recurrent_stack_layout("central.stack", config.central_hidden, config.central_hidden,
                                      config.central_layers)
    entries += batchnorm_ffnn_layout("central.classifier", config.final_width, config.classifier_hidden,
                                     config.classifier_layers, config.n_classes)
    for target in range(len(config.regression_targets)):
        entries += batchnorm_ffnn_layout(f"central.regressors.{target}", config.final_width,
                                         config.regression_hidden, config.regression_layers, 1)
    return entries


def random_weights(config: ModelConfig, seed: int = 0, scale: float = 0.3) -> dict[str, np.ndarray]:
    """Random weights for `config` with non-trivial BatchNorm running statistics: what the benchmarks time (the
    values do not matter, only the shapes) and what the tests check parity on."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in weight_layout(config):
        if name.endswith("running_var"):
            tensors[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.endswith("running_mean"):
            tensors[name] = rng.normal(0.0, 0.5, shape).astype(np.float32)
        else:
            tensors[name] = rng.normal(0.0, scale, shape).astype(np.float32)
    return tensors
