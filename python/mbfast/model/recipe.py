"""Recipe of the shipped default model (python/mbfast/data/default_model.mbf): PLAsTiCC (simulated LSST ugrizy),
14 classes, redshift regression, fold 0 of 7, one hour of CPU. See docs/training.md for the choices.

Trained by training/train_default.py; `mbfast report` trains Multi and MTL with it on the report's folds.
"""
from __future__ import annotations

from mbfast.model.training import TrainOptions

# 6 bands, median 3-9 observations per band (window rows = n_obs - 2), median 29 central steps: 64 hidden units
# and 3 band / 2 central layers (the paper's Gaia/ZTF depth at PS1 width); n_skip=2 as for PS1 (short curves)
CONFIG = dict(band_hidden=64, band_layers=3, central_hidden=64, central_layers=2, n_skip=2)
OPTIONS = TrainOptions(dataset="plasticc", batch_size=128, lr=5e-3, steps_wait=200, band_dropout=0.3,
                       patience=20, max_minutes=60, seed=0, fold=0)
