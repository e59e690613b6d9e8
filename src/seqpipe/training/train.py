"""Train one model on one task with one seed: the training stage's module.

The loop is in `fit`, top to bottom: forward, loss, backward, clip, step, validate, checkpoint,
early stop. Checkpoints are plain dicts (loadable with `torch.load(..., weights_only=True)`)
written atomically. Per run: `scalars.csv` (one row per epoch and split), `events.jsonl`
(on_start, on_epoch_end, on_train_end, on_exception) and `run.json` (MLflow run id, best epoch).
Files first, MLflow second: a tracking outage never loses a trained model.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seqpipe import __version__
from seqpipe.data.hdf5 import read_attrs
from seqpipe.io import atomic_path, config_hash, read_json, write_json, write_text
from seqpipe.models import Normalised, build_model
from seqpipe.tracking.run import Tracker, git_commit
from seqpipe.training.data import TaskData, load_task_data, standardisation
from seqpipe.training.losses import check_losses, total_loss

log = logging.getLogger("seqpipe.train")
SCALAR_FIELDS = ["epoch", "split", "loss", "metric", "lr", "epoch_time_s", "samples_per_s", "max_memory_mib"]


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> torch.Generator:
    """Seed Python, NumPy and torch; in deterministic mode on an accelerator, ask for deterministic kernels.

    CPU kernels are deterministic at a fixed thread count already (the rebuild test checks the
    bytes), and `use_deterministic_algorithms` costs ~1 s of imports per job, so CPU skips it.
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


def make_model(job: dict, data: TaskData) -> Normalised:
    """Build the configured model with train-split normalisation statistics in its buffers."""
    model = build_model(job["model"], **data.dims)
    model.x_mean, model.x_std = standardisation(data.x["train"], one_hot_inputs=data.input_encoding == "one_hot")
    if data.dims["target_dim"] is not None:
        model.y_mean, model.y_std = standardisation(data.y["train"])
    return model


def make_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from `training.optimizer`."""
    name, lr, wd = cfg["name"], cfg["lr"], cfg.get("weight_decay", 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.get("momentum", 0.9), weight_decay=wd)


def batch_metric(task_type: str, out: torch.Tensor, target: torch.Tensor, model: Normalised) -> float:
    """Sum over the batch of the monitoring metric: correct predictions, or per-sample mean squared error."""
    if task_type == "classification":
        return float((out.argmax(-1) == target).sum())
    squared = (model.denormalise(out) - target) ** 2
    return float(squared.reshape(len(squared), -1).mean(dim=1).sum())


def run_epoch(model, data: TaskData, split: str, job: dict, device, optimizer=None, generator=None) -> dict:
    """One pass over a split; trains when an optimizer is given. Returns loss and metric."""
    task, training = job["task"], job["training"]
    x, y = data.x[split], data.y[split]
    n, bs = len(x), training["batch_size"]
    order = torch.randperm(n, generator=generator) if optimizer is not None else torch.arange(n)
    model.train(optimizer is not None)
    total, metric_sum = 0.0, 0.0
    with torch.set_grad_enabled(optimizer is not None):
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            xb, yb = x[idx].to(device), y[idx].to(device)
            target = yb if task["type"] == "classification" else model.normalise_target(yb)
            out = model(xb)
            loss, _ = total_loss(task["losses"], out, target)
            if optimizer is not None:
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss.item()} at a batch of split {split}; lower training.optimizer.lr "
                        "or set training.grad_clip"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if training.get("grad_clip"):
                    torch.nn.utils.clip_grad_norm_(model.parameters(), training["grad_clip"])
                optimizer.step()
            total += float(loss.detach()) * len(idx)
            metric_sum += batch_metric(task["type"], out.detach(), yb, model)
    metric = metric_sum / n
    if task["type"] != "classification":
        metric = math.sqrt(metric)  # RMSE in the targets' units
    return {"loss": total / n, "metric": metric, "n": n}


def save_checkpoint(path: Path, **state) -> None:
    """torch.save a plain dict atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class Facts:
    """scalars.csv and events.jsonl of a run, appended as training goes."""

    def __init__(self, out_dir: Path):
        self.scalars, self.events = out_dir / "scalars.csv", out_dir / "events.jsonl"
        self.rows: list[dict] = []
        self.lines: list[str] = []

    def event(self, name: str, **fields) -> None:
        self.lines.append(json.dumps({"event": name, "time": time.time(), **fields}, sort_keys=True))
        write_text(self.events, "\n".join(self.lines) + "\n")

    def epoch(self, rows: list[dict]) -> None:
        self.rows += rows
        with atomic_path(self.scalars) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=SCALAR_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)


def fit(job: dict, data: TaskData, out_dir: Path, tracker: Tracker, device: torch.device, generator: torch.Generator) -> dict:
    """Train with early stopping; write best.pt and last.pt; return a summary of the run."""
    training, task = job["training"], job["task"]
    model = make_model(job, data).to(device)
    optimizer = make_optimizer(training["optimizer"], model.parameters())
    stop = training["early_stopping"]
    sign = 1.0 if stop["mode"] == "min" else -1.0
    facts = Facts(out_dir)
    facts.event("on_start", job=job, device=str(device), n_train=len(data.x["train"]), params=sum(p.numel() for p in model.parameters()))
    best = {"score": math.inf, "epoch": -1}
    stale = 0
    common = {"job": job, "dims": data.dims, "names": data.names, "seqpipe_version": __version__}
    for epoch in range(training["epochs"]):
        t0 = time.perf_counter()
        train_stats = run_epoch(model, data, "train", job, device, optimizer, generator)
        elapsed = time.perf_counter() - t0
        val_stats = run_epoch(model, data, "val", job, device)
        values = {"train_loss": train_stats["loss"], "val_loss": val_stats["loss"], "train_metric": train_stats["metric"], "val_metric": val_stats["metric"]}
        score = sign * values[stop["monitor"]]
        improved = score < best["score"] - stop["min_delta"]
        memory = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
        rows = [
            {"epoch": epoch, "split": split, "loss": f"{s['loss']:.6g}", "metric": f"{s['metric']:.6g}", "lr": optimizer.param_groups[0]["lr"],
             "epoch_time_s": f"{elapsed:.4f}", "samples_per_s": f"{train_stats['n'] / elapsed:.1f}", "max_memory_mib": f"{memory:.1f}"}
            for split, s in (("train", train_stats), ("val", val_stats))
        ]
        facts.epoch(rows)
        tracker.metrics({**values, "epoch_time_s": elapsed, "samples_per_s": train_stats["n"] / elapsed}, step=epoch)
        state = {**common, "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "values": values}
        if improved:
            best, stale = {"score": score, "epoch": epoch, **values}, 0
            save_checkpoint(out_dir / "best.pt", **state)
        else:
            stale += 1
        save_checkpoint(out_dir / "last.pt", **state)
        facts.event("on_epoch_end", epoch=epoch, improved=improved, **values)
        log.info("epoch %3d  train %.4f  val %.4f  val_metric %.4f  %.0f samples/s%s", epoch, values["train_loss"], values["val_loss"],
                 values["val_metric"], train_stats["n"] / elapsed, "  *" if improved else "")
        if stale >= stop["patience"]:
            log.info("early stopping: %s did not improve for %d epochs", stop["monitor"], stale)
            break
    facts.event("on_train_end", best_epoch=best["epoch"], epochs_run=epoch + 1)
    return {"best_epoch": best["epoch"], "epochs_run": epoch + 1, "best": {k: v for k, v in best.items() if k != "score"}}


def train(job: dict, data_path: str | Path, out_dir: str | Path, tracking: dict | None = None, threads: int = 1) -> dict:
    """Run one training job end to end; returns the contents of run.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    device = select_device(job["training"]["device"])
    generator = seed_everything(job["seed"], job["training"]["deterministic"], device)
    check_losses(job["task"]["losses"])
    data = load_task_data(data_path, job["task"])
    provenance = read_attrs(data_path).get("provenance", "{}")
    raw_sha = json.loads(provenance).get("raw_sha256", "unknown") if isinstance(provenance, str) else "unknown"
    tracker = Tracker(tracking)
    name = f"{job['task']['name']}/{job['model']['name']}/seed{job['seed']}"
    tracker.start(name, job, {"task": job["task"]["name"], "model": job["model"]["name"], "seed": str(job["seed"]), "git_commit": git_commit(),
                              "config_hash": config_hash(job), "dataset_sha256": raw_sha, "seqpipe_version": __version__})
    try:
        summary = fit(job, data, out_dir, tracker, device, generator)
    except Exception as err:
        Facts(out_dir).event("on_exception", error=f"{type(err).__name__}: {err}")
        tracker.end("FAILED")
        raise
    tracker.log_outputs(out_dir)  # facts, best.pt and the model; tags go to run.json for `seqpipe sync-mlflow`
    tracker.end()
    run = {"name": name, "mlflow_run_id": tracker.run_id, "tracking_uri": (tracking or {}).get("tracking_uri"), "config_hash": config_hash(job),
           "tags": tracker.tags, "mlflow_error": tracker.error, **summary}
    write_json(out_dir / "run.json", run)
    return run


def main(argv: list[str] | None = None) -> None:
    """`seqpipe train --data H5 --job JSON --tracking JSON --out-dir DIR [--threads N]`"""
    parser = argparse.ArgumentParser(prog="seqpipe train", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--job", required=True, help="the job's resolved settings as JSON")
    parser.add_argument("--tracking", help="tracking.json written by `seqpipe tracking-setup`")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    tracking = read_json(args.tracking) if args.tracking else None
    try:
        train(json.loads(args.job), args.data, args.out_dir, tracking, args.threads)
    except (FloatingPointError, KeyError, ValueError) as err:
        log.error("%s", err)
        sys.exit(1)
