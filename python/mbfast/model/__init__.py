"""What the model is, in NumPy: its shape (config.py), the name and shape of every weight and random weights for
them (layout.py), the model file (modelfile.py), what it costs (counts.py), and the slow reference of its
preprocessing and of one step (reference.py, whose preprocessing yields preprocessed.ModelInputs). No torch, no
Numba: the engine, training (mbfast.train: the PyTorch twin) and the tests build on these.
"""
