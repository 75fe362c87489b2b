"""Training side of mbfast (the `mbfast[train]` extra: torch, Numba, matplotlib): the labelled data sets
(datasets.py), their Numba preprocessing (preprocess.py) into a TrainingSet (training_set.py), the paper's model (§3)
in PyTorch, its training loop, evaluation and export to a model file, and the paper's baseline classifiers
(baseline_classifiers/).

`import mbfast` never imports this package; `import mbfast.train` itself imports neither torch nor Numba.
Read in this order: stack.py -> ffnn.py -> multiband.py -> batch.py -> export.py -> loop.py -> evaluate.py.
"""
from __future__ import annotations
