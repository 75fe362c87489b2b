"""mbfast.model.counts against numbers worked out by hand for tiny configs, and against the layout and the C++ store."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.model.counts import flops_per_observation, model_info, parameter_count, recurrent_state_bytes
from mbfast.engine import Engine
from mbfast.model.layout import random_weights, weight_layout
from mbfast.model.modelfile import write_model


def tiny_config() -> ModelConfig:
    # B=2 bands, H=2, L=2, Hc=3, Lc=1, 1 translation layer, classifier 4 wide x 1, C=2, one regressor 5 x 1
    return ModelConfig(survey="ztf", bands=("g", "r"), class_names=("a", "b"), band_hidden=2, band_layers=2,
                       central_hidden=3, central_layers=1, translation_layers=1, classifier_hidden=4,
                       classifier_layers=1, band_head_hidden=3, band_head_layers=1, regression_hidden=5,
                       regression_layers=1, regression_targets=(RegressionTarget("z", 0.0, 1.0),))


def test_flops_by_hand() -> None:
    flops = flops_per_observation(tiny_config())
    # band stack: layer 0 W_ih 8x4 + W_hh 8x2 = 48, layer 1 8x2 + 8x2 = 32, residual 2x4 = 8 -> 88 MACs
    assert flops["band_step"] == 2 * 88
    # translation 3x2 = 6 MACs
    assert flops["translation"] == 2 * 6
    # central stack, 1 layer, input 3: W_ih 12x3 + W_hh 12x3 = 72 MACs, no residual with one layer
    assert flops["central_step"] == 2 * 72
    # final width = Hc 3 + 1 colour pair + dt = 5; classifier 4x5 + out 2x4 = 28 MACs
    assert flops["classifier"] == 2 * 28
    # regressor 5x5 + out 1x5 = 30 MACs
    assert flops["regression"] == 2 * 30
    assert flops["total"] == 2 * (88 + 6 + 72 + 28 + 30)


def test_state_and_parameters_by_hand() -> None:
    config = tiny_config()
    # hidden + cell: 2 x (2 bands x 2 layers x 2 + 1 x 3) = 22 floats
    assert recurrent_state_bytes(config) == 22 * 4
    # band stack: lstm0 8*4+8*2+8+8=64, lstm1 8*2+8*2+16=48, residual 2*4+2=10, one norm 4, mix 2 -> 128
    # band head (1 layer, 3 wide): linear 3*2=6, BatchNorm 4*3=12, out 2*3+2=8 -> 26
    band = 128 + 26
    # band_mix 2x2=4; translator per band: 3*2+3=9 + norm 6 = 15
    # central stack: lstm0 12*3+12*3+24=96, residual 3*3+3=12, no norms, mix 1 -> 109
    # classifier: 4*5=20 + BN 16 + out 2*4+2=10 -> 46; regressor: 5*5=25 + BN 20 + out 5+1=6 -> 51
    total = 2 * band + 4 + 2 * 15 + 109 + 46 + 51
    assert parameter_count(config) == total
    info = model_info(config)
    assert info["parameters"] == total
    assert info["trainable_parameters"] == total - 2 * 2 * 3 - 2 * 4 - 2 * 5  # running mean + var of each BN
    assert info["weight_bytes_fp32"] == 4 * total
    assert info["flops_per_observation"] == 2 * 224


def test_parameters_match_layout() -> None:
    config = tiny_config()
    tensors = random_weights(config)
    assert parameter_count(config) == sum(array.size for array in tensors.values())
    assert parameter_count(config) == sum(int(np.prod(shape)) for _, shape in weight_layout(config))


def test_store_bytes_include_the_recurrent_state(tmp_path: Path) -> None:
    config = tiny_config()
    path = tmp_path / "tiny.mbf"
    write_model(path, config, random_weights(config))
    engine = Engine.load(path, num_threads=1)
    info = model_info(config, store_bytes_per_object=engine.state_bytes_per_object)
    assert info["state_bytes_per_object"] == engine.state_bytes_per_object
    # the store holds the recurrent state plus per-band scalars and the last outputs: more, but not much more
    assert info["recurrent_state_bytes_fp32"] < engine.state_bytes_per_object < 4 * info["recurrent_state_bytes_fp32"]
    assert "state_bytes_per_object" not in model_info(config)


def test_store_bytes_of_the_paper_shape_by_hand(tmp_path: Path) -> None:
    from mbfast.benchmark.workloads import ZTF_CONFIG

    path = tmp_path / "ztf.mbf"
    write_model(path, ZTF_CONFIG, random_weights(ZTF_CONFIG))
    # obj_id 8; per band (2): count 4, last_t 8, mag_sum 8, last_mag, last_err, prev_log_dt, prev_dmag 4 each;
    # h and c of 2 bands x 3 layers x 128 and of 2 central layers x 128; central_t 8; has_prediction 1; probs 15 x 4.
    # No embedding: the CPU recomputes it from central h.
    scalars = 8 + 2 * (4 + 8 + 8 + 4 * 4) + 8 + 1 + 15 * 4
    recurrent_values = 2 * (2 * 3 * 128) + 2 * (2 * 128)
    assert Engine.load(path, num_threads=1).state_bytes_per_object == scalars + 4 * recurrent_values == 8341
    assert Engine.load(path, num_threads=1, state_dtype="fp16").state_bytes_per_object == \
        scalars + 2 * recurrent_values == 4245


def test_engine_info_reports_the_costs_of_its_model(small_model_path) -> None:  # type: ignore[no-untyped-def]
    from mbfast import Engine
    from mbfast.model.counts import model_info

    engine = Engine.load(small_model_path, num_threads=1)
    info = engine.info()
    assert info == model_info(engine.config, engine.state_bytes_per_object)
    assert info["flops_per_observation"] > 0
