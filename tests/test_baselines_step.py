"""The step baselines of bench/ (PyTorch eager, torch.compile, ONNX Runtime) compute the model: their probabilities
equal mbfast.model.reference.ReferenceModel's over several steps of interleaved objects and bands.

fp32 baselines against the float64 reference: rtol 1e-5, atol 1e-6 (max diff printed). Small configs, a few steps.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.model.modelfile import ModelFile
from mbfast.model.reference import ReferenceModel
from mbfast.model.layout import random_weights

torch = pytest.importorskip("torch")

N_OBJECTS, N_STEPS = 5, 4


def tiny_model(with_targets: bool, bands: tuple[str, ...] = ("g", "r", "i")) -> ModelFile:
    targets = (RegressionTarget("redshift", 0.4, 0.25),) if with_targets else ()
    config = ModelConfig(survey="ztf", bands=bands, class_names=("a", "b", "c", "d"), band_hidden=6,
                         band_layers=3, central_hidden=7, central_layers=2, translation_layers=2,
                         classifier_hidden=9, classifier_layers=2, regression_hidden=5, regression_layers=2,
                         regression_targets=targets)
    return ModelFile(config, random_weights(config, seed=3))


def inputs(config: ModelConfig, step: int) -> tuple[np.ndarray, ...]:
    """Rows for all objects in shuffled order, bands mixed: obj_index, band, rows, colours, dt_central (N, 1)."""
    rng = np.random.default_rng(step)
    obj_index = rng.permutation(N_OBJECTS).astype(np.int64)
    band = rng.integers(0, config.n_bands, N_OBJECTS).astype(np.int64)
    rows = rng.normal(0.0, 1.0, (N_OBJECTS, 4)).astype(np.float32)
    colours = rng.normal(0.0, 0.5, (N_OBJECTS, config.n_colours)).astype(np.float32)
    dt_central = rng.uniform(0.0, 2.0, (N_OBJECTS, 1)).astype(np.float32)
    return obj_index, band, rows, colours, dt_central


def reference_probs(model: ModelFile) -> list[np.ndarray]:
    reference = ReferenceModel(model)
    states = [reference.new_state() for _ in range(N_OBJECTS)]
    out = []
    for step in range(N_STEPS):
        obj_index, band, rows, colours, dt_central = inputs(model.config, step)
        out.append(np.stack([reference.step(states[k], int(b), r, c, float(d[0])).probs
                             for k, b, r, c, d in zip(obj_index, band, rows, colours, dt_central)]))
    return out


def check_stepper(model: ModelFile, step: Callable[..., np.ndarray]) -> None:
    expected = reference_probs(model)
    worst = 0.0
    for k in range(N_STEPS):
        probs = step(*inputs(model.config, k))
        worst = max(worst, float(np.abs(probs - expected[k]).max()))
        np.testing.assert_allclose(probs, expected[k], rtol=1e-5, atol=1e-6, err_msg=f"step {k}")
    print(f"maxdiff {worst:.2e}")


def torch_step(stepper: object) -> Callable[..., np.ndarray]:
    def step(*arrays: np.ndarray) -> np.ndarray:
        return stepper.step(*(torch.from_numpy(a) for a in arrays)).numpy()
    return step


@pytest.mark.parametrize("with_targets", [False, True])
def test_torch_eager_equals_reference(with_targets: bool) -> None:
    from mbfast.benchmark.torch_step import TorchStepper

    model = tiny_model(with_targets)
    check_stepper(model, torch_step(TorchStepper(model, N_OBJECTS)))


def test_band_step_regression_equals_reference() -> None:
    from mbfast.benchmark.torch_step import BandStep, CentralWeights

    model = tiny_model(with_targets=True)
    config = model.config
    reference = ReferenceModel(model)
    state = reference.new_state()
    obj_index, band, rows, colours, dt_central = inputs(config, 0)
    expected = reference.step(state, 1, rows[0], colours[0], float(dt_central[0, 0]))
    zeros_band = torch.zeros(1, config.band_layers, config.band_hidden)
    zeros_central = torch.zeros(1, config.central_layers, config.central_hidden)
    out = BandStep(model, 1, CentralWeights(model))(
        torch.from_numpy(rows[:1]), zeros_band, zeros_band, zeros_central, zeros_central,
        torch.from_numpy(colours[:1]), torch.from_numpy(dt_central[:1]))
    np.testing.assert_allclose(out[4][0].numpy(), expected.probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[5][0].numpy(), expected.regression, rtol=1e-5, atol=1e-5)


def test_onnx_runtime_equals_reference() -> None:
    pytest.importorskip("onnxruntime")
    from mbfast.benchmark.onnx_step import OnnxStepper

    model = tiny_model(with_targets=False)
    check_stepper(model, OnnxStepper(model, N_OBJECTS, num_threads=1).step)


@pytest.mark.slow
def test_torch_compile_equals_reference() -> None:
    from mbfast.benchmark.torch_step import TorchStepper, compile_stepper

    model = tiny_model(with_targets=False, bands=("g", "r"))  # each band graph compiles for ~20 s
    stepper = compile_stepper(TorchStepper(model, N_OBJECTS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            check_stepper(model, torch_step(stepper))
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001 (no C++ compiler, unsupported platform): the bench reports it too
            pytest.skip(f"torch.compile does not work here: {type(error).__name__}: {error}")
