"""What `mbfast bench` and `pytest bench` time mbfast against (the `bench` extra, plus `train` for torch).

- workloads.py: the paper's ZTF model shape and the pre-generated rounds of observations every implementation
  steps through, so the command and bench/bench_step.py time the same thing (numpy only).
- roofline.py: the machine's fp32 GEMM ceiling, measured in a child process (numpy, threadpoolctl).
- torch_step.py, onnx_step.py: the same weights (one .mbf file) stepped by PyTorch eager, torch.compile and ONNX
  Runtime. They take ready window rows (no preprocessing) and keep states in dense arrays; they exist only to be
  measured against.
"""
