"""`mbfast info`: what this build compiled, or with --model a model's card."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser("info", help="what this build compiled; with --model, the model's card")
    info.add_argument("--model", help="a shipped model's name (lsst, ztf) or a model file: print its model card "
                                      "(data, classes, metrics on simulated and real data, known limits)")
    info.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import mbfast

    if args.model is None:
        print(json.dumps({**mbfast.build_info(), "cuda_available": mbfast.cuda_available()}, indent=2))
        return 0
    from mbfast.models import resolve
    from mbfast.model.modelfile import read_model

    path = resolve(args.model)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    config = read_model(path).config
    print(json.dumps({"model": str(path), "survey": config.survey, "bands": list(config.bands),
                      "classes": list(config.class_names),
                      "regression_targets": [target.name for target in config.regression_targets],
                      "card": config.card or "this model file has no card"}, indent=2))
    return 0
