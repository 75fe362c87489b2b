"""Recipes of the shipped models (python/mbfast/data/lsst.mbf and ztf.mbf): the model shape and training
options that training/train_models.py uses, and that `mbfast report` trains Multi and MTL with on its folds.
See docs/training.md for the choices. Class balance, augmentation and selection on validation macro F1 are
TrainOptions' defaults.
"""
from __future__ import annotations

from mbfast.train.loop import TrainOptions

# 6 bands, median 3-9 observations per band (window rows = n_obs - 2), median 29 central steps: 64 hidden units
# and 3 band / 2 central layers (the paper's Gaia/ZTF depth at PS1 width); n_skip=2 as for PS1 (short curves)
CONFIG = dict(band_hidden=64, band_layers=3, central_hidden=64, central_layers=2, n_skip=2)
# lsst: PLAsTiCC (simulated LSST ugrizy), 14 classes, redshift regression, fold 0 of 7, 80 minutes of one CPU
OPTIONS = TrainOptions(dataset="plasticc", batch_size=128, lr=5e-3, steps_wait=200, band_dropout=0.3,
                       patience=20, max_minutes=80, seed=0, fold=0)
# ztf: first PLAsTiCC g r i made ZTF-like, then fine-tuned on that set mixed with the real YSE ZTF photometry
ZTF_OPTIONS = TrainOptions(dataset="plasticc_ztf", batch_size=128, lr=5e-3, steps_wait=200, band_dropout=0.3,
                           patience=20, max_minutes=60, seed=0, fold=0)
ZTF_FINE_TUNE = TrainOptions(dataset="ztf_mix", batch_size=128, lr=1e-3, steps_wait=0, band_dropout=0.3,
                             patience=15, max_minutes=30, seed=0, fold=0)
