"""What a model costs, computed from its ModelConfig alone: parameters, FLOPs per observation, state bytes per object.

Analytic counts, not measurements; bench/ measures. FLOPs count the weight matrices only (a multiply-add is 2 FLOPs):
per observation that is what Engine.step runs for one window row (cpp/step.h band_chunk + central_chunk), i.e.
one band LSTM stack step (with its input residual projection), the translation FFNN, one central LSTM stack step,
the classifier and every regression head. The band model's own head (band_head_*) is a training aid and is not run at inference.
Element-wise work (gate non-linearities, LayerNorm, folded BatchNorm, layer mixes, softmax, biases) is O(H) per layer
against O(H^2) for the matrices, and is left out: for the ZTF shape it adds about 2.5 % (see element_ops below).
"""
from __future__ import annotations

from mbfast.model.config import ROW_WIDTH, ModelConfig
from mbfast.model.layout import weight_layout

FLOAT32_BYTES = 4


def parameter_count(config: ModelConfig) -> int:
    """Numbers stored in the model file (weight_layout), BatchNorm running statistics included."""
    total = 0
    for _, shape in weight_layout(config):
        size = 1
        for dim in shape:
            size *= dim
        total += size
    return total


def trainable_parameter_count(config: ModelConfig) -> int:
    """parameter_count less the BatchNorm running means and variances (buffers, not trained by gradient)."""
    buffers = sum(shape[0] for name, shape in weight_layout(config)
                  if name.endswith((".running_mean", ".running_var")))
    return parameter_count(config) - buffers


def lstm_stack_macs(in_width: int, hidden: int, layers: int) -> int:
    """Multiply-adds of one step of a residual LSTM stack (mbfast.model.reference.ReferenceModel.stack_step).

    Layer l: W_ih (4H, in_l) x + W_hh (4H, H) h. The input residual W (H, in) x runs only when the stack has a
    second layer to feed (layers > 1); later residuals are additions.
    """
    macs = 0
    for layer in range(layers):
        layer_in = in_width if layer == 0 else hidden
        macs += 4 * hidden * layer_in + 4 * hidden * hidden
    if layers > 1:
        macs += hidden * in_width
    return macs


def ffnn_macs(in_width: int, hidden: int, layers: int, out: int) -> int:
    """[Linear (BatchNorm folded) -> ReLU] x layers -> Linear(out)."""
    macs = 0
    for layer in range(layers):
        macs += hidden * (in_width if layer == 0 else hidden)
    return macs + out * hidden


def flops_per_observation(config: ModelConfig) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of the weight matrices for one window row, by part, and their total."""
    band = lstm_stack_macs(ROW_WIDTH, config.band_hidden, config.band_layers)
    translation = sum(config.central_hidden * (config.band_hidden if layer == 0 else config.central_hidden)
                      for layer in range(config.translation_layers))
    central = lstm_stack_macs(config.central_hidden, config.central_hidden, config.central_layers)
    classifier = ffnn_macs(config.final_width, config.classifier_hidden, config.classifier_layers, config.n_classes)
    regression = len(config.regression_targets) * ffnn_macs(config.final_width, config.regression_hidden,
                                                             config.regression_layers, 1)
    parts = {"band_step": band, "translation": translation, "central_step": central, "classifier": classifier,
             "regression": regression}
    flops = {name: 2 * macs for name, macs in parts.items()}
    flops["total"] = sum(flops.values())
    return flops


def element_ops(config: ModelConfig) -> int:
    """Rough count of the element-wise operations per window row left out of flops_per_observation.

    ~10 per gate unit (bias, 4 activations, 3 products, 2 sums, over 4H units), ~8 per LayerNorm'd value, ~4 per
    FFNN value (bias, folded BatchNorm, ReLU), L per mixed value. An order-of-magnitude figure for the docs only.
    """
    h, hc = config.band_hidden, config.central_hidden
    lstm = 10 * 4 * (h * config.band_layers + hc * config.central_layers)
    norms = 8 * (h * (config.band_layers - 1) + hc * (config.central_layers - 1) + hc)
    ffnn = 4 * (hc * config.translation_layers + config.classifier_hidden * config.classifier_layers
                + len(config.regression_targets) * config.regression_hidden * config.regression_layers)
    mixes = 2 * (h * config.band_layers + hc * config.central_layers)
    return lstm + norms + ffnn + mixes + 4 * config.n_classes


def recurrent_state_bytes(config: ModelConfig, dtype_bytes: int = FLOAT32_BYTES) -> int:
    """Hidden + cell state of every band stack and of the central stack for one object: 2 (B L H + Lc Hc) values."""
    values = 2 * (config.n_bands * config.band_layers * config.band_hidden
                  + config.central_layers * config.central_hidden)
    return values * dtype_bytes


def model_info(config: ModelConfig, store_bytes_per_object: int | None = None) -> dict[str, object]:
    """Parameters, FLOPs per observation and state bytes per object of `config`, as a JSON-ready dict.

    Parameters
    ----------
    config : the model's ModelConfig.
    store_bytes_per_object : what the C++ state store really holds per object (Engine.state_bytes_per_object: the
        recurrent state plus per-band scalars and the last outputs); included as "state_bytes_per_object" when
        given. The analytic fp32 recurrent state is always under "recurrent_state_bytes_fp32".

    Returns
    -------
    dict with keys parameters, trainable_parameters, weight_bytes_fp32, flops_per_observation (int, 2 FLOPs per
    multiply-add, weight matrices only), flops_by_part (dict), element_ops_per_observation (int, rough),
    recurrent_state_bytes_fp32 (int) and, if given, state_bytes_per_object (int).

    Examples
    --------
    >>> from mbfast.model.config import ModelConfig
    >>> config = ModelConfig(survey="ztf", bands=("g", "r"), class_names=("a", "b"), band_hidden=2, band_layers=1,
    ...                      central_hidden=2, central_layers=1, translation_layers=1, classifier_hidden=2,
    ...                      classifier_layers=1)
    >>> model_info(config)["flops_per_observation"]
    192
    """
    flops = flops_per_observation(config)
    info: dict[str, object] = {
        "parameters": parameter_count(config),
        "trainable_parameters": trainable_parameter_count(config),
        "weight_bytes_fp32": parameter_count(config) * FLOAT32_BYTES,
        "flops_per_observation": flops["total"],
        "flops_by_part": {name: value for name, value in flops.items() if name != "total"},
        "element_ops_per_observation": element_ops(config),
        "recurrent_state_bytes_fp32": recurrent_state_bytes(config),
    }
    if store_bytes_per_object is not None:
        info["state_bytes_per_object"] = int(store_bytes_per_object)
    return info


__all__ = ["flops_per_observation", "model_info", "parameter_count", "recurrent_state_bytes",
           "trainable_parameter_count"]
