"""ModelConfig: the one source of truth for the model's shape.

It builds the PyTorch modules (mbfast.train), is stored as JSON in the model file (mbfast.model.modelfile) and is
what the C++ loader reads. Nothing re-derives hyper-parameters from tensor shapes.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field

# w = 2 differences per window row (paper §3.1): [log10 dt_prev, log10 dt, dmag_prev, dmag].
ROW_WIDTH = 4


@dataclass(frozen=True)
class RegressionTarget:
    """A physical parameter regressed from the last step (paper §3.7), z-scored with (mean, std)."""

    name: str
    mean: float
    std: float
    weight: float = 1.0  # lambda_k of eq. 6


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a multiband RNN ensemble (paper §3).

    Bands and classes are ordered: band index b and class index c in every array follow these tuples.
    """

    survey: str
    bands: tuple[str, ...]
    class_names: tuple[str, ...]
    band_hidden: int = 64
    band_layers: int = 3
    central_hidden: int = 64
    central_layers: int = 2
    translation_layers: int = 3
    classifier_hidden: int = 64
    classifier_layers: int = 3
    band_head_hidden: int = 64
    band_head_layers: int = 2
    regression_hidden: int = 128
    regression_layers: int = 2
    regression_targets: tuple[RegressionTarget, ...] = field(default_factory=tuple)
    n_skip: int = 2
    layernorm_eps: float = 1e-3
    batchnorm_eps: float = 1e-3
    # the model card (data, classes, metrics on simulated and real data, known limits): for people, not the maths
    card: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.bands) < 1:
            raise ValueError("ModelConfig.bands must name at least one band")
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"ModelConfig.bands has duplicates: {self.bands}")
        if len(self.class_names) < 2:
            raise ValueError("ModelConfig.class_names must name at least two classes")
        for name in ("band_hidden", "band_layers", "central_hidden", "central_layers", "translation_layers",
                     "classifier_hidden", "classifier_layers", "band_head_hidden", "band_head_layers",
                     "regression_hidden", "regression_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_skip < 0:
            raise ValueError(f"ModelConfig.n_skip must be >= 0, got {self.n_skip}")
        for name in ("layernorm_eps", "batchnorm_eps"):  # the engine refuses the file otherwise: say so here first
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be finite and > 0, got {getattr(self, name)}")

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def colour_pairs(self) -> tuple[tuple[int, int], ...]:
        """Band pairs (a, b), colour = mean_mag[a] - mean_mag[b]; lexicographic (Appendix B, see docs/model.md)."""
        return tuple(itertools.combinations(range(self.n_bands), 2))

    @property
    def n_colours(self) -> int:
        return len(self.colour_pairs)

    @property
    def final_width(self) -> int:
        """Width of the final representation [central mix, colours, multiband dt] (paper §3.5)."""
        return self.central_hidden + self.n_colours + 1

    def to_json(self) -> str:
        raw = asdict(self)
        if not raw["card"]:  # files without a card keep the bytes they had before cards existed
            del raw["card"]
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        raw = json.loads(text)
        raw["bands"] = tuple(raw["bands"])
        raw["class_names"] = tuple(raw["class_names"])
        raw["regression_targets"] = tuple(RegressionTarget(**t) for t in raw.get("regression_targets", ()))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}; upgrade mbfast")
        return cls(**raw)
