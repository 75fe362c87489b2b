"""PyTorch model: state_dict == layout, padded batches, masked BatchNorm statistics, batch vs one object."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mbfast.model.config import ModelConfig, RegressionTarget  # noqa: E402
from mbfast.lightcurves.sample import load_sample  # noqa: E402
from mbfast.model.layout import weight_layout  # noqa: E402
from mbfast.train.batch import Batch, make_batch  # noqa: E402
from mbfast.train.multiband import MultibandModel  # noqa: E402
from mbfast.model.reference import preprocess_reference  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(bands: tuple[str, ...] = ("u", "g", "r", "i", "z", "y"), n_classes: int = 14) -> ModelConfig:
    return ModelConfig("test", bands, tuple(f"class{c}" for c in range(n_classes)), band_hidden=8, band_layers=3,
                       central_hidden=6, central_layers=2, classifier_hidden=5, band_head_hidden=7,
                       regression_hidden=9, regression_targets=(RegressionTarget("redshift", 0.5, 0.3),))


@pytest.fixture(scope="module")
def plasticc_inputs():
    data = load_sample()
    curves = data.curves
    owner = np.repeat(np.arange(curves.n_objects), np.diff(curves.offsets))
    per_band = np.zeros((curves.n_objects, len(curves.bands)), dtype=np.int64)
    np.add.at(per_band, (owner, curves.band.astype(np.int64)), 1)
    no_rows = np.flatnonzero(per_band.max(axis=1) < 3)[:1]  # no band reaches 3 observations: no window row
    chosen = np.concatenate([np.arange(60), no_rows])
    return preprocess_reference(curves.select(chosen), n_skip=2), data.labels[chosen]


def test_state_dict_keys_and_shapes_equal_layout() -> None:
    config = tiny_config()
    state = {name: tuple(value.shape) for name, value in MultibandModel(config).state_dict().items()
             if not name.endswith("num_batches_tracked")}
    assert state == dict(weight_layout(config))


def test_single_layer_stacks_match_layout() -> None:
    config = ModelConfig("test", ("g", "r"), ("a", "b"), band_layers=1, central_layers=1)
    state = {name: tuple(value.shape) for name, value in MultibandModel(config).state_dict().items()
             if not name.endswith("num_batches_tracked")}
    assert state == dict(weight_layout(config))


def test_batch_places_rows_in_band_and_multiband_order(plasticc_inputs) -> None:
    inputs, _ = plasticc_inputs
    objects = np.flatnonzero(inputs.n_rows > 0)[:5]
    batch = make_batch(inputs, objects)
    flat = np.concatenate([rows.reshape(-1, 4) for rows in batch.band_rows] + [np.zeros((1, 4), np.float32)])
    for i, k in enumerate(objects):
        rows = slice(inputs.offsets[k], inputs.offsets[k + 1])
        n = inputs.n_rows[k]
        # the central sequence gathers exactly the object's rows, in multiband order
        np.testing.assert_array_equal(flat[batch.state_index[i, :n]], inputs.rows[rows])
        assert batch.central_mask[i, :n].all() and not batch.central_mask[i, n:].any()
        np.testing.assert_array_equal(batch.colours[i, :n], inputs.colours[rows])
    assert batch.central_mask.sum() == inputs.n_rows[objects].sum()
    for b, mask in enumerate(batch.band_mask):
        assert mask.sum() == (batch.band_of_step == b).sum()


def padded_more(batch, extra: int):
    """The same batch with `extra` more padded steps on every band and on the central sequence."""
    out = Batch(**{**vars(batch), "band_rows": list(batch.band_rows), "band_mask": list(batch.band_mask),
                   "band_weight": list(batch.band_weight)})
    shift = 0
    remap = []
    for b, rows in enumerate(batch.band_rows):
        n_objects, length = rows.shape[:2]
        new_length = length + extra if length else 0
        old = np.arange(n_objects * length)
        remap.append(shift + (old // max(length, 1)) * new_length + old % max(length, 1))
        shift += n_objects * new_length
        out.band_rows[b] = np.pad(rows, ((0, 0), (0, new_length - length), (0, 0)))
        out.band_mask[b] = np.pad(batch.band_mask[b], ((0, 0), (0, new_length - length)))
        out.band_weight[b] = np.pad(batch.band_weight[b], ((0, 0), (0, new_length - length)))
    lookup = np.concatenate(remap + [np.array([shift])])
    out.state_index = np.pad(lookup[batch.state_index], ((0, 0), (0, extra)), constant_values=shift)
    out.central_mask = np.pad(batch.central_mask, ((0, 0), (0, extra)))
    out.colours = np.pad(batch.colours, ((0, 0), (0, extra), (0, 0)))
    out.dt_central = np.pad(batch.dt_central, ((0, 0), (0, extra)))
    out.central_weight = np.pad(batch.central_weight, ((0, 0), (0, extra)))
    return out


def test_training_batchnorm_statistics_ignore_padding(plasticc_inputs) -> None:
    inputs, _ = plasticc_inputs
    torch.manual_seed(0)
    model = MultibandModel(tiny_config()).train()
    batch = make_batch(inputs, np.flatnonzero(inputs.n_rows > 0)[:6])
    outputs = []
    for candidate in (batch, padded_more(batch, 7)):
        tensors = candidate.to_torch()
        states = model.band_states(tensors)
        band = model.band_logits(tensors, states)
        central = model.central_forward(tensors, states)
        outputs.append((band, central))
    (band_a, central_a), (band_b, central_b) = outputs
    torch.testing.assert_close(central_a.logits, central_b.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(central_a.regression, central_b.regression, rtol=1e-5, atol=1e-6)
    for a, b in zip(band_a, band_b):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_batch_equals_one_object_at_a_time_in_eval_mode(plasticc_inputs) -> None:
    inputs, _ = plasticc_inputs
    torch.manual_seed(1)
    model = MultibandModel(tiny_config()).eval()
    objects = np.flatnonzero(inputs.n_rows > 0)[:8]
    with torch.no_grad():
        batch = make_batch(inputs, objects).to_torch()
        together = model.central_forward(batch, model.band_states(batch), every_step=True)
        start = 0
        max_diff = 0.0
        for k in objects:
            alone_batch = make_batch(inputs, np.array([k])).to_torch()
            alone = model.central_forward(alone_batch, model.band_states(alone_batch), every_step=True)
            n = int(inputs.n_rows[k])
            max_diff = max(max_diff, float((together.logits[start:start + n] - alone.logits).abs().max()))
            torch.testing.assert_close(together.logits[start:start + n], alone.logits, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(together.regression[start:start + n], alone.regression, rtol=1e-5, atol=1e-6)
            start += n
    print(f"batch vs one object: max diff {max_diff:.2e}")


def test_object_without_rows_is_refused(plasticc_inputs) -> None:
    inputs, _ = plasticc_inputs
    empty = np.flatnonzero(inputs.n_rows == 0)
    with pytest.raises(ValueError, match="no window row"):
        make_batch(inputs, empty[:1])
