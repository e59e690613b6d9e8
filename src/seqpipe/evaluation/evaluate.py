"""Evaluate a trained model's best checkpoint on the test split; add the metrics to its MLflow run.

Only the test split is read (`seqpipe.data.reader`): in memory when it fits `--memory-budget-mb`,
else batch by batch from the file, predicting each batch as it comes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from seqpipe.data.reader import StreamSplit, TaskFile, add_budget_option, open_task
from seqpipe.evaluation.metrics import classification_metrics, reconstruction_metrics, regression_metrics
from seqpipe.io import read_json, write_json
from seqpipe.models import Normalised, build_model
from seqpipe.tracking.run import Tracker

log = logging.getLogger("seqpipe.evaluate")
EVAL_BATCH = 256  # samples per prediction batch (fewer when the memory budget is small)
RECONSTRUCTION_SCORING = 4  # whole-split reconstruction scoring needs about this many times the split's memory


def load_checkpoint(path: str | Path) -> tuple[Normalised, dict]:
    """Rebuild the model of a checkpoint (weights only: no pickled code is executed)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state["job"]["model"], **state["dims"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, state


@torch.no_grad()
def predict(model: Normalised, x: torch.Tensor, task_type: str, batch_size: int = 256) -> np.ndarray:
    """Class ids for classification, values in the targets' units otherwise (`x` in memory)."""
    return np.concatenate([predict_batch(model, x[start : start + batch_size], task_type) for start in range(0, len(x), batch_size)])


@torch.no_grad()
def predict_batch(model: Normalised, x: torch.Tensor, task_type: str) -> np.ndarray:
    """One batch's predictions: class ids for classification, values in the targets' units otherwise."""
    out = model(x)
    return (out.argmax(-1) if task_type == "classification" else model.denormalise(out)).cpu().numpy()


class ReconstructionScore:
    """`score` of a reconstruction task, summed batch by batch in float64 (a streamed test split).

    Gives the same record as `score` on the whole arrays (mse, mae, per-feature MSE, per-step
    metrics) without holding the inputs and reconstructions of the whole split.
    """

    def __init__(self, feature_names: list[str] | None):
        self.feature_names, self.n = feature_names, 0
        self.sq: np.ndarray | None = None
        self.abs: np.ndarray | None = None

    def add(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Add one batch of inputs [B, T, D] and their reconstructions."""
        a, b = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"reconstruction_metrics: targets have shape {a.shape} but predictions {b.shape}; they must match")
        for array, what in ((a, "inputs"), (b, "reconstructions")):
            if not np.all(np.isfinite(array)):
                bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
                raise ValueError(f"reconstruction_metrics {what}: {bad} non-finite values (NaN/inf); check the model outputs and the targets")
        err = a - b
        sq, ab = (err**2).sum(0), np.abs(err).sum(0)
        self.sq, self.abs = (sq, ab) if self.sq is None else (self.sq + sq, self.abs + ab)
        self.n += len(a)

    def result(self) -> dict:
        """The record `score` gives for a reconstruction task."""
        if self.sq is None or not self.n:
            raise ValueError("reconstruction_metrics: got empty arrays; the split has no samples to evaluate")
        sq, ab, n = self.sq, self.abs, self.n
        steps, width = sq.shape if sq.ndim == 2 else (1, sq.shape[-1])
        sq, ab = sq.reshape(steps, width), ab.reshape(steps, width)
        names = list(self.feature_names) if self.feature_names is not None else [f"f{i}" for i in range(width)]
        if len(names) != width:
            raise ValueError(f"reconstruction_metrics: {len(names)} feature names for {width} features (last axis)")
        per_feature = sq.sum(0) / (n * steps)
        return {
            "metrics": {"mse": float(sq.sum() / (n * steps * width)), "mae": float(ab.sum() / (n * steps * width))},
            "per_feature_mse": {str(name): float(v) for name, v in zip(names, per_feature)},
            "primary": "mse",
            "higher_is_better": False,
            "per_step": [{"mse": float(sq[t].sum() / (n * width)), "mae": float(ab[t].sum() / (n * width))} for t in range(steps)],
        }


def score_split(task: dict, data: TaskFile, predict_fn: Callable[[torch.Tensor], np.ndarray], split: str = "test") -> tuple[int, dict]:
    """Sample count and `score` of `predict_fn` on one split, predicted batch by batch.

    The split is held in memory when it fits the budget, else read from the file batch by batch;
    a streamed reconstruction split is scored as it goes (`ReconstructionScore`). Scoring a whole
    reconstruction split takes float64 copies of inputs and outputs (about 4x the split), so that
    one streams unless 4x fits.
    """
    need = data[split].estimate_mb() * (RECONSTRUCTION_SCORING if task["type"] == "reconstruction" else 1)
    source = data.source(split, need <= data.memory_budget_mb)
    batch_size = max(1, min(EVAL_BATCH, data[split].block_rows("data", data.memory_budget_mb)))
    if task["type"] == "reconstruction" and isinstance(source, StreamSplit):
        acc = ReconstructionScore(data.names.get("feature_names"))
        for batch in source.batches(batch_size):
            acc.add(batch.y.numpy(), predict_fn(batch.x))
        return acc.n, acc.result()
    y_true = y_pred = None
    start = 0
    for batch in source.batches(batch_size):
        true, pred = batch.y.cpu().numpy(), predict_fn(batch.x)
        if y_true is None:  # filled in place: no small arrays left between the batches' large ones (heap fragmentation)
            y_true = np.empty((len(source), *true.shape[1:]), true.dtype)
            y_pred = np.empty((len(source), *pred.shape[1:]), pred.dtype)
        y_true[start : start + len(true)], y_pred[start : start + len(pred)] = true, pred
        start += len(true)
    return len(y_pred), score(task, y_true, y_pred, data.names)


def score(task: dict, y_true: np.ndarray, y_pred: np.ndarray, names: dict) -> dict:
    """The metrics of a task type, from metrics.py; seq2seq tasks also get them per step."""
    scored = _score(task, y_true, y_pred, names)
    if task["mapping"] == "seq2seq" and y_true.ndim >= 2:
        scored["per_step"] = [_score(task, y_true[:, t], y_pred[:, t], names)["metrics"] for t in range(y_true.shape[1])]
    return scored


def _score(task: dict, y_true: np.ndarray, y_pred: np.ndarray, names: dict) -> dict:
    if task["type"] == "classification":
        return classification_metrics(y_true.reshape(-1), y_pred.reshape(-1), names["class_names"])
    if task["type"] == "reconstruction":
        if y_true.ndim == 2:  # one step of [N, T, D]: score it as a one-step sequence
            y_true, y_pred = y_true[:, None], y_pred[:, None]
        return reconstruction_metrics(y_true, y_pred, names.get("feature_names"))
    return regression_metrics(y_true, y_pred, names["target_names"])


def record(task: dict, model: str, seed: int, n: int, scored: dict) -> dict:
    """A metrics.json record: task, model, seed, type, split, sample count and the scores."""
    return {"task": task["name"], "model": model, "seed": seed, "task_type": task["type"], "split": "test", "n_samples": n, **scored}


def evaluate(data: TaskFile, task: dict, model: Normalised, model_name: str, seed: int) -> dict:
    """Metrics of `model` on the test split of `data`, predicted batch by batch (only the test split is read)."""
    device = next(iter(model.buffers()), torch.zeros(())).device
    n, scored = score_split(task, data, lambda x: predict_batch(model, x.to(device), task["type"]))
    return record(task, model_name, seed, n, scored)


def log_test_metrics(run: dict, tracking: dict | None, result: dict) -> None:
    """Add `test_<metric>` values to the training job's MLflow run (no-op if tracking is off)."""
    if not run.get("mlflow_run_id"):
        log.warning("training run has no MLflow run id (tracking was unavailable); metrics are in the files only")
        return
    tracker = Tracker(tracking, run_id=run["mlflow_run_id"])
    tracker.metrics({f"test_{k}": v for k, v in result["metrics"].items()})


def main(argv: list[str] | None = None) -> None:
    """`seqpipe evaluate --data H5 --task JSON --checkpoint best.pt --run run.json --seed N --out metrics.json`"""
    parser = argparse.ArgumentParser(prog="seqpipe evaluate", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--run", required=True, help="run.json of the training job")
    parser.add_argument("--tracking")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    add_budget_option(parser)
    args = parser.parse_args(argv)
    task = json.loads(args.task)
    model, state = load_checkpoint(args.checkpoint)
    try:
        result = evaluate(open_task(args.data, task, args.memory_budget_mb), task, model, state["job"]["model"]["name"], args.seed)
    except (OSError, KeyError, ValueError) as err:  # a locked, unreadable or malformed file: the message says what to do
        log.error("%s", err.args[0] if isinstance(err, KeyError) and err.args else err)
        sys.exit(1)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
    log_test_metrics(read_json(args.run), read_json(args.tracking) if args.tracking else None, result)
