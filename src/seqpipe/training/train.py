"""Train one model on one task with one seed: the training stage's module.

The training step is in `run_epoch`, top to bottom: forward, loss (+ the model's aux losses and
the regularizers), backward, clip, step; `fit` runs the epochs: schedule, validate, checkpoint,
early stop. Loss and metric sums stay on the device and are read once per epoch.

Checkpoints are plain dicts (`checkpoint.py`, loadable with `torch.load(..., weights_only=True)`)
written atomically: best.pt, last.pt and model.pt (the best weights with the model's config and
dimensions). A run killed at any point continues from its last saved state when started again
with the same job, data and code, and ends bit for bit where an uninterrupted run ends (CPU).
Per run: `scalars.csv` (one row per epoch and split), `events.jsonl` (on_start, on_resume,
on_epoch_end, on_train_end, on_exception, ...), `figures/loss.png` and `run.json` (MLflow run id,
best epoch). Files first, MLflow second: a tracking outage never loses a trained model.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from seqpipe import __version__
from seqpipe.data.hdf5 import read_attrs
from seqpipe.data.reader import TrainingData, epoch_order, training_data
from seqpipe.io import atomic_path, config_hash, read_json, write_json, write_text
from seqpipe.models import Normalised, build_model
from seqpipe.tracking.invocation import with_invocation
from seqpipe.tracking.run import Tracker, git_commit, live_tracking
from seqpipe.training import backends, checkpoint, gpus, losses
from seqpipe.training.figures import plot_history
from seqpipe.training.losses import check_losses, total_loss
from seqpipe.training.precision import Precision, choose_precision
from seqpipe.training.schedule import make_optimizer, make_scheduler, step_scheduler

log = logging.getLogger("seqpipe.train")
SCALAR_FIELDS = ["epoch", "split", "loss", "metric", "lr", "epoch_time_s", "samples_per_s", "max_memory_mib"]


def training_settings(training: dict) -> dict:
    """`training` validated, with every default of the schema's `training` section filled in."""
    from seqpipe.config import section_with_defaults

    return section_with_defaults("training", training)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (every device); returns the generator that shuffles the training split.

    The kernel switches that make a GPU run deterministic are `backends.configure`'s job.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_device(preference: str) -> torch.device:
    """auto: cuda, then mps, then cpu; `cuda` is the first GPU this process sees (CUDA_VISIBLE_DEVICES), `cuda:N` the N-th.

    A GPU that is asked for but not there is an error, not a silent CPU run.
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        warn_unused_gpus()
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if not torch.cuda.is_available():
            raise ValueError(f"training.device: {preference}, but torch sees no GPU (CUDA_VISIBLE_DEVICES={visible!r}, torch "
                             f"{torch.__version__}); run on a GPU node, or set training.device to auto or cpu")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"training.device: {preference}, but this process sees {torch.cuda.device_count()} GPU(s) "
                             f"(CUDA_VISIBLE_DEVICES={visible!r}); use cuda:0..cuda:{torch.cuda.device_count() - 1} or plain cuda")
        device = torch.device("cuda", index)
    return device


def warn_unused_gpus() -> None:
    """`device: auto` training on the CPU of a machine with GPUs (unless CUDA_VISIBLE_DEVICES hides them): say so."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return  # GPUs hidden on purpose
    found = gpus.visible_gpus()
    if found:
        log.warning("training.device: auto, and this machine has %d GPU(s), but torch sees none (torch %s, built for CUDA "
                    "%s): training on the CPU. A CPU-only torch, or a driver older than torch's CUDA, does this: install a "
                    "torch built for this driver's CUDA (nvidia-smi shows its version), or set training.device: cuda to "
                    "make this an error, or cpu to train on the CPU without this warning", len(found), torch.__version__,
                    torch.version.cuda or "none (a CPU-only build)")


def make_model(job: dict, data: TrainingData) -> Normalised:
    """Build the configured model with train-split normalisation statistics in its buffers."""
    model = build_model(job["model"], **data.dims)
    model.x_mean, model.x_std = data.x_stats
    if data.y_stats is not None:
        model.y_mean, model.y_std = data.y_stats
    return model


NORMALISATION = ("x_mean", "x_std", "y_mean", "y_std")


def load_pretrained(model: Normalised, path: str | Path) -> dict:
    """Copy the tensors of checkpoint `path` whose names and shapes match `model` (not the normalisation buffers).

    `path` is a best.pt/last.pt/model.pt of seqpipe (its `model` entry) or a bare state dict.
    Returns what was loaded and what was skipped, for the log and events.jsonl.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training.init_from: {path} does not exist; expected a best.pt or model.pt of an earlier run")
    state = torch.load(path, map_location="cpu", weights_only=True)
    source = state.get("model", state) if isinstance(state, dict) else state
    own = model.state_dict()
    loaded = {k: v for k, v in source.items() if k in own and k not in NORMALISATION and tuple(v.shape) == tuple(own[k].shape)}
    if not loaded:
        raise ValueError(f"training.init_from: no tensor of {path} matches this model by name and shape "
                         f"(it has {len(source)}, e.g. {sorted(source)[:3]}); train the same architecture, or check the path")
    model.load_state_dict(loaded, strict=False)
    skipped = sorted(set(source) - set(loaded) - set(NORMALISATION))
    report = {"init_from": str(path), "loaded": sorted(loaded), "skipped": skipped, "not_in_checkpoint": sorted(set(own) - set(source) - set(NORMALISATION))}
    log.info("init_from %s: loaded %d tensors, skipped %d (name or shape differs)%s", path, len(loaded), len(skipped),
             f": {', '.join(skipped[:8])}" if skipped else "")
    return report


def freeze(model: Normalised, prefixes: list[str]) -> list[str]:
    """Stop training the parameters whose names start with a prefix (with or without the wrapper's `net.`)."""
    if not prefixes:
        return []
    names = []
    for name, param in model.named_parameters():
        if any(name.startswith(p) or name.startswith(f"net.{p}") for p in prefixes):
            param.requires_grad_(False)
            names.append(name)
    if not names:
        known = sorted({n.split(".")[1] for n, _ in model.named_parameters() if n.startswith("net.")})
        raise ValueError(f"training.freeze: no parameter name starts with {prefixes}; this model's modules are {known}")
    log.info("froze %d parameter tensors (%s)", len(names), ", ".join(prefixes))
    return names


def regularizers_fn(specs: list[dict]):
    """`losses.total_regularization`, failing now (not mid-training) when a configured regularizer is missing."""
    if not specs:
        return None
    fn = getattr(losses, "total_regularization", None)
    if fn is None:
        raise KeyError("training.regularizers: this seqpipe has no seqpipe.training.losses.total_regularization; "
                       "remove training.regularizers or update seqpipe")
    check = getattr(losses, "check_regularizers", None)
    if check is not None:
        check(specs)
    return fn


def model_terms(model: Normalised) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | float]]:
    """The network's extra losses of the last forward (`net.aux_losses`, already weighted; consumed, so
    none is counted twice) as `aux_<name>`, and what it reports (`net.aux_metrics`: 0-dim tensors, left
    on the device, or Python numbers) as `model_<name>`."""
    net = model.net
    terms, info = getattr(net, "aux_losses", None), getattr(net, "aux_metrics", None)
    if terms:
        net.aux_losses = {}
        terms = {f"aux_{name}": value for name, value in terms.items()}
    return terms or {}, {f"model_{name}": value for name, value in info.items()} if info else {}


def add_to(sums: dict, name: str, value, weight: int) -> None:
    """sums[name] += value * weight, a device tensor for tensors (no host sync), a float otherwise."""
    if isinstance(value, torch.Tensor):
        value = value.detach().float() * weight
    else:
        value = float(value) * weight
    sums[name] = sums[name] + value if name in sums else value


def unless(overflow: torch.Tensor | None, value):
    """`value`, or 0 where `overflow` (a step whose fp16 loss overflowed; None: no check). Python numbers pass."""
    if overflow is None or not isinstance(value, torch.Tensor):
        return value
    return torch.where(overflow, torch.zeros((), device=value.device), value.detach().float())


def batch_metric(classify: bool, out: torch.Tensor, target: torch.Tensor, model: Normalised) -> torch.Tensor:
    """Sum over the batch of the monitoring metric (a device tensor): accuracy, or per-sample mean squared error."""
    if classify:
        correct = out.argmax(-1) == target
        return correct.sum() if correct.ndim == 1 else correct.reshape(len(correct), -1).float().mean(1).sum()
    squared = (model.denormalise(out.float()) - target) ** 2
    return squared.reshape(len(squared), -1).mean(1).sum()


def optimizer_step(optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor, params: list, clip: float | None) -> torch.Tensor | None:
    """Backward, clip and step through `scaler`; with an enabled scaler a 0-dim device tensor, True where it skipped the step.

    The scaler skips a step exactly when it finds an inf or nan in the scaled gradients, and then
    lowers its scale (by `backoff_factor` < 1); growing it or keeping it means the step ran. So a lower
    scale after `update()` is the scaler's own found-inf, read on the device without a sync (`scale(one)`
    is the public way to get the scale as a tensor). A disabled scaler: None.
    """
    enabled = scaler.is_enabled()
    one = torch.ones((), device=loss.device) if enabled else None
    before = scaler.scale(one) if enabled else None
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, clip)
    scaler.step(optimizer)  # fused optimizers skip an overflowed step on the device, without a sync
    scaler.update()
    return scaler.scale(one) < before if enabled else None


def run_epoch(model: Normalised, source, job: dict, device: torch.device, optimizer=None, scaler=None, generator=None,
              precision: Precision | None = None) -> dict:
    """One pass over a split; trains when an optimizer is given.

    Returns the mean loss, the metric (accuracy, or RMSE in the targets' units), the means of the
    extra terms (`aux_<name>` and `reg` losses added to the loss; `loss_<name>` parts of the task loss,
    `model_<name>` and `reg_<name>` values, logged only) and the sample count. Nothing is read back
    from the device until the epoch ends (one sync per epoch). With an enabled (fp16) `scaler`, a step
    whose loss overflowed is skipped by the scaler and counted (`skipped_steps`) instead of ending the run.
    """
    task, training = job["task"], job["training"]
    train, classify = optimizer is not None, task["type"] == "classification"
    precision = precision or choose_precision(training["amp"], device)
    scaling = train and scaler is not None and scaler.is_enabled()
    noise_std, clip = (training["noise_std"], training["grad_clip"]) if train else (0.0, None)
    regularize = regularizers_fn(training["regularizers"]) if train else None
    input_grad = regularize is not None and getattr(losses, "needs_input_grad", lambda specs: False)(training["regularizers"])
    # cuDNN's RNN kernels have no double backward: a gradient penalty runs the network on native kernels
    kernels = backends.cudnn_off if input_grad else contextlib.nullcontext
    params = [p for p in model.parameters() if p.requires_grad]
    block = training["shuffle_block"] or source.default_block(training["batch_size"])
    order = epoch_order(len(source), block, generator) if train else None
    model.train(train)
    zero = torch.zeros((), device=device)
    loss_sum, metric_sum, term_sums, info_sums, host_sums = zero.clone(), zero.clone(), {}, {}, {}
    skipped_steps, skipped_samples = zero.clone(), zero.clone()
    with torch.set_grad_enabled(train), backends.attention_kernels(training["deterministic"], device):
        for batch in source.batches(training["batch_size"], order):
            xb, yb = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            if train and len(batch) > 2 and batch[2] is not None:
                model.set_domains(batch[2].to(device, non_blocking=True))  # tcn_vae's domain adversary; others ignore it
            if noise_std:
                xb = xb + noise_std * model.x_std * torch.randn_like(xb)  # N(0, noise_std) on the normalised inputs
            if input_grad:
                xb.requires_grad_(True)
            target = yb if classify else model.normalise_target(yb)
            with kernels():
                with precision.autocast():
                    out = model(xb)
                    loss, terms = total_loss(task["losses"], out, target)
                    parts = {f"loss_{name}": value for name, value in terms.items()} if len(terms) > 1 else {}
                    terms, info = model_terms(model)
                if regularize is not None:  # float32, outside autocast; input gradients scaled like the loss under fp16
                    grad_scale = scaler.scale(torch.ones((), device=device)) if scaling else None
                    terms["reg"], reg_parts = regularize(training["regularizers"], model, xb, out, grad_scale=grad_scale)
                    info.update({f"reg_{name}": value for name, value in reg_parts.items()})
            if terms:
                loss = loss + sum(terms.values())
            skipped = optimizer_step(optimizer, scaler, loss, params, clip) if train else None
            b = len(xb)
            loss, metric = loss.detach().float(), batch_metric(classify, out.detach(), yb, model)
            overflow = None
            if scaling:  # a step the scaler skipped (its gradients overflowed in fp16): left out of the means
                overflow = skipped | ~torch.isfinite(loss)
                skipped_steps.add_(overflow.float())
                skipped_samples.add_(overflow.float() * b)
            loss_sum.add_(unless(overflow, loss), alpha=b)
            metric_sum.add_(unless(overflow, metric))
            for name, value in (terms | parts if parts else terms).items():
                add_to(term_sums, name, unless(overflow, value), b)
            for name, value in info.items():
                add_to(info_sums if isinstance(value, torch.Tensor) else host_sums, name, unless(overflow, value), b)
    n = len(source)
    totals = torch.stack([loss_sum, metric_sum, skipped_steps, skipped_samples, *term_sums.values(), *info_sums.values()]).tolist()
    # ^ the epoch's one device sync
    skipped, kept = int(totals[2]), n - int(totals[3])
    if not math.isfinite(totals[0]) or kept <= 0:
        what = totals[0] if kept > 0 else "inf or nan, or its fp16 gradients overflowed, in every step"
        raise FloatingPointError(f"loss became {what} during an epoch on split "
                                 f"{'train' if train else 'val'}; lower training.optimizer.lr or set training.grad_clip"
                                 f"{'' if train else ', or set training.amp: bf16 or off (the forward pass overflows in fp16)'}")
    metric = totals[1] / kept if classify else math.sqrt(totals[1] / kept)  # RMSE in the targets' units
    values = totals[4:]
    terms = {**dict(zip(term_sums, values)), **dict(zip(info_sums, values[len(term_sums):]))}
    if skipped:
        log.warning("%d training steps overflowed in fp16 and were skipped by the gradient scaler", skipped)
    out = {"loss": totals[0] / kept, "metric": metric, "terms": {**{k: v / kept for k, v in terms.items()}, **{k: v / n for k, v in host_sums.items()}},
           "n": n}
    if scaling:
        out["terms"]["skipped_steps"] = float(skipped)
    return out


class Facts:
    """scalars.csv and events.jsonl of a run, appended as training goes (and restored on resume)."""

    def __init__(self, out_dir: Path, history: dict | None = None):
        self.scalars, self.events = out_dir / "scalars.csv", out_dir / "events.jsonl"
        history = history or {}
        self.rows: list[dict] = list(history.get("rows", []))
        self.lines: list[str] = list(history.get("events", []))
        self.metrics: list[list] = list(history.get("metrics", []))  # [epoch, {name: value}] as logged to MLflow
        if history:
            self._write_rows()

    def history(self) -> dict:
        return {"rows": list(self.rows), "events": list(self.lines), "metrics": list(self.metrics)}

    def event(self, name: str, **fields) -> None:
        self.lines.append(json.dumps({"event": name, "time": time.time(), **fields}, sort_keys=True))
        write_text(self.events, "\n".join(self.lines) + "\n")

    @staticmethod
    def append_event(out_dir: Path, name: str, **fields) -> None:
        """Add one event to an existing events.jsonl (e.g. on_exception, after the facts object is gone)."""
        facts = Facts(out_dir)
        facts.lines = facts.events.read_text(encoding="utf-8").splitlines() if facts.events.exists() else []
        facts.event(name, **fields)

    def epoch(self, rows: list[dict], epoch: int, values: dict) -> None:
        self.rows += rows
        self.metrics.append([epoch, values])
        self._write_rows()

    def _write_rows(self) -> None:
        extra = sorted({k for row in self.rows for k in row} - set(SCALAR_FIELDS))
        with atomic_path(self.scalars) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=SCALAR_FIELDS + extra, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


def set_progress(model: Normalised, progress: float) -> None:
    """Tell a model that wants it how far training is (0 at the first epoch): `net.set_progress(p)`."""
    fn = getattr(model.net, "set_progress", None)
    if callable(fn):
        fn(progress)


def check_kl_collapse(kl: dict, terms: dict, settings: dict, epoch: int, facts: Facts) -> None:
    """Count epochs whose KL (unweighted `model_kl` when the model reports it, else the `aux_kl` loss) is below
    the threshold; warn once, in the log and events.jsonl, when they reach `kl_collapse.epochs` in a row."""
    value = terms.get("model_kl", terms.get("aux_kl"))
    if value is None:
        return
    kl["low_epochs"] = kl["low_epochs"] + 1 if value < settings["threshold"] else 0
    if kl["low_epochs"] >= settings["epochs"] and not kl["warned"]:
        kl["warned"] = True
        log.warning("KL collapse: the KL stayed below %g for %d epochs (now %.3g): the latent carries little information; "
                    "lower the KL weight (beta) or anneal it (kl_anneal)", settings["threshold"], kl["low_epochs"], value)
        facts.event("kl_collapse", epoch=epoch, kl=value, threshold=settings["threshold"], epochs=kl["low_epochs"])


def write_model_file(out_dir: Path, job: dict, data: TrainingData, provenance: dict | None = None) -> None:
    """model.pt: the best weights with what rebuilds the model (its config and dimensions), weights-only loadable,
    and the task file's provenance (its feature settings: what `seqpipe predict` runs new files through)."""
    best = checkpoint.load(out_dir / "best.pt")
    checkpoint.save(out_dir / "model.pt", {"model": best["model"], "model_config": job["model"], "dims": data.dims, "names": data.names,
                                           "task": {k: job["task"][k] for k in ("name", "type", "mapping")}, "epoch": best["epoch"],
                                           "seqpipe_version": __version__, "provenance": provenance or {}})


def gpu_name(device: torch.device) -> str | None:
    """The GPU's name, for events.jsonl (None off CUDA)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


class FirstBatch:
    """The first batch of a split, as a one-batch split (for the determinism probe)."""

    def __init__(self, source, batch_size: int):
        self.source, self.size = source, min(batch_size, len(source))

    def __len__(self) -> int:
        return self.size

    def default_block(self, batch_size: int) -> int:
        return 1

    def batches(self, batch_size: int, order=None):
        yield next(iter(self.source.batches(self.size, None)))


def check_deterministic(model: Normalised, source, job: dict, device: torch.device, precision: Precision) -> None:
    """Before training: one training step (with the configured optimizer) and one validation step on a copy of the
    model, in warn-only mode;
    raise naming every kernel that has no deterministic implementation (none: the run is deterministic)."""
    import copy

    def step() -> None:
        probe = copy.deepcopy(model)
        params = [p for p in probe.parameters() if p.requires_grad]  # the optimizer training builds: its kernels count too
        optimizer = make_optimizer(job["training"]["optimizer"], params, fused=device.type == "cuda")
        batch = FirstBatch(source, job["training"]["batch_size"])
        run_epoch(probe, batch, job, device, optimizer, precision.make_scaler(), None, precision)
        run_epoch(probe, batch, job, device, precision=precision)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        broken = backends.nondeterministic_ops(step)
    if broken:
        raise ValueError(f"training.deterministic is true, but model {job['model']['name']!r} ({job['model']['arch']}) runs kernels "
                         f"without a deterministic implementation on {device}: {', '.join(broken)}. Set training.deterministic: "
                         "false for this model (results then vary slightly from run to run), or choose settings that avoid these kernels")


def fit(job: dict, data: TrainingData, out_dir: Path, tracker: Tracker, device: torch.device, generator: torch.Generator,
        state_dir: Path | None = None, saved: dict | None = None, key: dict | None = None, provenance: dict | None = None) -> dict:
    """Train with early stopping from scratch, or from `saved` (a last.pt state); write the checkpoints; return a summary.

    `state_dir` holds the resume state (last.pt and a copy of best.pt) when it is not `out_dir`.
    """
    training, task = job["training"], job["task"]
    state_dir = state_dir or out_dir
    model = make_model(job, data).to(device)
    pretrained = load_pretrained(model, training["init_from"]) if training["init_from"] and saved is None else None
    frozen = freeze(model, training["freeze"])
    # fused (CUDA): one kernel per step, and fp16 overflow checks stay on the device (no per-step sync)
    optimizer = make_optimizer(training["optimizer"], [p for p in model.parameters() if p.requires_grad], fused=device.type == "cuda")
    stop = training["early_stopping"]
    scheduler = make_scheduler(training["scheduler"], optimizer, stop["mode"])
    precision = choose_precision(training["amp"], device)
    scaler = precision.make_scaler()
    if training["deterministic"] and device.type == "cuda":
        check_deterministic(model, data.splits["train"], job, device, precision)
    sign = 1.0 if stop["mode"] == "min" else -1.0
    best, stale, kl = {"score": math.inf, "epoch": -1}, 0, {"low_epochs": 0, "warned": False}
    start = 0
    if saved is None:
        facts = Facts(out_dir)
        facts.event("on_start", job=job, device=str(device), n_train=len(data.splits["train"]), streaming=data.streaming,
                    precision=precision.describe(), gpu=gpu_name(device),
                    params=sum(p.numel() for p in model.parameters()), trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
        if pretrained:
            facts.event("on_init_from", **pretrained, frozen=frozen)
    else:  # resume: one branch puts every piece of state back
        model.load_state_dict(saved["model"])
        checkpoint.restore_optimizer(optimizer, saved["optimizer"])  # this device's fused flag, not the saver's
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        checkpoint.restore_scaler(scaler, saved["scaler"])
        best, stale, kl = saved["early_stopping"]["best"], saved["early_stopping"]["stale"], saved["kl_collapse"]
        checkpoint.set_rng_state(saved["rng"], generator, device)
        start = saved["epoch"] + 1
        facts = Facts(out_dir, saved["history"])
        if state_dir != out_dir and (state_dir / "best.pt").exists():
            shutil.copyfile(state_dir / "best.pt", out_dir / "best.pt")
        facts.event("on_resume", epoch=start, state=str(state_dir / "last.pt"))
        log.info("resuming at epoch %d from %s", start, state_dir / "last.pt")
        if tracker.active and saved.get("mlflow_run_id") != tracker.run_id:
            for epoch, values in facts.metrics:  # a new MLflow run: log the epochs trained before
                tracker.metrics(values, step=epoch)
    key = key or {"config_hash": config_hash(job)}
    common = {"job": job, "dims": data.dims, "names": data.names, "seqpipe_version": __version__, "resume_key": key,
              "config_hash": key["config_hash"], "mlflow_run_id": tracker.run_id, "tracking_uri": tracker.tracking.get("tracking_uri")}
    epochs = training["epochs"]
    saved_best_epoch, state = best["epoch"], saved
    epoch = start - 1
    first = start if stale < stop["patience"] else epochs  # a state saved at the epoch that stopped early is finished
    bar = tqdm(range(first, epochs), initial=first, total=epochs, desc="epochs", unit="epoch", file=sys.stderr,
               disable=None if training["progress"] else True, dynamic_ncols=True)  # None: only on a terminal
    began = time.perf_counter()
    with logging_redirect_tqdm():
        for epoch in bar:
            set_progress(model, epoch / epochs)
            lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            train_stats = run_epoch(model, data.splits["train"], job, device, optimizer, scaler, generator, precision)
            elapsed = time.perf_counter() - t0
            val_stats = run_epoch(model, data.splits["val"], job, device, precision=precision)
            values = {"train_loss": train_stats["loss"], "val_loss": val_stats["loss"], "train_metric": train_stats["metric"],
                      "val_metric": val_stats["metric"]}
            values.update({f"{split}_{k}": v for split, s in (("train", train_stats), ("val", val_stats)) for k, v in s["terms"].items()})
            step_scheduler(scheduler, values[stop["monitor"]])
            score = sign * values[stop["monitor"]]
            improved = score < best["score"] - stop["min_delta"]
            if improved:
                best, stale = {"score": score, "epoch": epoch, **values}, 0
            else:
                stale += 1
            throughput = train_stats["n"] / elapsed
            memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
            rows = [
                {"epoch": epoch, "split": split, "loss": f"{s['loss']:.6g}", "metric": f"{s['metric']:.6g}", "lr": lr,
                 "epoch_time_s": f"{elapsed:.4f}", "samples_per_s": f"{throughput:.1f}", "max_memory_mib": f"{memory:.1f}",
                 **{name: f"{v:.6g}" for name, v in s["terms"].items()}}
                for split, s in (("train", train_stats), ("val", val_stats))
            ]
            logged = {**values, "lr": lr, "epoch_time_s": elapsed, "samples_per_s": throughput}
            facts.epoch(rows, epoch, logged)
            tracker.metrics(logged, step=epoch)
            check_kl_collapse(kl, train_stats["terms"], training["kl_collapse"], epoch, facts)
            facts.event("on_epoch_end", epoch=epoch, improved=improved, **values)
            state = {**common, "epoch": epoch, "values": values, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None, "scaler": scaler.state_dict(),
                     "early_stopping": {"best": best, "stale": stale}, "kl_collapse": dict(kl),
                     "rng": checkpoint.rng_state(generator, device), "history": facts.history(), "complete": False}
            if improved:
                checkpoint.save(out_dir / "best.pt", state)
            stopping = stale >= stop["patience"]
            if (epoch + 1 - start) % training["checkpoint_every"] == 0 or stopping or epoch == epochs - 1:
                if state_dir != out_dir and best["epoch"] != saved_best_epoch:  # the best so far, beside the state
                    with atomic_path(state_dir / "best.pt") as tmp:
                        shutil.copyfile(out_dir / "best.pt", tmp)
                    saved_best_epoch = best["epoch"]
                checkpoint.save(state_dir / "last.pt", state)
            bar.set_postfix(train=f"{values['train_loss']:.4f}", val=f"{values['val_loss']:.4f}", samples_s=f"{throughput:.0f}")
            eta = (time.perf_counter() - began) / (epoch + 1 - first) * (epochs - epoch - 1)
            log.info("epoch %3d  train %.4f  val %.4f  val_metric %.4f  %.0f samples/s  %.0f batches/s  eta %s%s", epoch, values["train_loss"],
                     values["val_loss"], values["val_metric"], throughput, math.ceil(train_stats["n"] / training["batch_size"]) / elapsed,
                     time.strftime("%H:%M:%S", time.gmtime(eta)), "  *" if improved else "")
            if stopping:
                log.info("early stopping: %s did not improve for %d epochs", stop["monitor"], stale)
                break
    bar.close()
    checkpoint.save(out_dir / "last.pt", {**state, "complete": True})
    if best["epoch"] >= 0:
        write_model_file(out_dir, job, data, provenance)
    plot_history(facts.rows, out_dir / "figures" / "loss.png", "accuracy" if task["type"] == "classification" else "RMSE")
    facts.event("on_train_end", best_epoch=best["epoch"], epochs_run=epoch + 1)
    return {"best_epoch": best["epoch"], "epochs_run": epoch + 1, "best": {k: v for k, v in best.items() if k != "score"}}


def train(job: dict, data_path: str | Path, out_dir: str | Path, tracking: dict | None = None, threads: int = 1,
          resume_dir: str | Path | None = None, gpu_share: int = 1, code_stamp: str | Path | None = None) -> dict:
    """Run one training job end to end (continuing a saved unfinished run of the same job); returns run.json's contents.

    The resume state lives in `resume_dir` when given (kept outside Snakemake's declared outputs,
    cleared after success), else in `out_dir`/last.pt. `gpu_share`: how many jobs share this GPU
    (packed cluster jobs); each may then allocate at most its share of the GPU's memory.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dir = Path(resume_dir) if resume_dir else out_dir
    torch.set_num_threads(threads)
    full = {**job, "training": training_settings(job["training"])}
    training = full["training"]
    device = select_device(training["device"])
    switches = backends.configure(training["deterministic"], device)  # before the first cuBLAS call
    if device.type == "cuda":
        torch.cuda.set_device(device)  # the default for anything that names no device
        if gpu_share > 1:
            torch.cuda.set_per_process_memory_fraction(0.95 / gpu_share, device)
            gpus.warn_about_compute_mode(gpu_share)
    log.info("device %s, kernels %s", device, switches)
    generator = seed_everything(job["seed"])
    check_losses(job["task"]["losses"])
    regularizers_fn(training["regularizers"])
    budget = training["memory_budget_mb"]
    if device.type == "cuda":  # in-memory splits live on the GPU: within this job's share of it
        free, total = torch.cuda.mem_get_info(device)
        budget = gpus.data_budget_mb(budget, free / 2**20, total / 2**20, gpu_share)
    data = training_data(data_path, job["task"], budget, training["num_workers"], device)
    for folder in {out_dir, state_dir}:
        checkpoint.remove_partial(folder)
    key = checkpoint.resume_key(job, data_path, code_stamp)
    saved, why = checkpoint.find_resume_state(state_dir, key)
    if saved is None and (state_dir / "last.pt").exists():
        log.info("starting from scratch: %s", why)
    provenance = read_attrs(data_path).get("provenance", "{}")
    raw_sha = json.loads(provenance).get("raw_sha256", "unknown") if isinstance(provenance, str) else "unknown"
    tracker = Tracker(live_tracking(tracking))  # without mlflow.live: no MLflow here, the track_runs rule logs the files
    name = f"{job['task']['name']}/{job['model']['name']}/seed{job['seed']}"
    tags = {"task": job["task"]["name"], "model": job["model"]["name"], "seed": str(job["seed"]), "git_commit": git_commit(),
            "config_hash": config_hash(job), "dataset_sha256": raw_sha, "seqpipe_version": __version__}
    same_store = saved is not None and saved.get("tracking_uri") == (tracking or {}).get("tracking_uri")
    if same_store and saved.get("mlflow_run_id") and tracker.client is not None:
        tracker.run_id, tracker.tags = saved["mlflow_run_id"], with_invocation(tags)  # continue the same MLflow run
    else:
        tracker.start(name, full, tags)  # params: the resolved settings, defaults included
    try:
        summary = fit(full, data, out_dir, tracker, device, generator, state_dir, saved, key,
                      json.loads(provenance) if isinstance(provenance, str) else None)
    except Exception as err:
        Facts.append_event(out_dir, "on_exception", error=f"{type(err).__name__}: {err}")
        tracker.end("FAILED")
        raise
    tracker.log_outputs(out_dir)  # facts, best.pt and the model; tags go to run.json for `seqpipe sync-mlflow`
    tracker.end()
    run = {"name": name, "mlflow_run_id": tracker.run_id, "tracking_uri": (tracking or {}).get("tracking_uri"), "config_hash": config_hash(job),
           "tags": tracker.tags, "mlflow_error": tracker.error, **summary}
    if saved is not None:
        run["resumed_at_epoch"] = saved["epoch"] + 1
    write_json(out_dir / "run.json", run)
    if state_dir != out_dir:
        checkpoint.clear(state_dir)
    return run


def main(argv: list[str] | None = None) -> None:
    """`seqpipe train --data H5 --job JSON [--runtime JSON] --tracking JSON --out-dir DIR [--resume-dir DIR] [--threads N] [--gpu-locks DIR] [--gpu-share N]`"""
    parser = argparse.ArgumentParser(prog="seqpipe train", description="Train one model on one task with one seed: writes best.pt, "
                                     "last.pt, model.pt, scalars.csv, figures and run.json, logs to MLflow, and resumes an "
                                     "interrupted run of the same job.")
    parser.add_argument("--data", required=True, help="the task's HDF5 file")
    parser.add_argument("--job", required=True, help="the job's resolved settings as JSON")
    parser.add_argument("--tracking", help="tracking.json written by `seqpipe tracking-setup`")
    parser.add_argument("--out-dir", required=True, help="the run folder (results/runs/<task>/<model>/<seed>)")
    parser.add_argument("--resume-dir", help="where the resume state lives, outside the rule's outputs (default: the run folder)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default: 1)")
    parser.add_argument("--gpu-locks", help="folder of the GPU lock files: with CUDA_VISIBLE_DEVICES unset, claim a GPU of "
                                            "this machine that no other training job holds (seqpipe.training.gpus)")
    parser.add_argument("--gpu-share", type=int, default=1, help="jobs sharing this GPU (packed jobs): each gets 1/N of its memory")
    parser.add_argument("--code", help="the code stamp of training (results/code/...sha256): the resume key's code part")
    parser.add_argument("--runtime", default=os.environ.get("SEQPIPE_RUNTIME"),
                        help="result-neutral training settings as JSON, seqpipe.plan.runtime_settings (default: $SEQPIPE_RUNTIME)")
    args = parser.parse_args(argv)
    tracking = read_json(args.tracking) if args.tracking else None
    from seqpipe.plan import with_runtime

    job = with_runtime(json.loads(args.job), json.loads(args.runtime) if args.runtime else None)
    device = job.get("training", {}).get("device", "auto")
    try:
        with gpus.claimed_gpu(args.gpu_locks, device) if args.gpu_locks else contextlib.nullcontext():
            train(job, args.data, args.out_dir, tracking, args.threads, args.resume_dir, args.gpu_share, args.code)
    except (FloatingPointError, KeyError, ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        sys.exit(1)
