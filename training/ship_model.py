"""Ship a finished run as a named model: test it through the engine on its simulated test set (fp32, bf16, int8,
and cut to its first n observations) and on REAL light curves it never saw, then write the model card into the
model file, copy it to python/mbfast/data/NAME.mbf and the metrics to NAME.json.

    python training/ship_model.py lsst runs/lsst_f0 reports/lsst --real yse_ps1
    python training/ship_model.py ztf runs/ztf_f0 reports/ztf --real yse_ztf
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

import mbfast
from mbfast.lightcurves.labelled import LabelledSet
from mbfast.train.datasets import load_labelled, load_yse_ps1, load_yse_ztf
from mbfast.train import metrics
from mbfast.train.evaluate import evaluate, object_indices
from mbfast.train.prefix import engine_classes, first_observations
from mbfast.model.modelfile import read_model, write_model
from mbfast.models import shipped_path

PREFIXES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50)
MAX_MODEL_BYTES = 5 << 20
REAL_SETS = {"yse_ps1": (load_yse_ps1, "YSE DR1 spectroscopic subset, Pan-STARRS1 griz photometry (REAL)"),
             "yse_ztf": (load_yse_ztf, "YSE DR1 spectroscopic subset, ZTF g r forced photometry (REAL)")}
# PLAsTiCC classes -> the YSE DR1 broad classes they are scored as on real data
YSE_GROUP = {"SNIa": "Ia", "SNIa-91bg": "Ia", "SNIax": "Ia", "SNII": "II", "SNIbc": "Ibc"}
DESCRIPTIONS = {
    "lsst": "PLAsTiCC training set: SIMULATED LSST light curves (Kessler et al. 2019), ugrizy AB mag",
    "ztf": "PLAsTiCC training set (SIMULATED) g r i resampled to ZTF-like depth and noise "
           "(mbfast.train.datasets.to_ztf_like): peaks brightened into 15.5-19.5 mag, ZTF errors, detections only",
}
LIMITS = {
    "lsst": ["trained on simulations only (PLAsTiCC); real LSST alerts will differ in cadence, noise and class mix",
             "an object needs 3 observations in one band before it gets a probability",
             "PLAsTiCC's 14 classes only: no class for artefacts, asteroids or other transients"],
    "ztf": ["no large labelled real ZTF set exists: trained on simulated LSST curves made ZTF-like (brightened "
            "copies without K-correction or time dilation, LSST cadence kept)",
            "fine-tuned on the real ZTF photometry of about 300 YSE DR1 supernovae (Ia, II, Ibc) mixed into the "
            "ZTF-like set; checked on the YSE objects it never saw (4 broad classes, about 120 objects)",
            "an object needs 3 detections in one band before it gets a probability"],
}


def scores(true: np.ndarray, predicted: np.ndarray, class_names: tuple[str, ...]) -> dict:
    matrix = metrics.confusion_matrix(true, predicted, len(class_names))
    return {"n_objects": int(len(true)), "accuracy": metrics.accuracy(matrix),
            "macro_recall": metrics.macro_recall(matrix), "macro_f1": metrics.macro_f1(matrix),
            "per_class_f1": dict(zip(class_names, map(float, metrics.per_class_f1(matrix)))),
            "per_class_recall": dict(zip(class_names, map(float, metrics.per_class_recall(matrix)))),
            "confusion_matrix": matrix.tolist()}


def trained_on(run_dir: Path, options: dict) -> np.ndarray:
    """obj_ids the run trained or validated on, and those of the run it was fine-tuned from (--init-from)."""
    runs = [run_dir]
    if options.get("init_from") and (Path(options["init_from"]).parent / "split.npz").is_file():
        runs.append(Path(options["init_from"]).parent)
    seen = []
    for run in runs:
        with np.load(run / "split.npz") as split:
            seen += [split["train"], split["val"]]
    return np.unique(np.concatenate(seen))


def real_data_check(model_path: Path, real: LabelledSet, fallback: int, seen: np.ndarray) -> dict:
    """The model's classes grouped into the real set's (YSE_GROUP, else 'other'), scored on the real objects
    that the model never trained or validated on (`seen`: obj_ids)."""
    engine = mbfast.Engine.load(model_path)
    group = np.array([real.class_names.index(YSE_GROUP.get(name, "other")) for name in engine.class_names])
    labelled = (real.labels >= 0) & ~np.isin(real.curves.object_ids, seen)
    curves = real.curves.select(np.flatnonzero(labelled))
    true = real.labels[labelled]
    out = scores(true, group[engine_classes(engine, curves, fallback)], real.class_names)
    out["f1_by_n_obs"] = {n: metrics.macro_f1(metrics.confusion_matrix(
        true, group[engine_classes(engine, first_observations(curves, n), fallback)], len(real.class_names)))
        for n in PREFIXES}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(DESCRIPTIONS))
    parser.add_argument("run_dir")
    parser.add_argument("report_dir")
    parser.add_argument("--real", choices=sorted(REAL_SETS), required=True)
    args = parser.parse_args()
    run_dir, report_dir = Path(args.run_dir), Path(args.report_dir)
    options = json.loads((run_dir / "options.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    torch_report = evaluate(run_dir / "model.mbf", report_dir, options["dataset"], run_dir / "split.npz", "test",
                            data_path=options.get("data"), labels_path=options.get("labels"),
                            survey=options.get("survey"))
    labelled = load_labelled(options["dataset"], options.get("data"), options.get("labels"), options.get("survey"))
    seen = trained_on(run_dir, options)
    with np.load(run_dir / "split.npz") as split:
        # a fine-tuned run's test objects that its starting run trained on are left out
        test = object_indices(labelled.curves.object_ids, np.setdiff1d(split["test"], seen))
        train = object_indices(labelled.curves.object_ids, split["train"])
        sizes = {part: int(len(split[part])) for part in split.files}
    fallback = int(np.bincount(labelled.labels[train]).argmax())  # before any window row: the commonest class
    curves, true = labelled.curves.select(test), labelled.labels[test]
    class_names = tuple(labelled.class_names)

    simulated = {}
    for precision in ("fp32", "bf16", "int8"):
        engine = mbfast.Engine.load(run_dir / "model.mbf", precision=precision)
        simulated[precision] = scores(true, engine_classes(engine, curves, fallback), class_names)
    engine = mbfast.Engine.load(run_dir / "model.mbf")
    simulated["f1_by_n_obs"] = {n: metrics.macro_f1(metrics.confusion_matrix(
        true, engine_classes(engine, first_observations(curves, n), fallback), len(class_names))) for n in PREFIXES}
    loader, real_description = REAL_SETS[args.real]
    real_set = loader()
    real = real_data_check(run_dir / "model.mbf", real_set, fallback, seen)

    fp32 = simulated["fp32"]
    card = {
        "name": args.name, "data": DESCRIPTIONS[args.name], "classes": list(class_names),
        "recipe": {"command": f"mbfast train {run_dir} " + " ".join(f"--{key.replace('_', '-')} {value}"
                                                                    for key, value in options.items()
                                                                    if key in ("dataset", "fold", "seed", "init_from",
                                                                               "lr", "steps_wait", "patience")
                                                                    and value is not None),
                   "options": options, "best_epoch": summary["best_epoch"], "epochs": summary["epochs"],
                   "training_minutes": round(summary["training_minutes"], 1)},
        "split": {"seed": options["seed"], "fold": options["fold"], "n_folds": options["n_folds"], **sizes},
        "metrics_simulated_test": {"macro_recall": round(fp32["macro_recall"], 3),
                                   "macro_f1": round(fp32["macro_f1"], 3), "accuracy": round(fp32["accuracy"], 3),
                                   "macro_f1_bf16": round(simulated["bf16"]["macro_f1"], 3),
                                   "macro_f1_int8": round(simulated["int8"]["macro_f1"], 3)},
        "metrics_real": {"data": real_description, "classes": list(real_set.class_names),
                         "macro_recall": round(real["macro_recall"], 3), "macro_f1": round(real["macro_f1"], 3),
                         "accuracy": round(real["accuracy"], 3), "n_objects": real["n_objects"],
                         "scored_as": "model classes grouped: SNIa/SNIa-91bg/SNIax -> Ia, SNII -> II, "
                                      "SNIbc -> Ibc, every other class -> other"},
        "limits": LIMITS[args.name],
    }
    model = read_model(run_dir / "model.mbf")
    config = replace(model.config, card=card)
    target = shipped_path(args.name)
    write_model(target, config, model.tensors)
    if target.stat().st_size > MAX_MODEL_BYTES:
        raise SystemExit(f"{target} is {target.stat().st_size} bytes, over the {MAX_MODEL_BYTES} allowed")
    with np.load(run_dir / "split.npz") as split:
        test_obj_ids = sorted(int(obj_id) for obj_id in split["test"])  # `mbfast demo` scores these apart
    shipped = {"model_file": target.name, "file_bytes": target.stat().st_size, "card": card,
               "split": {**card["split"], "test_obj_ids": test_obj_ids},
               "test_simulated": simulated, "test_real": real,
               "torch_test": {key: torch_report[key] for key in ("accuracy", "macro_recall", "macro_f1",
                                                                  "regression")}}
    target.with_suffix(".json").write_text(json.dumps(shipped, indent=1) + "\n")
    print(json.dumps({"simulated": card["metrics_simulated_test"], "real": card["metrics_real"],
                      "f1_by_n_obs": simulated["f1_by_n_obs"], "real_f1_by_n_obs": real["f1_by_n_obs"]}, indent=1))


if __name__ == "__main__":
    main()
