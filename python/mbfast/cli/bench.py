"""`mbfast bench`: a quick step-throughput table of mbfast against the baselines that run here
(mbfast.benchmark.quick); the careful benchmark is `pytest bench` (docs/performance.md)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mbfast.benchmark.workloads import BATCH_SIZES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="quick step throughput of mbfast vs PyTorch / torch.compile / ONNX Runtime (ZTF shape)",
        description="Times Engine.step on rows of distinct, pre-warmed objects (every row predicted) for the ZTF "
                    "model shape with random weights, against the baselines of mbfast.benchmark that can run here. "
                    "Numbers are medians of a few calls: for careful figures run `pytest bench` (docs/performance.md).")
    parser.add_argument("--batch", type=int, nargs="+", default=list(BATCH_SIZES), help="rows per call")
    parser.add_argument("--threads", type=int, default=None, help="threads for every implementation (default: all)")
    parser.add_argument("--precision", nargs="+", default=["fp32"],
                        help="mbfast precisions to time (Engine.load precision; the first is the ratio column's)")
    parser.add_argument("--max-rounds", type=int, default=20, help="timed calls per batch size at most")
    parser.add_argument("--gemm-n", type=int, default=4096, help="matrix size of the GEMM ceiling")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON to FILE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mbfast.benchmark.quick import format_table, quick_bench

    report = quick_bench(args.batch, args.threads, args.precision, args.max_rounds, args.gemm_n)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0
