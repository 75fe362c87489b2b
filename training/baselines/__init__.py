"""The paper's baselines (§4): balanced random forest on light-curve features, and the concatenation of
jointly trained single-band LSTMs; report.py trains and evaluates them next to the multiband model.

Not part of the installed package: run from the repository root (needs the `baselines` and `train` extras).
"""
