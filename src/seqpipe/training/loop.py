"""The epochs of one run: `fit` is a short loop over named steps (set up the parts, start fresh or put a saved
state back, then per epoch: train and validate, early stopping, the records, the resume state, the progress line).

Early stopping, the schedule and the resume state live here; the step itself is `epoch.run_epoch`, the files
a run writes are `records`'.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from seqpipe import __version__
from seqpipe.config.types import EarlyStopping, Runtime, TrainJob
from seqpipe.taskfile.reader import TrainingData
from seqpipe.io import atomic_path, config_hash
from seqpipe.models import Normalised
from seqpipe.tracking.run import Tracker
from seqpipe.training import checkpoint
from seqpipe.training.device import gpu_name
from seqpipe.training.epoch import check_deterministic, run_epoch
from seqpipe.training.figures import plot_history
from seqpipe.training.precision import Precision, choose_precision
from seqpipe.training.records import Facts, check_kl_collapse, epoch_rows, write_model_file
from seqpipe.training.schedule import make_optimizer, make_scheduler, step_scheduler
from seqpipe.training.start import freeze, load_pretrained, make_model

log = logging.getLogger("seqpipe.train")


@dataclass
class Parts:
    """What trains: the model, its optimizer and schedule, the precision and its grad scaler."""

    model: Normalised
    optimizer: torch.optim.Optimizer
    scheduler: object
    precision: Precision
    scaler: torch.amp.GradScaler


@dataclass
class Stopping:
    """Early stopping's state: the best epoch so far (its score and values), the epochs since, and the KL-collapse count."""

    settings: EarlyStopping
    best: dict = field(default_factory=lambda: {"score": math.inf, "epoch": -1})
    stale: int = 0
    kl: dict = field(default_factory=lambda: {"low_epochs": 0, "warned": False})

    def update(self, values: dict, epoch: int) -> bool:
        """Count one epoch's monitored value; True when it improved on the best."""
        sign = 1.0 if self.settings.mode == "min" else -1.0
        score = sign * values[self.settings.monitor]
        improved = score < self.best["score"] - self.settings.min_delta
        if improved:
            self.best, self.stale = {"score": score, "epoch": epoch, **values}, 0
        else:
            self.stale += 1
        return improved

    @property
    def done(self) -> bool:
        return self.stale >= self.settings.patience


def set_progress(model: Normalised, progress: float) -> None:
    """Tell a model that wants it how far training is (0 at the first epoch): `net.set_progress(p)`."""
    fn = getattr(model.net, "set_progress", None)
    if callable(fn):
        fn(progress)


def build_parts(job: TrainJob, data: TrainingData, device: torch.device, saved: dict | None) -> tuple[Parts, dict | None, list]:
    """The model (initialised from `training.init_from` on a fresh start, partly frozen), optimizer, schedule and
    precision; the init_from report and the frozen names."""
    training = job.training
    model = make_model(job.model, data).to(device)
    pretrained = load_pretrained(model, training.init_from) if training.init_from and saved is None else None
    frozen = freeze(model, list(training.freeze))
    # fused (CUDA): one kernel per step, and fp16 overflow checks stay on the device (no per-step sync)
    optimizer = make_optimizer(training.optimizer, [p for p in model.parameters() if p.requires_grad], fused=device.type == "cuda")
    scheduler = make_scheduler(training.scheduler, optimizer, training.early_stopping.mode)
    precision = choose_precision(training.amp, device)
    parts = Parts(model, optimizer, scheduler, precision, precision.make_scaler())
    if training.deterministic and device.type == "cuda":
        check_deterministic(model, data.splits["train"], job, device, precision)
    return parts, pretrained, frozen


def start_fresh(job: TrainJob, data: TrainingData, parts: Parts, out_dir: Path, device: torch.device, started: dict) -> Facts:
    """A new run's records, with its on_start (and on_init_from) events; `started`: the job's settings as run."""
    facts = Facts(out_dir)
    params = list(parts.model.parameters())
    facts.event("on_start", job=started, device=str(device), n_train=len(data.splits["train"]), streaming=data.streaming,
                precision=parts.precision.describe(), gpu=gpu_name(device), params=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad))
    return facts


def resume(saved: dict, parts: Parts, stopping: Stopping, generator: torch.Generator, device: torch.device,
           out_dir: Path, state_dir: Path, tracker: Tracker) -> Facts:
    """Put every piece of a saved state back (one place); returns the restored records."""
    parts.model.load_state_dict(saved["model"])
    checkpoint.restore_optimizer(parts.optimizer, saved["optimizer"])  # this device's fused flag, not the saver's
    if parts.scheduler is not None:
        parts.scheduler.load_state_dict(saved["scheduler"])
    checkpoint.restore_scaler(parts.scaler, saved["scaler"])
    stopping.best, stopping.stale, stopping.kl = saved["early_stopping"]["best"], saved["early_stopping"]["stale"], saved["kl_collapse"]
    checkpoint.set_rng_state(saved["rng"], generator, device)
    facts = Facts(out_dir, saved["history"])
    if state_dir != out_dir and (state_dir / "best.pt").exists():
        shutil.copyfile(state_dir / "best.pt", out_dir / "best.pt")
    facts.event("on_resume", epoch=saved["epoch"] + 1, state=str(state_dir / "last.pt"))
    log.info("resuming at epoch %d from %s", saved["epoch"] + 1, state_dir / "last.pt")
    if tracker.active and saved.get("mlflow_run_id") != tracker.run_id:
        for epoch, values in facts.metrics:  # a new MLflow run: log the epochs trained before
            tracker.metrics(values, step=epoch)
    return facts


def train_and_validate(job: TrainJob, data: TrainingData, parts: Parts, device: torch.device, generator) -> tuple[dict, dict, float]:
    """One epoch: the training pass and the validation pass; their results and the training pass's seconds."""
    t0 = time.perf_counter()
    train_stats = run_epoch(parts.model, data.splits["train"], job.task, job.training, device, parts.optimizer, parts.scaler,
                            generator, parts.precision)
    elapsed = time.perf_counter() - t0
    val_stats = run_epoch(parts.model, data.splits["val"], job.task, job.training, device, precision=parts.precision)
    return train_stats, val_stats, elapsed


def epoch_values(train_stats: dict, val_stats: dict) -> dict:
    """The epoch's monitored values: losses, metrics and every extra term, per split."""
    values = {"train_loss": train_stats["loss"], "val_loss": val_stats["loss"], "train_metric": train_stats["metric"],
              "val_metric": val_stats["metric"]}
    values.update({f"{split}_{k}": v for split, s in (("train", train_stats), ("val", val_stats)) for k, v in s["terms"].items()})
    return values


@dataclass
class Epoch:
    """One finished epoch: its number, learning rate, results and timing."""

    index: int
    lr: float
    train: dict
    val: dict
    elapsed: float
    values: dict
    improved: bool = False

    @property
    def throughput(self) -> float:
        return self.train["n"] / self.elapsed


def record(epoch: Epoch, facts: Facts, tracker: Tracker, stopping: Stopping, job: TrainJob, device: torch.device) -> None:
    """The epoch's rows in scalars.csv, its metrics in MLflow, the KL-collapse check and its on_epoch_end event."""
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    rows = epoch_rows(epoch.index, {"train": epoch.train, "val": epoch.val}, epoch.lr, epoch.elapsed, epoch.throughput, memory)
    logged = {**epoch.values, "lr": epoch.lr, "epoch_time_s": epoch.elapsed, "samples_per_s": epoch.throughput}
    facts.epoch(rows, epoch.index, logged)
    tracker.metrics(logged, step=epoch.index)
    check_kl_collapse(stopping.kl, epoch.train["terms"], job.training.kl_collapse, epoch.index, facts)
    facts.event("on_epoch_end", epoch=epoch.index, improved=epoch.improved, **epoch.values)


def run_state(common: dict, epoch: Epoch, parts: Parts, stopping: Stopping, facts: Facts, generator, device) -> dict:
    """The checkpoint of the state after `epoch`: everything a resumed run needs to continue bit for bit."""
    return {**common, "epoch": epoch.index, "values": epoch.values, "model": parts.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None, "scaler": parts.scaler.state_dict(),
            "early_stopping": {"best": stopping.best, "stale": stopping.stale}, "kl_collapse": dict(stopping.kl),
            "rng": checkpoint.rng_state(generator, device), "history": facts.history(), "complete": False}


@dataclass
class Saver:
    """Writes best.pt when an epoch improves, and the resume state (last.pt, a copy of best.pt) every
    `checkpoint_every` epochs, at early stopping and at the last epoch."""

    out_dir: Path
    state_dir: Path
    every: int
    start: int
    epochs: int
    saved_best_epoch: int

    def save(self, state: dict, epoch: Epoch, stopping: Stopping) -> None:
        if epoch.improved:
            checkpoint.save(self.out_dir / "best.pt", state)
        due = (epoch.index + 1 - self.start) % self.every == 0 or stopping.done or epoch.index == self.epochs - 1
        if not due:
            return
        if self.state_dir != self.out_dir and stopping.best["epoch"] != self.saved_best_epoch:  # the best so far, beside the state
            with atomic_path(self.state_dir / "best.pt") as tmp:
                shutil.copyfile(self.out_dir / "best.pt", tmp)
            self.saved_best_epoch = stopping.best["epoch"]
        checkpoint.save(self.state_dir / "last.pt", state)


def show_progress(bar, epoch: Epoch, began: float, first: int, epochs: int, batch_size: int) -> None:
    """The progress bar's postfix and the epoch's log line (losses, throughput, time left)."""
    values = epoch.values
    bar.set_postfix(train=f"{values['train_loss']:.4f}", val=f"{values['val_loss']:.4f}", samples_s=f"{epoch.throughput:.0f}")
    eta = (time.perf_counter() - began) / (epoch.index + 1 - first) * (epochs - epoch.index - 1)
    log.info("epoch %3d  train %.4f  val %.4f  val_metric %.4f  %.0f samples/s  %.0f batches/s  eta %s%s", epoch.index,
             values["train_loss"], values["val_loss"], values["val_metric"], epoch.throughput,
             math.ceil(epoch.train["n"] / batch_size) / epoch.elapsed, time.strftime("%H:%M:%S", time.gmtime(eta)),
             "  *" if epoch.improved else "")


def progress_bar(first: int, epochs: int, show: bool):
    """The epochs' bar on stderr (only on a terminal when `show`)."""
    return tqdm(range(first, epochs), initial=first, total=epochs, desc="epochs", unit="epoch", file=sys.stderr,
                disable=None if show else True, dynamic_ncols=True)  # None: only on a terminal


@dataclass
class Context:
    """Where a run writes and what it logs to: the run folder, the resume state's folder, MLflow, the device."""

    out_dir: Path
    state_dir: Path
    tracker: Tracker
    device: torch.device
    generator: torch.Generator


def begin(job: TrainJob, runtime: Runtime, data: TrainingData, ctx: Context, saved: dict | None) -> tuple[Parts, Stopping, Facts]:
    """The parts, the early-stopping state and the records, fresh or as `saved` left them."""
    parts, pretrained, frozen = build_parts(job, data, ctx.device, saved)
    stopping = Stopping(job.training.early_stopping)
    if saved is not None:  # resume: one branch puts every piece of state back
        return parts, stopping, resume(saved, parts, stopping, ctx.generator, ctx.device, ctx.out_dir, ctx.state_dir, ctx.tracker)
    facts = start_fresh(job, data, parts, ctx.out_dir, ctx.device, job.as_run(runtime))
    if pretrained:
        facts.event("on_init_from", **pretrained, frozen=frozen)
    return parts, stopping, facts


def fit(job: TrainJob, runtime: Runtime, data: TrainingData, ctx: Context, saved: dict | None = None, key: dict | None = None,
        provenance: dict | None = None) -> dict:
    """Train with early stopping from scratch, or from `saved` (a last.pt state); write the checkpoints; return a summary."""
    parts, stopping, facts = begin(job, runtime, data, ctx, saved)
    started = job.as_run(runtime)
    key = key or {"config_hash": config_hash(started)}
    common = {"job": started, "dims": data.dims, "names": data.names, "seqpipe_version": __version__, "resume_key": key,
              "config_hash": key["config_hash"], "mlflow_run_id": ctx.tracker.run_id,
              "tracking_uri": ctx.tracker.tracking.get("tracking_uri")}
    start, epochs = (saved["epoch"] + 1 if saved is not None else 0), job.training.epochs
    first = start if not stopping.done else epochs  # a state saved at the epoch that stopped early is finished
    saver = Saver(ctx.out_dir, ctx.state_dir, runtime.checkpoint_every, start, epochs, stopping.best["epoch"])
    state, index, bar, began = saved, start - 1, progress_bar(first, epochs, runtime.progress), time.perf_counter()
    with logging_redirect_tqdm():
        for index in bar:
            set_progress(parts.model, index / epochs)
            lr = parts.optimizer.param_groups[0]["lr"]
            train_stats, val_stats, elapsed = train_and_validate(job, data, parts, ctx.device, ctx.generator)
            epoch = Epoch(index, lr, train_stats, val_stats, elapsed, epoch_values(train_stats, val_stats))
            step_scheduler(parts.scheduler, epoch.values[stopping.settings.monitor])
            epoch.improved = stopping.update(epoch.values, index)
            record(epoch, facts, ctx.tracker, stopping, job, ctx.device)
            state = run_state(common, epoch, parts, stopping, facts, ctx.generator, ctx.device)
            saver.save(state, epoch, stopping)
            show_progress(bar, epoch, began, first, epochs, job.training.batch_size)
            if stopping.done:
                log.info("early stopping: %s did not improve for %d epochs", stopping.settings.monitor, stopping.stale)
                break
    bar.close()
    return finish(job, data, ctx, state, stopping, facts, index, provenance)


def finish(job: TrainJob, data: TrainingData, ctx: Context, state: dict, stopping: Stopping, facts: Facts, index: int,
           provenance: dict | None) -> dict:
    """The complete last.pt, model.pt, the loss figure and on_train_end; the run's summary."""
    best = stopping.best
    checkpoint.save(ctx.out_dir / "last.pt", {**state, "complete": True})
    if best["epoch"] >= 0:
        write_model_file(ctx.out_dir, job, data, provenance)
    plot_history(facts.rows, ctx.out_dir / "figures" / "loss.png", job.task.type.metric_name)
    facts.event("on_train_end", best_epoch=best["epoch"], epochs_run=index + 1)
    return {"best_epoch": best["epoch"], "epochs_run": index + 1, "best": {k: v for k, v in best.items() if k != "score"}}
