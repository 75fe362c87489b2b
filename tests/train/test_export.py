"""Export: PyTorch state_dict -> model file -> ReferenceModel equals the PyTorch model at every step.

The model is randomly initialised with non-trivial BatchNorm running statistics and layer-mix weights, so the
parity check exercises every tensor of the file. Tolerance: rtol 1e-5 (float32 torch vs float64 reference).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mbfast  # noqa: E402
from mbfast.model.config import ModelConfig, RegressionTarget  # noqa: E402
from mbfast.lightcurves.sample import load_sample  # noqa: E402
from mbfast.train.batch import make_batch  # noqa: E402
from mbfast.train.export import export_model, load_torch_model, state_tensors  # noqa: E402
from mbfast.train.multiband import MultibandModel  # noqa: E402
from mbfast.model.modelfile import ModelFileError, read_model, write_model  # noqa: E402
from mbfast.model.reference import ReferenceModel, preprocess_reference  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def plasticc_sample():
    data = load_sample()
    # a few objects of different classes (galactic and extragalactic, short and long curves)
    chosen = np.concatenate([np.flatnonzero(data.labels == label)[:1] for label in (0, 1, 6, 8, 9, 10, 11, 13)])
    return preprocess_reference(data.curves.select(chosen), n_skip=2), data


def randomised_model(config: ModelConfig, seed: int = 0) -> MultibandModel:
    torch.manual_seed(seed)
    model = MultibandModel(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
        for mix in [model.central.band_mix, model.central.stack.mix] + [band.stack.mix for band in model.bands]:
            mix.normal_()
    return model.eval()


def config_for(data) -> ModelConfig:
    return ModelConfig("plasticc", data.curves.bands, data.class_names, band_hidden=8, band_layers=3,
                       central_hidden=6, central_layers=2, classifier_hidden=5, band_head_hidden=7,
                       regression_hidden=9, regression_targets=(RegressionTarget("redshift", 0.4, 0.3, 2.0),))


def test_export_then_reference_equals_torch_at_every_step(plasticc_sample, tmp_path) -> None:
    inputs, data = plasticc_sample
    config = config_for(data)
    model = randomised_model(config)
    path = tmp_path / "model.mbf"
    export_model(model, path)
    reference = ReferenceModel(read_model(path))
    objects = np.flatnonzero(inputs.n_rows > 0)
    with torch.no_grad():
        batch = make_batch(inputs, objects).to_torch()
        states = model.band_states(batch)
        band_probs = [None if logits is None else torch.softmax(logits, -1).numpy()
                      for logits in model.band_logits(batch, states)]
        out = model.central_forward(batch, states, every_step=True)
    probs = torch.softmax(out.logits, -1).numpy()
    target = config.regression_targets[0]
    regression = out.regression.numpy() * target.std + target.mean
    embedding = out.embedding.numpy()
    got = {"probs": [], "regression": [], "embedding": [], "band_probs": []}
    want = {"probs": [], "regression": [], "embedding": [], "band_probs": []}
    position = 0
    for k in objects:
        for step in reference.run_object(inputs, int(k)):
            band = int(batch.band_of_step[position])
            got["probs"].append(probs[position])
            got["regression"].append(regression[position])
            got["embedding"].append(embedding[position])
            got["band_probs"].append(band_probs[band][int(batch.band_position[position])])
            for name in want:
                want[name].append(getattr(step, name))
            position += 1
    assert position == len(probs) > 100
    for name in want:
        mine, theirs = np.array(got[name]), np.array(want[name])
        print(f"{name}: max diff {np.abs(mine - theirs).max():.2e} over {len(mine)} steps")
        np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


def test_load_torch_model_round_trip(plasticc_sample, tmp_path) -> None:
    _, data = plasticc_sample
    model = randomised_model(config_for(data), seed=3)
    path = tmp_path / "model.mbf"
    export_model(model, path)
    loaded = load_torch_model(path)
    assert loaded.config == model.config
    original, restored = state_tensors(model.state_dict()), state_tensors(loaded.state_dict())
    assert original.keys() == restored.keys()
    for name in original:
        np.testing.assert_array_equal(original[name], restored[name], err_msg=name)


def test_export_lists_every_problem_in_one_error(plasticc_sample, tmp_path) -> None:
    _, data = plasticc_sample
    config = config_for(data)
    tensors = state_tensors(MultibandModel(config).state_dict())
    del tensors["central.stack.mix"]
    tensors["central.extra.weight"] = np.zeros(3, np.float32)
    tensors["bands.2.stack.lstm.1.weight_ih_l0"] = np.zeros((5, 5), np.float32)
    tensors["central.classifier.layers.0.norm.running_var"] = np.zeros(1, np.float32)
    with pytest.raises(ModelFileError) as error:
        write_model(tmp_path / "bad.mbf", config, tensors)
    message = str(error.value)
    for expected in ("missing central.stack.mix", "extra central.extra.weight",
                     "mis-shaped bands.2.stack.lstm.1.weight_ih_l0", "mis-shaped central.classifier.layers.0.norm"):
        assert expected in message
    assert not (tmp_path / "bad.mbf").exists()


def test_export_refuses_a_model_built_for_another_config(plasticc_sample, tmp_path) -> None:
    _, data = plasticc_sample
    config = config_for(data)
    wider = ModelConfig(**{**vars(config), "band_hidden": 10})
    with pytest.raises(ModelFileError, match="mis-shaped"):
        export_model(MultibandModel(config), tmp_path / "model.mbf", wider)


DEFAULT_MODEL = Path(mbfast.__file__).parent / "data" / "lsst.mbf"


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no shipped default model yet")
def test_shipped_default_model_loads_and_matches_the_reference(plasticc_sample) -> None:
    inputs, data = plasticc_sample
    model = load_torch_model(DEFAULT_MODEL)
    assert model.config.class_names == data.class_names and model.config.bands == data.curves.bands
    assert [t.name for t in model.config.regression_targets] == ["redshift"]
    reference = ReferenceModel(read_model(DEFAULT_MODEL))
    objects = np.flatnonzero(inputs.n_rows > 0)[:3]
    with torch.no_grad():
        batch = make_batch(inputs, objects).to_torch()
        probs = torch.softmax(model.central_forward(batch, model.band_states(batch)).logits, -1).numpy()
    expected = np.concatenate([[step.probs for step in reference.run_object(inputs, int(k))] for k in objects])
    print(f"default model: max diff {np.abs(probs - expected).max():.2e} over {len(probs)} steps")
    np.testing.assert_allclose(probs, expected, rtol=RTOL, atol=ATOL)
