"""Two builds of mbfast, compared on the shipped models and sample: outputs byte for byte, then step throughput.

    python bench/compare_builds.py OLD_PYTHON NEW_PYTHON [--rounds 3]

Each build runs in its own subprocess (its python executable, its installed mbfast) and writes, for lsst and ztf at
fp32, bf16, int8 and fp32 with fp16 state: Engine.classify outputs, a row-by-row Engine.step pass (status, probs,
embedding, regression), one whole-sample step call on 2 threads (the chunked, threaded path) and the state file
saved after each pass. Every file must be equal byte for byte. Throughput (row-by-row and 256-row step calls) is
measured in alternating old/new processes, and the report gives new/old per workload. Not a pytest file: a tool
for checking a refactoring that must not change results. Exit status 1 when any output differs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "python" / "mbfast" / "data" / "plasticc_sample.parquet"
# (model, precision, state_dtype)
CONFIGS = [(model, precision, state) for model in ("lsst", "ztf")
           for precision, state in (("fp32", "fp32"), ("bf16", "fp32"), ("int8", "fp32"), ("fp32", "fp16"))]


def sample_rows(model: str) -> dict[str, object]:
    """The sample's rows in t order (a stream), only the model's bands."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(SAMPLE)
    if model == "ztf":
        frame = frame[frame["band"].isin(["g", "r", "i"])]
    frame = frame.sort_values(["t", "obj_id"], kind="stable")
    return {"obj_id": frame["obj_id"].to_numpy(np.int64), "band": frame["band"].to_numpy(str),
            "t": frame["t"].to_numpy(np.float64), "mag": frame["mag"].to_numpy(np.float32),
            "err": frame["err"].to_numpy(np.float32), "frame": frame}


def child_outputs(out: Path) -> None:
    """Writes every output of this build under `out`, one file per array."""
    import numpy as np

    import mbfast

    outputs = ("probs", "embedding", "regression")
    for model, precision, state in CONFIGS:
        rows = sample_rows(model)
        name = f"{model}-{precision}-state_{state}"
        engine = mbfast.Engine.load(model, num_threads=1, precision=precision, state_dtype=state)
        result = engine.classify(rows["frame"])
        for field in ("obj_id", "probs", "embedding", "regression", "n_obs"):
            (out / f"{name}.classify.{field}").write_bytes(np.ascontiguousarray(getattr(result, field)).tobytes())
        parts: dict[str, list[np.ndarray]] = {field: [] for field in ("status", *outputs)}
        for i in range(len(rows["t"])):  # row by row: the streaming path, one-row waves
            step = engine.step(rows["obj_id"][i:i + 1], rows["band"][i:i + 1], rows["t"][i:i + 1],
                               rows["mag"][i:i + 1], rows["err"][i:i + 1], outputs=outputs)
            for field in parts:
                parts[field].append(getattr(step, field))
        for field, values in parts.items():
            (out / f"{name}.rows.{field}").write_bytes(np.ascontiguousarray(np.concatenate(values)).tobytes())
        engine.save_state(out / f"{name}.rows.state")
        engine = mbfast.Engine.load(model, num_threads=2, precision=precision, state_dtype=state)
        step = engine.step(rows["obj_id"], rows["band"], rows["t"], rows["mag"], rows["err"], outputs=outputs)
        for field in ("status", *outputs):
            (out / f"{name}.batch.{field}").write_bytes(np.ascontiguousarray(getattr(step, field)).tobytes())
        engine.save_state(out / f"{name}.batch.state")


def child_throughput() -> None:
    """Prints {workload: observations per second} of this build, best of 3 passes each."""
    import numpy as np

    import mbfast

    rows = sample_rows("lsst")
    n = len(rows["t"])
    codes = {band: code for code, band in enumerate(mbfast.Engine.load("lsst").bands)}
    band = np.array([codes[b] for b in rows["band"]], dtype=np.int8)
    result: dict[str, float] = {}
    for precision in ("fp32", "bf16", "int8"):
        for batch in (1, 256):
            best = float("inf")
            for _ in range(3):
                engine = mbfast.Engine.load("lsst", num_threads=1, precision=precision)
                start = time.perf_counter()
                for i in range(0, n, batch):
                    engine.step(rows["obj_id"][i:i + batch], band[i:i + batch], rows["t"][i:i + batch],
                                rows["mag"][i:i + batch], rows["err"][i:i + batch])
                best = min(best, time.perf_counter() - start)
            result[f"lsst-{precision}/batch={batch}"] = n / best
    print(json.dumps(result))


def run(python: str, *args: str) -> str:
    done = subprocess.run([python, __file__, *args], check=True, capture_output=True, text=True)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_python")
    parser.add_argument("new_python")
    parser.add_argument("--rounds", type=int, default=3, help="old/new throughput process pairs (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {which: Path(tmp) / which for which in ("old", "new")}
        for which, python in (("old", args.old_python), ("new", args.new_python)):
            dirs[which].mkdir()
            run(python, "--child-outputs", str(dirs[which]))
        names = sorted(path.name for path in dirs["old"].iterdir())
        new_names = sorted(path.name for path in dirs["new"].iterdir())
        differ = [name for name in names if name not in new_names
                  or (dirs["old"] / name).read_bytes() != (dirs["new"] / name).read_bytes()]
        differ += [name for name in new_names if name not in names]
        total = sum((dirs["old"] / name).stat().st_size for name in names)
        print(f"outputs: {len(names)} files, {total / 1e6:.1f} MB per build; "
              f"{'BIT-IDENTICAL' if not differ else f'{len(differ)} DIFFER: ' + ', '.join(differ)}")
    speeds: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for which, python in (("old", args.old_python), ("new", args.new_python)):
            for workload, value in json.loads(run(python, "--child-throughput").strip().splitlines()[-1]).items():
                speeds[which].setdefault(workload, []).append(value)
    print(f"{'workload':28s} {'old obs/s':>12s} {'new obs/s':>12s} {'new/old':>8s}  (best of {args.rounds} processes)")
    for workload, old in speeds["old"].items():
        new = speeds["new"][workload]
        print(f"{workload:28s} {max(old):12.0f} {max(new):12.0f} {max(new) / max(old):8.3f}")
    return 1 if differ else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child-outputs"]:
        child_outputs(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["--child-throughput"]:
        child_throughput()
    else:
        sys.exit(main())
