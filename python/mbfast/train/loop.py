"""Training loop of the multiband ensemble (paper §3.6-3.7) and batch prediction.

Per batch: every band model takes one AdamW step on its own eq. 5 loss; after `steps_wait` batches the central
model takes `central_steps_per_batch` steps at half the band learning rate on detached band states (no gradient
from the central loss reaches the band models). Beyond the paper, for imbalanced sets and early classification:
class balance (inverse-frequency weights in eqs. 5 and 7, or balanced sampling) and a freshly augmented copy of
the training curves every epoch (mbfast.train.augment). Model selection and early stopping on validation macro F1
(log loss breaks ties) restore the best weights.
Dimension legend: K objects, M valid central steps, C classes, G regression targets.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mbfast.lightcurves.table import LightCurves
from mbfast.model.config import ModelConfig, RegressionTarget
from mbfast.model.preprocessed import ModelInputs
from mbfast.train.augment import Augmentation, augment, balanced_sample, class_weights, shift_redshift
from mbfast.train.batch import Batch, make_batch
from mbfast.train.training_set import (DEFAULT_CACHE, TrainingSet, cap_per_class, fit_targets, load_training_set,
                               preprocess_curves, scale_targets, stratified_split)
from mbfast.train.metrics import confusion_matrix, macro_f1
from mbfast.train.export import export_model
from mbfast.train.multiband import CentralOutput, MultibandModel
from mbfast.train.prior import choose_alpha, log_prior, shift_classifier


CLASS_BALANCE = ("weights", "sampling", "none")
SELECT_ON = ("macro_f1", "loss")


@dataclass(frozen=True)
class TrainOptions:
    dataset: str = "plasticc"         # a name of mbfast.train.datasets.dataset_loaders(), or "files" (below)
    data: str | None = None            # dataset "files": light-curve table (Parquet/CSV) ...
    labels: str | None = None          # ... and its labels CSV (obj_id, label[, regression targets])
    survey: str | None = None          # ... and the survey of its bands (mbfast.lightcurves.surveys)
    targets: tuple[str, ...] | None = None       # regression targets (None: every target the dataset has)
    target_weights: tuple[float, ...] | None = None  # lambda_k of eq. 6 (default 1 each)
    batch_size: int = 256
    lr: float = 5e-3                   # band learning rate; the central model uses lr * central_lr_factor
    central_lr_factor: float = 0.5     # §3.6 "half the learning rate"
    weight_decay: float = 1e-4         # AdamW, as the authors' code (not in the paper)
    decay_rate: float = 0.95           # lr * decay_rate ** (step / decay_steps), continuous (authors' code)
    decay_steps: int = 60
    steps_wait: int = 500              # batches of band-only training before the central model starts (§3.6)
    central_steps_per_batch: int = 2
    band_dropout: float = 0.3          # dropout in the band heads only, training only
    patience: int = 20                 # epochs without validation improvement before stopping (§3.6)
    max_epochs: int = 1000
    max_minutes: float | None = None   # wall-clock budget; stops gracefully with the best weights
    max_per_class: int | None = None   # class cap applied before splitting (the authors' max_l)
    n_folds: int = 7
    fold: int = 0
    seed: int = 0
    device: str = "auto"
    class_balance: str = "weights"     # "weights": inverse class frequency in the losses; "sampling": every
                                       # class drawn equally often (with replacement); "none": the paper's
    augment_truncate: float = 0.5      # mbfast.train.augment.Augmentation, per epoch on the training curves
    augment_obs_dropout: float = 0.1
    augment_band_dropout: float = 0.2
    augment_redraw: bool = True
    augment_redshift: float = 0.0      # P(an object of known redshift is seen from another z); needs the target
                                       # "redshift" (mbfast.train.augment.shift_redshift)
    select_on: str = "macro_f1"        # best epoch by validation "macro_f1" (ties: loss) or "loss"
    init_from: str | None = None       # start from a model file's weights (fine-tuning; same bands, classes, shape)
    transfer_from: str | None = None   # start from what carries over from a model of other bands or classes
                                       # (transfer_weights: band stacks by filter, central stack; not the heads)
    prior_shift: bool = True           # after class balance: fold the validation-chosen prior shift into the
                                       # classifier bias (mbfast.train.prior)

    def __post_init__(self) -> None:
        if self.class_balance not in CLASS_BALANCE:
            raise ValueError(f"class_balance must be one of {CLASS_BALANCE}, got {self.class_balance!r}")
        if self.select_on not in SELECT_ON:
            raise ValueError(f"select_on must be one of {SELECT_ON}, got {self.select_on!r}")
        if self.init_from is not None and self.transfer_from is not None:
            raise ValueError("init_from and transfer_from exclude each other: init_from copies every weight")
        for name in ("augment_truncate", "augment_obs_dropout", "augment_band_dropout", "augment_redshift"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(self.augment_truncate, self.augment_obs_dropout, self.augment_band_dropout,
                            self.augment_redraw, self.augment_redshift)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainOptions:
        for name in ("targets", "target_weights"):
            if raw.get(name) is not None:
                raw[name] = tuple(raw[name])
        return cls(**{item.name: raw[item.name] for item in fields(cls) if item.name in raw})


def augmented_epoch(curves: LightCurves, targets: np.ndarray, scalers: tuple[RegressionTarget, ...],
                    augmentation: Augmentation, rng: np.random.Generator,
                    n_skip: int) -> tuple[ModelInputs, np.ndarray]:
    """One epoch's augmented copy of the training objects (`curves`, their physical `targets` (K, G)): the
    preprocessed inputs and the z-scored targets, whose "redshift" follows an object moved by shift_redshift."""
    if augmentation.redshift > 0:
        column = [scaler.name for scaler in scalers].index("redshift")
        curves, new_z = shift_redshift(curves, targets[:, column], augmentation.redshift, rng)
        targets = targets.copy()
        targets[:, column] = new_z
    return preprocess_curves(augment(curves, augmentation, rng), n_skip), scale_targets(targets, scalers)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ------------------------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------------------------

def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                normaliser: float | torch.Tensor) -> torch.Tensor:
    """Eq. 5: sum_j w_j CE_j per object (w = 0 on the first N_skip steps; times the object's class weight when
    balancing), divided by `normaliser` (the number, or the summed class weights, of the objects counted)."""
    per_step = F.cross_entropy(logits, labels, reduction="none")
    return (per_step * weights).sum() / max(float(normaliser), 1e-12)


def band_losses(model: MultibandModel, batch: Batch, states: list,
                object_weight: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Eq. 5 of every band present in the batch, averaged over the objects that have weighted steps in it
    (weighted by `object_weight` (K,), the objects' class weights, when given)."""
    losses = []
    for b, logits in enumerate(model.band_logits(batch, states)):
        if logits is None or logits.shape[0] < 2:
            continue
        mask = batch.band_mask[b]
        owner = torch.nonzero(mask)[:, 0]
        weights = batch.band_weight[b][mask]
        counted = batch.band_weight[b].sum(dim=1) > 0                       # (K,)
        if object_weight is None:
            normaliser = counted.sum()
        else:
            weights = weights * object_weight[owner]
            normaliser = object_weight[counted].sum()
        losses.append(weighted_ce(logits, batch.labels[owner], weights, normaliser))
    return losses


def central_loss(model: MultibandModel, batch: Batch, states: list, target_weights: torch.Tensor,
                 out: CentralOutput | None = None, object_weight: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 7: eq. 5 on the per-step classifier + eq. 6 masked, lambda-weighted MSE on z-scored targets.

    Returns (total, classification, regression); `out` reuses an existing central_forward of the batch;
    `object_weight` (K,) weighs each object's classification loss (class balance).
    """
    out = model.central_forward(batch, states) if out is None else out
    mask = batch.central_mask
    owner = torch.nonzero(mask)[:, 0]
    weights = batch.central_weight[mask]
    if object_weight is None:
        normaliser = mask.shape[0]
    else:
        weights = weights * object_weight[owner]
        normaliser = object_weight.sum()
    cls = weighted_ce(out.logits, batch.labels[owner], weights, normaliser)
    reg = out.logits.new_zeros(())
    if out.regression.shape[1]:
        known = torch.isfinite(batch.targets)                              # delta_k of eq. 6
        error = torch.where(known, out.regression - torch.nan_to_num(batch.targets), 0.0) ** 2
        per_target = error.sum(dim=0) / known.sum(dim=0).clamp(min=1)
        reg = (per_target * target_weights).sum()
    return cls + reg, cls, reg


# ------------------------------------------------------------------------------------------------------------
# Batches and prediction
# ------------------------------------------------------------------------------------------------------------

def batch_order(objects: np.ndarray, n_rows: np.ndarray, batch_size: int, rng: np.random.Generator
                ) -> list[np.ndarray]:
    """Shuffled batches of similar length (less padding): shuffle, sort chunks of 16 batches by length, cut.

    A last batch of one object is merged into the previous one (training BatchNorm needs >= 2 values).
    """
    shuffled = rng.permutation(objects)
    batches = []
    chunk = 16 * batch_size
    for start in range(0, len(shuffled), chunk):
        part = shuffled[start:start + chunk]
        part = part[np.argsort(n_rows[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class Predictions:
    objects: np.ndarray      # int64 (K,) object indices into the inputs
    step_probs: np.ndarray   # float32 (M, C) class probabilities after every row, rows of `objects` in order
    step_offsets: np.ndarray # int64 (K + 1,) object k owns step_probs[step_offsets[k]:step_offsets[k+1]]
    final_probs: np.ndarray  # float32 (K, C) after the last row
    regression: np.ndarray   # float64 (K, G) physical units, from the last row


@torch.no_grad()
def predict(model: MultibandModel, inputs: ModelInputs, objects: np.ndarray, batch_size: int = 512,
            device: str = "cpu") -> Predictions:
    """Eval-mode predictions (BatchNorm running statistics) for the objects at `objects` (each with >= 1 row)."""
    was_training = model.training
    model.eval()
    objects = np.asarray(objects, dtype=np.int64)
    order = np.argsort(inputs.n_rows[objects], kind="stable")  # similar lengths together, restored below
    step_parts: dict[int, np.ndarray] = {}
    final = np.empty((len(objects), model.config.n_classes), dtype=np.float32)
    regression = np.empty((len(objects), len(model.config.regression_targets)), dtype=np.float64)
    for start in range(0, len(objects), batch_size):
        chosen = order[start:start + batch_size]
        batch = make_batch(inputs, objects[chosen]).to_torch(device)
        out = model.central_forward(batch, model.band_states(batch))
        probs = torch.softmax(out.logits, dim=-1).cpu().numpy()
        ends = np.cumsum(batch.n_rows.cpu().numpy())
        for index, stop, count in zip(chosen, ends, batch.n_rows.cpu().numpy()):
            step_parts[int(index)] = probs[stop - count:stop]
            final[index] = probs[stop - 1]
        regression[chosen] = out.regression.double().cpu().numpy()
    for index, target in enumerate(model.config.regression_targets):
        regression[:, index] = regression[:, index] * target.std + target.mean
    model.train(was_training)
    counts = inputs.n_rows[objects]
    return Predictions(objects, np.concatenate([step_parts[i] for i in range(len(objects))]),
                       np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), final, regression)


@torch.no_grad()
def validation_loss(model: MultibandModel, data: TrainingSet, objects: np.ndarray, targets_z: np.ndarray,
                    target_weights: torch.Tensor, batch_size: int, device: str) -> dict[str, float]:
    """Eval-mode eq. 7 loss (object-weighted mean over batches), last-step accuracy and macro F1."""
    was_training = model.training
    model.eval()
    total, cls_total, reg_total, correct = 0.0, 0.0, 0.0, 0
    predicted = np.empty(len(objects), dtype=np.int64)
    for start in range(0, len(objects), batch_size):
        chosen = objects[start:start + batch_size]
        batch = make_batch(data.inputs, chosen, data.labels, targets_z).to_torch(device)
        out = model.central_forward(batch, model.band_states(batch))
        loss, cls, reg = central_loss(model, batch, [], target_weights, out)
        total += float(loss) * len(chosen)
        cls_total += float(cls) * len(chosen)
        reg_total += float(reg) * len(chosen)
        last = torch.cumsum(batch.n_rows, 0) - 1
        final = out.logits[last].argmax(-1)
        correct += int((final == batch.labels).sum())
        predicted[start:start + len(chosen)] = final.cpu().numpy()
    model.train(was_training)
    n = max(len(objects), 1)
    matrix = confusion_matrix(data.labels[objects], predicted, len(data.class_names))
    return {"val_loss": total / n, "val_cls": cls_total / n, "val_reg": reg_total / n, "val_final_acc": correct / n,
            "val_macro_f1": macro_f1(matrix) if len(objects) else 0.0}


# ------------------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------------------

def decay(rate: float, steps: int):
    return lambda step: rate ** (step / steps)


def train(run_dir: str | Path, config_overrides: dict | None = None, options: TrainOptions = TrainOptions(),
          resume: bool = False, cache_dir: str | Path | None = DEFAULT_CACHE, progress: bool = True,
          data: TrainingSet | None = None) -> Path:
    """Train a model into `run_dir` (config.json, options.json, split.npz, checkpoint.pt, history.json,
    train.log lines on stdout, model.mbf). Returns the path of the exported model file (the best weights).

    `config_overrides` sets ModelConfig fields (band_hidden, n_skip, ...); bands, classes and regression
    targets come from the data. With resume=True the run continues from run_dir/checkpoint.pt with its saved
    options and config, and the max_epochs / max_minutes of `options` (a run stopped by its budget goes on).
    `data` replaces loading options.dataset (tests pass a small TrainingSet).
    """
    from tqdm import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = run_dir / "checkpoint.pt"
    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
        saved_options = json.loads((run_dir / "options.json").read_text())
        # a resumed run keeps its options, except the budget: max_epochs and max_minutes come from the caller
        options = TrainOptions.from_dict({**saved_options, "max_epochs": options.max_epochs,
                                          "max_minutes": options.max_minutes})
        config_overrides = json.loads((run_dir / "overrides.json").read_text())
    config_overrides = dict(config_overrides or {})
    device = resolve_device(options.device)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)

    n_skip = config_overrides.get("n_skip", ModelConfig.__dataclass_fields__["n_skip"].default)
    if data is None:
        data = load_training_set(options.dataset, n_skip, options.targets, cache_dir, data_path=options.data,
                                  labels_path=options.labels, survey=options.survey)
    usable = data.usable.copy()
    if options.max_per_class is not None:
        capped = cap_per_class(np.flatnonzero(usable), data.labels, options.max_per_class, options.seed)
        usable[:] = False
        usable[capped] = True
    train_idx, val_idx, test_idx = stratified_split(data.labels, usable, options.seed, options.n_folds, options.fold)
    scalers = fit_targets(data.target_names, data.targets, train_idx, options.target_weights)
    config = ModelConfig(survey=data.survey, bands=data.bands, class_names=data.class_names,
                         regression_targets=scalers, **config_overrides)
    targets_z = scale_targets(data.targets, scalers)
    target_weights = torch.tensor([t.weight for t in scalers], dtype=torch.float32, device=device)

    model = MultibandModel(config, options.band_dropout).to(device)
    if options.init_from is not None and not resume:
        start_from(model, options.init_from)
    if options.transfer_from is not None and not resume:
        transfer_weights(model, options.transfer_from)
    band_opt = torch.optim.AdamW(model.bands.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    central_opt = torch.optim.AdamW(model.central.parameters(), lr=options.lr * options.central_lr_factor,
                                    weight_decay=options.weight_decay)
    band_sched = torch.optim.lr_scheduler.LambdaLR(band_opt, decay(options.decay_rate, options.decay_steps))
    central_sched = torch.optim.lr_scheduler.LambdaLR(central_opt, decay(options.decay_rate, options.decay_steps))

    augmentation = options.augmentation
    if augmentation.active and data.curves is None:
        raise ValueError("augmentation needs the training light curves (TrainingSet.curves); pass them or turn "
                         "augmentation off (augment_truncate=augment_obs_dropout=augment_band_dropout="
                         "augment_redshift=0, augment_redraw=False)")
    train_curves = None
    if augmentation.active:  # obj_id renumbered 0..K-1 so preprocessing sees them sorted whatever the table order
        train_curves = data.curves.select(train_idx)
        train_curves = replace(train_curves, obj_id=np.repeat(np.arange(train_curves.n_objects, dtype=np.int64),
                                                              np.diff(train_curves.offsets)))
    if augmentation.redshift > 0 and "redshift" not in data.target_names:
        raise ValueError("augment_redshift needs the objects' redshifts as the regression target 'redshift'; "
                         f"the targets here are {list(data.target_names)}")
    balance = None
    if options.class_balance == "weights":
        balance = torch.from_numpy(class_weights(data.labels[train_idx], config.n_classes)).to(device)

    state = {"epoch": 0, "step": 0, "best_score": math.inf, "best_epoch": -1, "bad_epochs": 0, "elapsed_s": 0.0,
             "history": [], "best_state": None, "stopped": None, "best_key": None}
    if resume:
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        band_opt.load_state_dict(saved["band_opt"])
        central_opt.load_state_dict(saved["central_opt"])
        band_sched.load_state_dict(saved["band_sched"])
        central_sched.load_state_dict(saved["central_sched"])
        torch.set_rng_state(saved["torch_rng"])
        rng.bit_generator.state = saved["numpy_rng"]
        state = saved["state"]
        if state["stopped"] is not None and not state["stopped"].startswith("early stopping"):
            state["stopped"] = None  # a budget stop: continue with the new budget
    else:
        (run_dir / "options.json").write_text(json.dumps(asdict(options), indent=1))
        (run_dir / "overrides.json").write_text(json.dumps(config_overrides, indent=1))
        (run_dir / "config.json").write_text(config.to_json())
        np.savez(run_dir / "split.npz", train=data.inputs.object_ids[train_idx], val=data.inputs.object_ids[val_idx],
                 test=data.inputs.object_ids[test_idx])
    print(f"data {options.dataset}: {len(data.labels)} objects, {int((~data.usable).sum())} without any window "
          f"row left out; train {len(train_idx)} val {len(val_idx)} test {len(test_idx)}; device {device}; "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)

    started = time.monotonic() - state["elapsed_s"]
    budget_s = None if options.max_minutes is None else 60.0 * options.max_minutes
    model.train()
    while state["stopped"] is None and state["epoch"] < options.max_epochs:
        if augmentation.active:  # a fresh augmented copy of the training objects, indexed 0..len(train_idx)-1
            epoch_inputs, epoch_targets = augmented_epoch(train_curves, data.targets[train_idx], scalers,
                                                          augmentation, rng, config.n_skip)
            epoch_labels = data.labels[train_idx]
            epoch_objects = np.flatnonzero(epoch_inputs.n_rows > 0)
        else:
            epoch_inputs, epoch_labels, epoch_targets, epoch_objects = data.inputs, data.labels, targets_z, train_idx
        if options.class_balance == "sampling":
            epoch_objects = balanced_sample(epoch_objects, epoch_labels, rng)
        batches = batch_order(epoch_objects, epoch_inputs.n_rows, options.batch_size, rng)
        sums = {"band": 0.0, "central": 0.0, "cls": 0.0, "reg": 0.0, "n_central": 0}
        bar = tqdm(batches, desc=f"epoch {state['epoch']}", disable=not progress, mininterval=30, leave=False)
        for objects in bar:
            if budget_s is not None and time.monotonic() - started > budget_s:
                state["stopped"] = f"time budget of {options.max_minutes} min reached"
                break
            batch = make_batch(epoch_inputs, objects, epoch_labels, epoch_targets).to_torch(device)
            object_weight = None if balance is None else balance[batch.labels]
            # band models: one step each on their own eq. 5 losses (a sum: each band's gradient is its own loss's)
            states = model.band_states(batch)
            losses = band_losses(model, batch, states, object_weight)
            band_opt.zero_grad(set_to_none=True)
            if losses:
                band_loss = torch.stack(losses).sum()
                band_loss.backward()
                band_opt.step()
                sums["band"] += band_loss.item()
            band_sched.step()
            # central model: detached states of the updated band models
            if state["step"] >= options.steps_wait:
                with torch.no_grad():
                    states = model.band_states(batch)
                for _ in range(options.central_steps_per_batch):
                    loss, cls, reg = central_loss(model, batch, states, target_weights, object_weight=object_weight)
                    central_opt.zero_grad(set_to_none=True)
                    loss.backward()
                    central_opt.step()
                    central_sched.step()
                sums["central"] += loss.item()
                sums["cls"] += cls.item()
                sums["reg"] += reg.item()
                sums["n_central"] += 1
            state["step"] += 1
        bar.close()
        n_batches = max(len(batches), 1)
        record = {"epoch": state["epoch"], "step": state["step"], "band_loss": sums["band"] / n_batches,
                  "central_loss": sums["central"] / max(sums["n_central"], 1),
                  "lr_band": band_opt.param_groups[0]["lr"], "elapsed_min": (time.monotonic() - started) / 60}
        record.update(validation_loss(model, data, val_idx, targets_z, target_weights, 512, device))
        central_started = state["step"] > options.steps_wait
        # larger is better: (macro F1, -loss) compared as tuples, so the loss breaks ties of F1
        key = [-record["val_loss"]] if options.select_on == "loss" else [record["val_macro_f1"], -record["val_loss"]]
        if central_started and (state.get("best_key") is None or key > state["best_key"]):
            state.update(best_score=record["val_loss"], best_key=key, best_epoch=state["epoch"], bad_epochs=0,
                         best_state={k: v.detach().clone() for k, v in model.state_dict().items()})
        elif central_started:
            state["bad_epochs"] += 1
            if state["bad_epochs"] >= options.patience:
                state["stopped"] = f"early stopping: no improvement for {options.patience} epochs"
        record["best_epoch"] = state["best_epoch"]
        state["history"].append(record)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()), flush=True)
        state["epoch"] += 1
        state["elapsed_s"] = time.monotonic() - started
        save_checkpoint(checkpoint_path, model, band_opt, central_opt, band_sched, central_sched, rng, state)
        (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
    if state["stopped"] is None:
        state["stopped"] = f"max_epochs {options.max_epochs} reached"
    state["elapsed_s"] = time.monotonic() - started
    # the checkpoint keeps the last weights (a resumed run continues from them); the export gets the best
    save_checkpoint(checkpoint_path, model, band_opt, central_opt, band_sched, central_sched, rng, state)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    alpha = None
    if options.prior_shift and options.class_balance != "none" and len(val_idx):
        alpha = apply_prior_shift(model, data, train_idx, val_idx, device)
    model_path = run_dir / "model.mbf"
    export_model(model.cpu(), model_path, config)
    (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
    summary = {"stopped": state["stopped"], "best_epoch": state["best_epoch"], "epochs": state["epoch"],
               "steps": state["step"], "training_minutes": state["elapsed_s"] / 60, "device": device,
               "best_val_loss": state["best_score"], "select_on": options.select_on, "prior_shift": alpha,
               "best_val_macro_f1": state["history"][state["best_epoch"]]["val_macro_f1"]
               if state["best_epoch"] >= 0 else None}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"stopped: {state['stopped']}; best epoch {state['best_epoch']}; model written to {model_path}", flush=True)
    return model_path


def apply_prior_shift(model: MultibandModel, data: TrainingSet, train_idx: np.ndarray, val_idx: np.ndarray,
                      device: str) -> float:
    """Choose alpha on the validation objects and fold alpha * log(training frequencies) into the classifier."""
    prior = log_prior(data.labels[train_idx], model.config.n_classes)
    final = predict(model, data.inputs, val_idx, device=device).final_probs
    alpha, scores = choose_alpha(final, data.labels[val_idx], prior)
    shift_classifier(model, alpha, prior)
    print(f"prior shift: alpha {alpha} (validation macro F1 {scores[alpha]:.4f}, {scores[0.0]:.4f} without)",
          flush=True)
    return alpha


def start_from(model: MultibandModel, model_file: str) -> None:
    """Copy a model file's weights into `model` (fine-tuning); its shape, bands and classes must be the same."""
    from mbfast.train.export import load_torch_model
    from mbfast.models import resolve

    source = load_torch_model(resolve(model_file))
    ours, theirs = model.config, source.config
    differs = [name for name in ("bands", "class_names", "band_hidden", "band_layers", "central_hidden",
                                 "central_layers", "n_skip") if getattr(ours, name) != getattr(theirs, name)]
    if [t.name for t in ours.regression_targets] != [t.name for t in theirs.regression_targets]:
        differs.append("regression_targets")
    if differs:
        raise ValueError(f"--init-from {model_file}: its {', '.join(differs)} differ from this run's "
                         f"({', '.join(f'{name}={getattr(theirs, name)!r}' for name in differs[:2])} there)")
    model.load_state_dict(source.state_dict())


def source_band(band: str, source_bands: tuple[str, ...]) -> int | None:
    """The source model's band for `band`: the same name, else the same filter letter ("ps1_g", "ztf_g" <- "g")."""
    if band in source_bands:
        return source_bands.index(band)
    letter = band.rsplit("_", 1)[-1]
    return next((i for i, name in enumerate(source_bands) if name.rsplit("_", 1)[-1] == letter), None)


PER_BAND_KEY = re.compile(r"^(bands|central\.translators)\.(\d+)\.")
TASK_KEYS = ("central.classifier.", "central.regressors.")  # and each band's head: classes and targets of a task


def transfer_weights(model: MultibandModel, model_file: str) -> list[str]:
    """Copy into `model` what a model file of other bands or classes has learnt about light curves: each band's LSTM
    stack, translation network and layer-mix weights from the source band of the same filter (source_band), and the
    central LSTM stack. The classifier, regressors and band heads start fresh (another task's classes and targets);
    a band with no source band, or a tensor of another shape (another hidden size), keeps its initial weights.
    Returns the names of the copied tensors."""
    from mbfast.train.export import load_torch_model
    from mbfast.models import resolve

    source = load_torch_model(resolve(model_file))
    theirs = source.state_dict()
    sources = [source_band(band, source.config.bands) for band in model.config.bands]
    state = model.state_dict()
    copied = []
    for key, value in state.items():
        if key.startswith(TASK_KEYS) or ".head." in key:
            continue
        if key == "central.band_mix":   # (B, band_layers): one row per band
            rows = [(band, index) for band, index in enumerate(sources)
                    if index is not None and theirs[key].shape[1] == value.shape[1]]
            for band, index in rows:
                value[band] = theirs[key][index]
            if rows:
                copied.append(key)
            continue
        match = PER_BAND_KEY.match(key)
        if match:
            index = sources[int(match.group(2))]
            if index is None:
                continue
            key_there = f"{match.group(1)}.{index}.{key[match.end():]}"
        else:
            key_there = key
        if key_there in theirs and theirs[key_there].shape == value.shape:
            value.copy_(theirs[key_there])
            copied.append(key)
    if not copied:
        raise ValueError(f"--transfer-from {model_file}: no weight carries over (bands {source.config.bands}, "
                         f"band_hidden {source.config.band_hidden}, central_hidden {source.config.central_hidden})")
    model.load_state_dict(state)
    return copied


def save_checkpoint(path: Path, model, band_opt, central_opt, band_sched, central_sched, rng, state) -> None:
    temp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "band_opt": band_opt.state_dict(),
                "central_opt": central_opt.state_dict(), "band_sched": band_sched.state_dict(),
                "central_sched": central_sched.state_dict(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state, "state": state}, temp)
    temp.replace(path)
