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
from seqpipe.io import atomic_path, config_hash, read_json, write_json, write_text
from seqpipe.models import Normalised, build_model
from seqpipe.tracking.invocation import with_invocation
from seqpipe.tracking.run import Tracker, git_commit
from seqpipe.training import checkpoint, losses
from seqpipe.training.figures import plot_history
from seqpipe.training.loader import TrainingData, epoch_order, training_data
from seqpipe.training.losses import check_losses, total_loss
from seqpipe.training.schedule import make_optimizer, make_scheduler, step_scheduler

log = logging.getLogger("seqpipe.train")
SCALAR_FIELDS = ["epoch", "split", "loss", "metric", "lr", "epoch_time_s", "samples_per_s", "max_memory_mib"]


def training_settings(training: dict) -> dict:
    """`training` validated, with every default of the schema's `training` section filled in."""
    from seqpipe.config import section_with_defaults

    return section_with_defaults("training", training)


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> torch.Generator:
    """Seed Python, NumPy and torch; in deterministic mode on an accelerator, ask for deterministic kernels.

    CPU kernels are deterministic at a fixed thread count already (the rebuild test checks the
    bytes), and `use_deterministic_algorithms` costs ~1 s of imports per job, so CPU skips it.
    Returns the generator that shuffles the training split.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and device.type != "cpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def select_device(preference: str) -> torch.device:
    """auto: cuda, then mps, then cpu."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def model_terms(model: Normalised) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The network's extra losses of the last forward (`net.aux_losses`, already weighted; consumed, so
    none is counted twice) as `aux_<name>`, and what it reports (`net.aux_metrics`) as `model_<name>`."""
    net = model.net
    terms, info = getattr(net, "aux_losses", None), getattr(net, "aux_metrics", None)
    if terms:
        net.aux_losses = {}
        terms = {f"aux_{name}": value for name, value in terms.items()}
    return terms or {}, {f"model_{name}": float(value) for name, value in info.items()} if info else {}


def batch_metric(classify: bool, out: torch.Tensor, target: torch.Tensor, model: Normalised) -> torch.Tensor:
    """Sum over the batch of the monitoring metric (a device tensor): accuracy, or per-sample mean squared error."""
    if classify:
        correct = out.argmax(-1) == target
        return correct.sum() if correct.ndim == 1 else correct.reshape(len(correct), -1).float().mean(1).sum()
    squared = (model.denormalise(out.float()) - target) ** 2
    return squared.reshape(len(squared), -1).mean(1).sum()


def run_epoch(model: Normalised, source, job: dict, device: torch.device, optimizer=None, scaler=None, generator=None) -> dict:
    """One pass over a split; trains when an optimizer is given.

    Returns the mean loss, the metric (accuracy, or RMSE in the targets' units), the means of the
    extra terms (`aux_<name>` and `reg` losses added to the loss; `loss_<name>` parts of the task loss,
    `model_<name>` and `reg_<name>` values, logged only) and the sample count.
    """
    task, training = job["task"], job["training"]
    train, classify = optimizer is not None, task["type"] == "classification"
    amp = torch.autocast(device.type, dtype=torch.float16) if training["amp"] and device.type == "cuda" else contextlib.nullcontext()
    noise_std, clip = (training["noise_std"], training["grad_clip"]) if train else (0.0, None)
    regularize = regularizers_fn(training["regularizers"]) if train else None
    input_grad = regularize is not None and getattr(losses, "needs_input_grad", lambda specs: False)(training["regularizers"])
    params = [p for p in model.parameters() if p.requires_grad]
    block = training["shuffle_block"] or source.default_block(training["batch_size"])
    order = epoch_order(len(source), block, generator) if train else None
    model.train(train)
    loss_sum, metric_sum, term_sums, info_sums = torch.zeros((), device=device), torch.zeros((), device=device), {}, {}
    with torch.set_grad_enabled(train):
        for xb, yb, domain in source.batches(training["batch_size"], order):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if train and domain is not None:
                model.set_domains(domain.to(device, non_blocking=True))  # tcn_vae's domain adversary; others ignore it
            if noise_std:
                xb = xb + noise_std * model.x_std * torch.randn_like(xb)  # N(0, noise_std) on the normalised inputs
            if input_grad:
                xb.requires_grad_(True)
            target = yb if classify else model.normalise_target(yb)
            with amp:
                out = model(xb)
                loss, terms = total_loss(task["losses"], out, target)
                parts = {f"loss_{name}": value for name, value in terms.items()} if len(terms) > 1 else {}
                terms, info = model_terms(model)
                if regularize is not None:
                    terms["reg"], reg_parts = regularize(training["regularizers"], model, xb, out)
                    info.update({f"reg_{name}": value for name, value in reg_parts.items()})
                if terms:
                    loss = loss + sum(terms.values())
            if train:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, clip)
                scaler.step(optimizer)
                scaler.update()
            b = len(xb)
            loss_sum.add_(loss.detach(), alpha=b)
            metric_sum.add_(batch_metric(classify, out.detach(), yb, model))
            for name, value in (terms | parts if parts else terms).items():
                term_sums[name] = term_sums.get(name, 0.0) + value.detach().float() * b
            for name, value in info.items():
                info_sums[name] = info_sums.get(name, 0.0) + value * b
    n = len(source)
    totals = torch.stack([loss_sum, metric_sum, *term_sums.values()]).tolist()  # the epoch's one device sync
    if not math.isfinite(totals[0]):
        raise FloatingPointError(f"loss became {totals[0]} during an epoch on split {'train' if train else 'val'}; "
                                 "lower training.optimizer.lr or set training.grad_clip")
    metric = totals[1] / n if classify else math.sqrt(totals[1] / n)  # RMSE in the targets' units
    terms = {**dict(zip(term_sums, totals[2:])), **info_sums}
    return {"loss": totals[0] / n, "metric": metric, "terms": {k: v / n for k, v in terms.items()}, "n": n}


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


def write_model_file(out_dir: Path, job: dict, data: TrainingData) -> None:
    """model.pt: the best weights with what rebuilds the model (its config and dimensions), weights-only loadable."""
    best = checkpoint.load(out_dir / "best.pt")
    checkpoint.save(out_dir / "model.pt", {"model": best["model"], "model_config": job["model"], "dims": data.dims, "names": data.names,
                                           "task": {k: job["task"][k] for k in ("name", "type", "mapping")}, "epoch": best["epoch"],
                                           "seqpipe_version": __version__})


def fit(job: dict, data: TrainingData, out_dir: Path, tracker: Tracker, device: torch.device, generator: torch.Generator,
        state_dir: Path | None = None, saved: dict | None = None, key: dict | None = None) -> dict:
    """Train with early stopping from scratch, or from `saved` (a last.pt state); write the checkpoints; return a summary.

    `state_dir` holds the resume state (last.pt and a copy of best.pt) when it is not `out_dir`.
    """
    training, task = job["training"], job["task"]
    state_dir = state_dir or out_dir
    model = make_model(job, data).to(device)
    pretrained = load_pretrained(model, training["init_from"]) if training["init_from"] and saved is None else None
    frozen = freeze(model, training["freeze"])
    optimizer = make_optimizer(training["optimizer"], [p for p in model.parameters() if p.requires_grad])
    stop = training["early_stopping"]
    scheduler = make_scheduler(training["scheduler"], optimizer, stop["mode"])
    scaler = torch.amp.GradScaler(device.type, enabled=training["amp"] and device.type == "cuda")
    sign = 1.0 if stop["mode"] == "min" else -1.0
    best, stale, kl = {"score": math.inf, "epoch": -1}, 0, {"low_epochs": 0, "warned": False}
    start = 0
    if saved is None:
        facts = Facts(out_dir)
        facts.event("on_start", job=job, device=str(device), n_train=len(data.splits["train"]), streaming=data.streaming,
                    params=sum(p.numel() for p in model.parameters()), trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
        if pretrained:
            facts.event("on_init_from", **pretrained, frozen=frozen)
    else:  # resume: one branch puts every piece of state back
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        best, stale, kl = saved["early_stopping"]["best"], saved["early_stopping"]["stale"], saved["kl_collapse"]
        checkpoint.set_rng_state(saved["rng"], generator)
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
            train_stats = run_epoch(model, data.splits["train"], job, device, optimizer, scaler, generator)
            elapsed = time.perf_counter() - t0
            val_stats = run_epoch(model, data.splits["val"], job, device)
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
            memory = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
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
                     "rng": checkpoint.rng_state(generator), "history": facts.history(), "complete": False}
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
        write_model_file(out_dir, job, data)
    plot_history(facts.rows, out_dir / "figures" / "loss.png", "accuracy" if task["type"] == "classification" else "RMSE")
    facts.event("on_train_end", best_epoch=best["epoch"], epochs_run=epoch + 1)
    return {"best_epoch": best["epoch"], "epochs_run": epoch + 1, "best": {k: v for k, v in best.items() if k != "score"}}


def train(job: dict, data_path: str | Path, out_dir: str | Path, tracking: dict | None = None, threads: int = 1,
          resume_dir: str | Path | None = None) -> dict:
    """Run one training job end to end (continuing a saved unfinished run of the same job); returns run.json's contents.

    The resume state lives in `resume_dir` when given (kept outside Snakemake's declared outputs,
    cleared after success), else in `out_dir`/last.pt.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dir = Path(resume_dir) if resume_dir else out_dir
    torch.set_num_threads(threads)
    full = {**job, "training": training_settings(job["training"])}
    training = full["training"]
    device = select_device(training["device"])
    generator = seed_everything(job["seed"], training["deterministic"], device)
    check_losses(job["task"]["losses"])
    regularizers_fn(training["regularizers"])
    data = training_data(data_path, job["task"], training["memory_budget_mb"], training["num_workers"])
    for folder in {out_dir, state_dir}:
        checkpoint.remove_partial(folder)
    key = checkpoint.resume_key(job, data_path)
    saved, why = checkpoint.find_resume_state(state_dir, key)
    if saved is None and (state_dir / "last.pt").exists():
        log.info("starting from scratch: %s", why)
    provenance = read_attrs(data_path).get("provenance", "{}")
    raw_sha = json.loads(provenance).get("raw_sha256", "unknown") if isinstance(provenance, str) else "unknown"
    tracker = Tracker(tracking)
    name = f"{job['task']['name']}/{job['model']['name']}/seed{job['seed']}"
    tags = {"task": job["task"]["name"], "model": job["model"]["name"], "seed": str(job["seed"]), "git_commit": git_commit(),
            "config_hash": config_hash(job), "dataset_sha256": raw_sha, "seqpipe_version": __version__}
    same_store = saved is not None and saved.get("tracking_uri") == (tracking or {}).get("tracking_uri")
    if same_store and saved.get("mlflow_run_id") and tracker.client is not None:
        tracker.run_id, tracker.tags = saved["mlflow_run_id"], with_invocation(tags)  # continue the same MLflow run
    else:
        tracker.start(name, full, tags)  # params: the resolved settings, defaults included
    try:
        summary = fit(full, data, out_dir, tracker, device, generator, state_dir, saved, key)
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
    """`seqpipe train --data H5 --job JSON --tracking JSON --out-dir DIR [--resume-dir DIR] [--threads N]`"""
    parser = argparse.ArgumentParser(prog="seqpipe train", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--job", required=True, help="the job's resolved settings as JSON")
    parser.add_argument("--tracking", help="tracking.json written by `seqpipe tracking-setup`")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--resume-dir", help="where the resume state lives, outside the rule's outputs (default: the run folder)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    tracking = read_json(args.tracking) if args.tracking else None
    try:
        train(json.loads(args.job), args.data, args.out_dir, tracking, args.threads, args.resume_dir)
    except (FloatingPointError, KeyError, ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        sys.exit(1)
