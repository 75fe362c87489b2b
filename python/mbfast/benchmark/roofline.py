"""The fp32 GEMM ceiling of this machine: GFLOP/s of one large NumPy float32 matmul, measured in a fresh process.

What the step benchmarks' GFLOP/s are compared against (docs/performance.md). Not a peak-FLOPs calculation: it is
what the BLAS NumPy ships reaches here. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are set on our machines to pin
OpenBLAS's kernel choice for reproducible tests; the child process runs with them unset so the BLAS picks its
best kernel, and the kernel threadpoolctl reports is recorded.
Run as a script: `python -m mbfast.benchmark.roofline [n]`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

PINNING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

_CHILD = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_info
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = a @ b  # first call: thread start-up and page faults
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    np.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - start)
blas = [{k: v for k, v in pool.items() if k in ("internal_api", "version", "architecture", "num_threads",
                                                  "threading_layer", "filepath")}
        for pool in threadpool_info() if pool.get("user_api") == "blas"]
print(json.dumps({"n": n, "seconds": best, "gflops": 2.0 * n ** 3 / best / 1e9, "blas": blas}))
"""


def gemm_ceiling(n: int = 4096, repeats: int = 3) -> dict[str, object]:
    """Best-of-`repeats` GFLOP/s of an (n, n) @ (n, n) float32 matmul (2 n^3 FLOPs) in a child process.

    Returns a dict: n, seconds, gflops, blas (threadpoolctl's BLAS entries: internal_api, architecture = the
    kernel OpenBLAS picked, num_threads, ...) and unset (the pinning variables that were set here and unset for
    the child, with their values).
    """
    env = dict(os.environ)
    unset = {name: env.pop(name) for name in PINNING_VARIABLES if name in env}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(repeats)], env=env, check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["unset"] = unset
    return result


if __name__ == "__main__":
    print(json.dumps(gemm_ceiling(int(sys.argv[1]) if len(sys.argv) > 1 else 4096), indent=2))
