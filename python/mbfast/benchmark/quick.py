"""A quick run of the step workloads of bench/bench_step.py (`mbfast bench` prints it as a table).

The workloads, the GEMM ceiling and the baselines (PyTorch eager, torch.compile, ONNX Runtime) ship in
mbfast.benchmark; the baselines need the `train` (torch) and `bench` (onnxruntime, onnx) extras, and each one that
cannot run here is named with the reason. The full, statistically careful benchmark is `pytest bench`
(docs/performance.md).
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mbfast.benchmark.workloads import ZTF_CONFIG, StepRounds, rounds_for
from mbfast.model.layout import random_weights

INSTALL_HINT = "pip install 'mbfast[train,bench]'"


# each timed baseline of mbfast.benchmark: (module, the packages it needs, the labels it puts in the table)
BASELINES = (("roofline", ("threadpoolctl",), ("gemm ceiling",)),
             ("torch_step", ("torch",), ("torch", "torch.compile")),
             ("onnx_step", ("torch", "onnx", "onnxruntime"), ("onnxruntime",)))


def bench_modules() -> tuple[dict[str, object], dict[str, str]]:
    """The baseline modules whose packages import here, and for each label left out, the reason."""
    import importlib

    modules: dict[str, object] = {}
    missing: dict[str, str] = {}
    for name, needs, labels in BASELINES:
        try:
            for package in needs:
                importlib.import_module(package)
        except ImportError as error:  # an extra not installed, or a broken install: named, not fatal
            for label in labels:
                missing[label] = f"{error} ({INSTALL_HINT})"
            continue
        modules[name] = importlib.import_module(f"mbfast.benchmark.{name}")
    return modules, missing


def mbfast_label(precision: str) -> str:
    return "mbfast" if precision == "fp32" else f"mbfast-{precision}"


def steppers(model_path: Path, batch: int, num_threads: int, precisions: list[str], modules: dict[str, object],
             compiled: dict[str, object]) -> dict[str, Callable[[int], object]]:
    """For each implementation that can run here (mbfast once per precision), a fresh, warmed state for `batch`
    objects and a function that runs round k. `compiled` caches torch.compile'd band steps (or the error) across
    batch sizes."""
    from mbfast.engine import Engine
    from mbfast.model.modelfile import read_model

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


def quick_bench(batches: list[int], num_threads: int | None = None, precisions: tuple[str, ...] | list[str] = ("fp32",),
                max_rounds: int = 20, gemm_n: int = 4096) -> dict[str, object]:
    """Median seconds per Engine.step call of `batches` rows for the ZTF shape with random weights, for mbfast at
    each of `precisions` and every baseline that runs here, with GFLOP/s against the GEMM ceiling (`gemm_n`^2);
    a report that format_table prints and that is written as JSON."""
    from mbfast.model.counts import model_info
    from mbfast.model.modelfile import write_model

    modules, missing = bench_modules()
    num_threads = num_threads or len(os.sched_getaffinity(0))
    flops = int(model_info(ZTF_CONFIG)["flops_per_observation"])
    ceiling = modules["roofline"].gemm_ceiling(gemm_n) if "roofline" in modules else None  # type: ignore
    ceiling_gflops = float(ceiling["gflops"]) if ceiling else None
    results: list[dict[str, object]] = []
    compiled: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "ztf.mbf"
        write_model(model_path, ZTF_CONFIG, random_weights(ZTF_CONFIG))
        for batch in batches:
            n_rounds = max(1, min(rounds_for(batch), max_rounds))
            for name, run in steppers(model_path, batch, num_threads, list(precisions), modules, compiled).items():
                seconds = time_calls(run, n_rounds)
                obs_per_s = batch / seconds
                gflops = obs_per_s * flops / 1e9
                results.append({"batch": batch, "implementation": name, "seconds": seconds, "obs_per_s": obs_per_s,
                                "gflops": gflops, "ceiling_fraction": gflops / ceiling_gflops if ceiling_gflops else None})
    return {"shape": "ztf", "config": json.loads(ZTF_CONFIG.to_json()), "flops_per_observation": flops,
            "num_threads": num_threads, "precisions": list(precisions), "gemm_ceiling": ceiling, "results": results,
            "missing": {**missing, **({"torch.compile": compiled["error"]} if "error" in compiled else {})}}


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
    missing: dict[str, str] = report["missing"]  # type: ignore[assignment]
    if missing:
        lines.append("not run here:")
        lines += [f"  {label}: {reason}" for label, reason in sorted(missing.items())]
    return "\n".join(lines)
