"""What the model is: its shape (config.py), the name and shape of every weight (layout.py), the model file
(modelfile.py), what it costs (counts.py), and the slow NumPy reference of its preprocessing and step (reference.py,
producing preprocessed.ModelInputs). NumPy only: the engine, training and tests all build on these.
"""
