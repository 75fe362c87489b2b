"""Baselines the step benchmark compares mbfast with: the same weights (one .mbf file) stepped by PyTorch eager,
torch.compile and ONNX Runtime. They take ready window rows (no preprocessing) and keep states in dense arrays.

Not part of the mbfast package: they need torch / onnxruntime and exist only to be measured against.
"""
