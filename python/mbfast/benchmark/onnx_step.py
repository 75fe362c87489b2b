"""ONNX Runtime baseline of Engine.step: one exported graph per band (the torch_step.BandStep of that band), states
as graph inputs and outputs, gathered and scattered in NumPy; CPU execution provider, intra-op threads = cores.

Not a production server: it exists to be measured against. Dimension legend as in torch_step.py.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np

from mbfast.model.config import ModelConfig
from mbfast.model.modelfile import ModelFile

INPUTS = ("rows", "band_hidden", "band_cell", "central_hidden", "central_cell", "colours", "dt_central")
STATE_OUTPUTS = ("new_band_hidden", "new_band_cell", "new_central_hidden", "new_central_cell")


def export_band_graphs(model: ModelFile) -> list[bytes]:
    """ONNX bytes of torch_step.BandStep for each band, with the row count N a dynamic axis."""
    import torch

    from .torch_step import CentralWeights, BandStep

    config = model.config
    central = CentralWeights(model)
    n, p = 3, config.n_colours
    example = (torch.zeros(n, 4), torch.zeros(n, config.band_layers, config.band_hidden),
               torch.zeros(n, config.band_layers, config.band_hidden),
               torch.zeros(n, config.central_layers, config.central_hidden),
               torch.zeros(n, config.central_layers, config.central_hidden), torch.zeros(n, p), torch.zeros(n, 1))
    outputs = STATE_OUTPUTS + ("probs",) + (("regression",) if config.regression_targets else ())
    graphs = []
    for band in range(config.n_bands):
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated; the dynamo one needs onnxscript
            warnings.simplefilter("ignore")
            torch.onnx.export(BandStep(model, band, central).eval(), example, buffer, dynamo=False,
                              input_names=list(INPUTS), output_names=list(outputs), opset_version=17,
                              dynamic_axes={name: {0: "n"} for name in INPUTS + outputs})
        graphs.append(buffer.getvalue())
    return graphs


class OnnxStepper:
    """States of `n_objects` objects in NumPy arrays; each band's rows go through that band's ORT session."""

    def __init__(self, model: ModelFile, n_objects: int, num_threads: int | None = None,
                 graphs: list[bytes] | None = None) -> None:
        import onnxruntime as ort

        config = model.config
        self.config: ModelConfig = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graphs = graphs if graphs is not None else export_band_graphs(model)
        self.sessions = [ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"]) for graph in graphs]
        shape = (config.n_bands, n_objects, config.band_layers, config.band_hidden)
        self.band_hidden = np.zeros(shape, dtype=np.float32)                       # (B, K, L, H)
        self.band_cell = np.zeros(shape, dtype=np.float32)
        central = (n_objects, config.central_layers, config.central_hidden)
        self.central_hidden = np.zeros(central, dtype=np.float32)                  # (K, Lc, Hc)
        self.central_cell = np.zeros(central, dtype=np.float32)

    def step(self, obj_index: np.ndarray, band: np.ndarray, rows: np.ndarray, colours: np.ndarray,
             dt_central: np.ndarray) -> np.ndarray:
        """Same contract as torch_step.TorchStepper.step, with NumPy arrays (float32; dt_central (N, 1))."""
        probs = np.empty((len(band), self.config.n_classes), dtype=np.float32)
        for b, session in enumerate(self.sessions):
            picked = np.flatnonzero(band == b)
            if len(picked) == 0:
                continue
            index = obj_index[picked]
            feeds = {"rows": rows[picked], "band_hidden": self.band_hidden[b, index],
                     "band_cell": self.band_cell[b, index], "central_hidden": self.central_hidden[index],
                     "central_cell": self.central_cell[index], "colours": colours[picked],
                     "dt_central": dt_central[picked]}
            out = session.run(None, feeds)
            self.band_hidden[b, index] = out[0]
            self.band_cell[b, index] = out[1]
            self.central_hidden[index] = out[2]
            self.central_cell[index] = out[3]
            probs[picked] = out[4]
        return probs
