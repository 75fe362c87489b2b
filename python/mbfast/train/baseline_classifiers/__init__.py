"""The paper's baselines (§4): balanced random forest on light-curve features, and the concatenation of
jointly trained single-band LSTMs; report.py trains and evaluates them next to the multiband model (`mbfast report`).

Needs the `train` and `baselines` extras.
"""
