"""Evaluate a trained model's best checkpoint on the test split; add the metrics to its MLflow run."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from seqpipe.data.domains import domain_accuracy
from seqpipe.evaluation.metrics import classification_metrics, reconstruction_metrics, regression_metrics
from seqpipe.evaluation.per_song import song_scores
from seqpipe.io import read_json, write_json
from seqpipe.models import Normalised, build_model
from seqpipe.tracking.run import Tracker
from seqpipe.training.data import TaskData, load_task_data

log = logging.getLogger("seqpipe.evaluate")


def load_checkpoint(path: str | Path) -> tuple[Normalised, dict]:
    """Rebuild the model of a checkpoint (weights only: no pickled code is executed)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state["job"]["model"], **state["dims"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, state


@torch.no_grad()
def predict(model: Normalised, x: torch.Tensor, task_type: str, batch_size: int = 256) -> np.ndarray:
    """Class ids for classification, values in the targets' units otherwise."""
    outs = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        outs.append(out.argmax(-1) if task_type == "classification" else model.denormalise(out))
    return torch.cat(outs).numpy()


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


@torch.no_grad()
def adversary_scores(model: Normalised, x: torch.Tensor, domains: torch.Tensor | None, batch_size: int = 256) -> dict:
    """Domain accuracy of a model's domain adversary (tcn_vae) on known domain ids; {} without either."""
    if domains is None or getattr(model.net, "domain_logits", None) is None or model.net.domain_head is None:
        return {}
    logits = torch.cat([model.net.domain_logits((xb - model.x_mean) / model.x_std) for xb in x.split(batch_size)])
    return domain_accuracy(logits.numpy(), domains.numpy())


def evaluate(data: TaskData, task: dict, model: Normalised, model_name: str, seed: int, path: str | Path | None = None) -> dict:
    """Metrics of `model` on the test split of `data` (and its domain adversary's accuracy where it has one);
    with the file's `path`, seq2seq regression also gets the per-song (MediaEval) metrics."""
    y_pred = predict(model, data.x["test"], task["type"])
    result = record(task, model_name, seed, len(y_pred), score(task, data.y["test"].numpy(), y_pred, data.names))
    result["metrics"].update(adversary_scores(model, data.x["test"], data.domains.get("test")))
    return with_song_scores(result, song_scores(path, task, data.y["test"].numpy(), y_pred, data.names))


def with_song_scores(result: dict, songs: dict) -> dict:
    """`result` with the per-song block and its means (`song_rmse`, `song_pearson`) beside the pooled metrics."""
    if songs:
        result["per_song"] = songs["per_song"]
        result["metrics"].update(songs["per_song"]["metrics"])
    return result


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
    args = parser.parse_args(argv)
    task = json.loads(args.task)
    model, state = load_checkpoint(args.checkpoint)
    data = load_task_data(args.data, task)
    result = evaluate(data, task, model, state["job"]["model"]["name"], args.seed, args.data)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
    log_test_metrics(read_json(args.run), read_json(args.tracking) if args.tracking else None, result)
