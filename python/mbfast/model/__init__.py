"""PyTorch side of mbfast: the paper's model (§3), its padded-batch builder, training, export and evaluation.

Imported only by training, export and parity tests (the `mbfast[train]` extra); `import mbfast` never imports
torch, and neither does `import mbfast.model` or `mbfast.cli.train` until a command runs.
Read in this order: stack.py -> ffnn.py -> multiband.py -> batch.py -> export.py -> training.py -> evaluate.py.
"""
from __future__ import annotations
