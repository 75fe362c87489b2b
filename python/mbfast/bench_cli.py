"""`mbfast bench`: a quick run of the step workloads of bench/bench_step.py, printed as a table and written as JSON.

Also home of those workloads (the ZTF-shaped model, random weights, pre-warmed objects and the pre-generated rounds
of observations), so that bench/bench_step.py and this command time the same thing. The baselines (PyTorch eager,
torch.compile, ONNX Runtime) and the GEMM ceiling live in the source tree's bench/ folder and need the
`mbfast[train,bench]` extras; without them the command times mbfast alone. The full, statistically careful
benchmark is `pytest bench` (docs/performance.md).
Dimension legend: N rows per call (distinct objects), R rounds, B bands, P colour pairs.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mbfast.config import ModelConfig
from mbfast.layout import weight_layout

BATCH_SIZES = (1, 16, 256, 4096, 65536)
BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"  # present in a source checkout (editable install)

# The paper's ZTF configuration (Becker et al. 2025): bands g r, band stack 3 x 128, central stack 2 x 128,
# classifier 3 x 128, 15 classes; other sizes at their ModelConfig defaults, no regression targets.
ZTF_CONFIG = ModelConfig(survey="ztf", bands=("g", "r"), class_names=tuple(f"class{c}" for c in range(15)),
                         band_hidden=128, band_layers=3, central_hidden=128, central_layers=2,
                         classifier_hidden=128, classifier_layers=3)


def random_weights(config: ModelConfig, seed: int = 0, scale: float = 0.3) -> dict[str, np.ndarray]:
    """Random weights for `config` with non-trivial BatchNorm running statistics: what the benchmarks time (the
    values do not matter, only the shapes) and what the tests check parity on (tests/conftest.py)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in weight_layout(config):
        if name.endswith("running_var"):
            tensors[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.endswith("running_mean"):
            tensors[name] = rng.normal(0.0, 0.5, shape).astype(np.float32)
        else:
            tensors[name] = rng.normal(0.0, scale, shape).astype(np.float32)
    return tensors


def rounds_for(batch: int) -> int:
    """Timed calls per batch size: ~20 k rows in all, 3 to 200 calls."""
    return max(3, min(200, 20_000 // batch))


@dataclass(frozen=True)
class StepRounds:
    """Observations for `n_rounds` calls of N rows, one row per object, every row a predicted one.

    Objects are pre-warmed by `warm` with 2 observations per band; round k then gives object i one observation in
    band (i + k) % B at t = T0 + 2 B + k days, so every later round is the 3rd or later observation of its band and
    forms a window row. The baselines get the same band per row and ready window rows (they do no preprocessing).
    """

    obj_id: np.ndarray      # int64 (N,)
    band: np.ndarray        # int8 (R, N)
    t: np.ndarray           # float64 (R, N) MJD
    mag: np.ndarray         # float32 (R, N)
    err: np.ndarray         # float32 (R, N)
    obj_index: np.ndarray   # int64 (N,) state rows of the baselines, a permutation
    rows: np.ndarray        # float32 (N, 4) window rows of the baselines
    colours: np.ndarray     # float32 (N, P)
    dt_central: np.ndarray  # float32 (N, 1)

    T0 = 60_000.0

    @classmethod
    def make(cls, config: ModelConfig, batch: int, n_rounds: int, seed: int = 0) -> StepRounds:
        rng = np.random.default_rng(seed)
        n_bands = config.n_bands
        objects = np.arange(batch, dtype=np.int64)
        band = ((objects[None, :] + np.arange(n_rounds)[:, None]) % n_bands).astype(np.int8)
        t = cls.T0 + 2 * n_bands + np.repeat(np.arange(n_rounds, dtype=np.float64)[:, None], batch, axis=1)
        mag = (20.0 + 0.2 * rng.standard_normal((n_rounds, batch))).astype(np.float32)
        err = np.full((n_rounds, batch), 0.05, dtype=np.float32)
        rows = np.column_stack([np.log10(rng.uniform(0.5, 3.0, (batch, 2))),
                                0.2 * rng.standard_normal((batch, 2))]).astype(np.float32)
        colours = (0.3 * rng.standard_normal((batch, config.n_colours))).astype(np.float32)
        dt_central = np.log10(1.0 + rng.uniform(0.0, 3.0, (batch, 1))).astype(np.float32)
        return cls(objects * 7919 + 1, band, t, mag, err, rng.permutation(batch).astype(np.int64), rows, colours,
                   dt_central)

    def warm(self, engine: object) -> None:
        """Give every object 2 observations per band (status warming_up) at t = T0 .. T0 + 2 B - 1."""
        n_bands = len(engine.bands)  # type: ignore[attr-defined]
        for j in range(2 * n_bands):
            n = len(self.obj_id)
            engine.step(self.obj_id, np.full(n, j % n_bands, dtype=np.int8),  # type: ignore[attr-defined]
                        np.full(n, self.T0 + j), np.full(n, 20.0, dtype=np.float32),
                        np.full(n, 0.05, dtype=np.float32), outputs=())

    def engine_args(self, k: int) -> tuple[np.ndarray, ...]:
        return self.obj_id, self.band[k], self.t[k], self.mag[k], self.err[k]

    def baseline_args(self, k: int) -> tuple[np.ndarray, ...]:
        return self.obj_index, self.band[k].astype(np.int64), self.rows, self.colours, self.dt_central


def bench_modules() -> dict[str, object]:
    """bench/roofline.py and bench/baselines from the source tree; missing ones are left out."""
    if not BENCH_DIR.is_dir():
        return {}
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    import importlib

    modules: dict[str, object] = {"roofline": importlib.import_module("roofline")}
    for name in ("torch_step", "onnx_step"):
        try:
            modules[name] = importlib.import_module(f"baselines.{name}")
        except ImportError:  # torch or onnxruntime not installed
            continue
    return modules


def mbfast_label(precision: str) -> str:
    return "mbfast" if precision == "fp32" else f"mbfast-{precision}"


def steppers(model_path: Path, batch: int, num_threads: int, precisions: list[str], modules: dict[str, object],
             compiled: dict[str, object]) -> dict[str, Callable[[int], object]]:
    """For each implementation that can run here (mbfast once per precision), a fresh, warmed state for `batch`
    objects and a function that runs round k. `compiled` caches torch.compile'd band steps (or the error) across
    batch sizes."""
    from mbfast.engine import Engine
    from mbfast.modelfile import read_model

    model = read_model(model_path)
    rounds = StepRounds.make(model.config, batch, rounds_for(batch) + 2)
    out: dict[str, Callable[[int], object]] = {}
    for precision in precisions:
        engine = Engine.load(model_path, num_threads=num_threads, precision=precision)
        rounds.warm(engine)
        out[mbfast_label(precision)] = functools.partial(
            lambda engine, k: engine.step(*rounds.engine_args(k), outputs=("probs",)), engine)
    if "torch_step" in modules:
        import torch

        torch.set_num_threads(num_threads)
        torch_step = modules["torch_step"]
        eager = torch_step.TorchStepper(model, batch)  # type: ignore[attr-defined]
        tensors = [torch.from_numpy(a) for a in rounds.baseline_args(0)]
        out["torch"] = lambda k: eager.step(*tensors)
        if "error" not in compiled:
            stepper = torch_step.TorchStepper(model, batch)  # type: ignore[attr-defined]
            try:
                if "band_steps" not in compiled:
                    compiled["band_steps"] = torch_step.compile_stepper(stepper).band_steps  # type: ignore
                stepper.band_steps = compiled["band_steps"]  # type: ignore[assignment]
                with _quiet():
                    stepper.step(*tensors)  # compiles (or re-specialises) outside any timing
                out["torch.compile"] = lambda k: stepper.step(*tensors)
            except Exception as error:  # noqa: BLE001 (no compiler, unsupported op, ...): reported, not fatal
                compiled["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if "onnx_step" in modules:
        if "graphs" not in compiled:
            compiled["graphs"] = modules["onnx_step"].export_band_graphs(model)  # type: ignore[attr-defined]
        session = modules["onnx_step"].OnnxStepper(model, batch, num_threads,  # type: ignore[attr-defined]
                                                   graphs=compiled["graphs"])
        arrays = rounds.baseline_args(0)
        out["onnxruntime"] = lambda k: session.step(*arrays)
    return out


class _quiet:
    """Silence torch's own deprecation warnings while it compiles."""

    def __enter__(self) -> None:
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)


def time_calls(run: Callable[[int], object], n_rounds: int) -> float:
    """Median seconds of calls 1..n_rounds (call 0 is a warm-up)."""
    run(0)
    times = []
    for k in range(1, n_rounds + 1):
        start = time.perf_counter()
        run(k)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_bench(args: argparse.Namespace) -> int:
    from mbfast.costs import model_info
    from mbfast.modelfile import write_model

    modules = bench_modules()
    num_threads = args.threads or len(os.sched_getaffinity(0))
    flops = int(model_info(ZTF_CONFIG)["flops_per_observation"])
    ceiling = modules["roofline"].gemm_ceiling(args.gemm_n) if "roofline" in modules else None  # type: ignore
    ceiling_gflops = float(ceiling["gflops"]) if ceiling else None
    results: list[dict[str, object]] = []
    compiled: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "ztf.mbf"
        write_model(model_path, ZTF_CONFIG, random_weights(ZTF_CONFIG))
        for batch in args.batch:
            n_rounds = max(1, min(rounds_for(batch), args.max_rounds))
            for name, run in steppers(model_path, batch, num_threads, args.precision, modules, compiled).items():
                seconds = time_calls(run, n_rounds)
                obs_per_s = batch / seconds
                gflops = obs_per_s * flops / 1e9
                results.append({"batch": batch, "implementation": name, "seconds": seconds, "obs_per_s": obs_per_s,
                                "gflops": gflops, "ceiling_fraction": gflops / ceiling_gflops if ceiling_gflops else None})
    report = {"shape": "ztf", "config": json.loads(ZTF_CONFIG.to_json()), "flops_per_observation": flops,
              "num_threads": num_threads, "precisions": list(args.precision), "gemm_ceiling": ceiling, "results": results,
              "missing": sorted({"torch", "torch.compile", "onnxruntime", "gemm ceiling"}
                                - {str(r["implementation"]) for r in results} - ({"gemm ceiling"} if ceiling else set())),
              "torch_compile_error": compiled.get("error")}
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def format_table(report: dict[str, object]) -> str:
    """obs/s per batch size and implementation, mbfast's ratio to each (its first precision, fp32 by default),
    GFLOP/s and % of the GEMM ceiling."""
    results: list[dict[str, object]] = report["results"]  # type: ignore[assignment]
    lead = mbfast_label(report["precisions"][0])  # type: ignore[index]
    ceiling = report["gemm_ceiling"]
    lines = [f"ZTF shape, {report['flops_per_observation'] / 1e6:.2f} MFLOP/observation, "
             f"{report['num_threads']} threads; GEMM ceiling "
             + (f"{ceiling['gflops']:.0f} GFLOP/s ({ceiling['n']}^2 fp32)" if ceiling else "not measured"),  # type: ignore
             f"{'batch':>6} {'implementation':<14} {'obs/s':>12} {lead + ' x':>12} {'GFLOP/s':>8} {'% ceiling':>9}"]
    mbfast = {r["batch"]: float(r["obs_per_s"]) for r in results if r["implementation"] == lead}  # type: ignore
    for r in results:
        ratio = mbfast[r["batch"]] / float(r["obs_per_s"])  # type: ignore[arg-type]
        fraction = r["ceiling_fraction"]
        share = f"{100 * float(fraction):>8.1f}%" if fraction is not None else f"{'-':>9}"  # type: ignore[arg-type]
        lines.append(f"{r['batch']:>6} {r['implementation']:<14} {float(r['obs_per_s']):>12,.0f} "  # type: ignore
                     f"{ratio:>11.2f}x {float(r['gflops']):>8.1f} {share}")  # type: ignore
    if report.get("torch_compile_error"):
        lines.append(f"torch.compile failed: {report['torch_compile_error']}")
    if report.get("missing"):
        lines.append(f"not run here: {', '.join(report['missing'])}")  # type: ignore[arg-type]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="quick step throughput of mbfast vs PyTorch / torch.compile / ONNX Runtime (ZTF shape)",
        description="Times Engine.step on rows of distinct, pre-warmed objects (every row predicted) for the ZTF "
                    "model shape with random weights, against the bench/ baselines when available. Numbers are "
                    "medians of a few calls: for careful figures run `pytest bench` (docs/performance.md).")
    parser.add_argument("--batch", type=int, nargs="+", default=list(BATCH_SIZES), help="rows per call")
    parser.add_argument("--threads", type=int, default=None, help="threads for every implementation (default: all)")
    parser.add_argument("--precision", nargs="+", default=["fp32"],
                        help="mbfast precisions to time (Engine.load precision; the first is the ratio column's)")
    parser.add_argument("--max-rounds", type=int, default=20, help="timed calls per batch size at most")
    parser.add_argument("--gemm-n", type=int, default=4096, help="matrix size of the GEMM ceiling")
    parser.add_argument("--json", default="bench_step.json", help="where to write the results ('' for nowhere)")
    parser.set_defaults(run=run_bench)
