"""Evaluate a trained model's best checkpoint on the test split; add the metrics to its MLflow run."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from seqpipe.evaluation import pieces, predictions, stats
from seqpipe.evaluation.metrics import classification_metrics, reconstruction_metrics, regression_metrics
from seqpipe.evaluation.predictions import Predictions
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
def predict(
    model: Normalised, x: torch.Tensor, task_type: str, batch_size: int = 256, probabilities: bool = False
) -> np.ndarray:
    """Class ids (or, with `probabilities`, class probabilities) for classification, values in the
    targets' units otherwise."""
    outs = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        if task_type == "classification":
            outs.append(torch.softmax(out.double(), -1).float() if probabilities else out.argmax(-1))
        else:
            outs.append(model.denormalise(out))
    return torch.cat(outs).numpy()


def score(task: dict, y_true: np.ndarray, y_pred: np.ndarray, names: dict, pred: Predictions | None = None) -> dict:
    """The metrics of a task type, from metrics.py; seq2seq tasks also get them per step.

    With the per-sample predictions `pred`, every metric also gets its bootstrap interval, and
    seq2static tasks with item ids get piece-level metrics (see `uncertainty`).
    """
    scored = _score(task, y_true, y_pred, names)
    if task["mapping"] == "seq2seq" and y_true.ndim >= 2:
        scored["per_step"] = [_score(task, y_true[:, t], y_pred[:, t], names)["metrics"] for t in range(y_true.shape[1])]
    if pred is not None:
        scored |= uncertainty(task, pred, names)
    return scored


def intervals(pred: Predictions) -> dict[str, list[float]]:
    """The bootstrap interval of every metric, resampling whole items when item ids exist."""
    named = predictions.statistics(pred)
    values = stats.bootstrap(list(named.values()), pred.item_ids)
    return {name: stats.interval(row) for name, row in zip(named, values, strict=True)}


def uncertainty(task: dict, pred: Predictions, names: dict) -> dict:
    """Intervals of the window-level metrics and the piece-level metrics with theirs.

    `piece_level` holds `metrics`, `intervals` and `n_items`, or `absent` with the reason.
    """
    out: dict = {
        "intervals": intervals(pred),
        "interval": {"confidence": stats.CONFIDENCE, "resamples": stats.N_RESAMPLES, "seed": stats.SEED,
                     "unit": "item" if pred.item_ids is not None else "sample", "method": "percentile bootstrap"},
    }
    if pred.item_ids is not None:
        out["n_items"] = int(len(np.unique(pred.item_ids)))
    reason = pieces.why_no_pieces(pred)
    if reason is not None:
        out["piece_level"] = {"absent": reason}
        return out
    piece = pieces.piece_predictions(pred)
    y_true, y_pred = piece.arrays["y_true"], piece.arrays["y_pred"]
    piece_task = {**task, "mapping": "seq2static"}
    out["piece_level"] = {
        "metrics": _score(piece_task, y_true, y_pred, names)["metrics"],
        "intervals": intervals(piece),
        "n_items": len(y_true),
        "method": "mean class probability over an item's windows" if task["type"] == "classification"
        else "mean prediction over an item's windows, against the mean target",
    }
    return out


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


def evaluate(
    data: TaskData, task: dict, model: Normalised, model_name: str, seed: int, predictions_path: str | None = None
) -> dict:
    """Metrics of `model` on the test split of `data`; the per-sample predictions go to
    `predictions_path` (predictions.h5) when given."""
    outputs = predict(model, data.x["test"], task["type"], probabilities=True)
    return scored_record(data, task, model_name, seed, outputs, predictions_path)


def scored_record(
    data: TaskData, task: dict, model_name: str, seed: int, outputs: np.ndarray, predictions_path: str | None = None
) -> dict:
    """The metrics record of test-split `outputs` (class probabilities or values); writes the
    predictions file when `predictions_path` is given."""
    y_true = data.y["test"].numpy()
    y_pred = outputs.argmax(-1) if task["type"] == "classification" else outputs
    item_ids = getattr(data, "item_ids", {}).get("test")
    pred = predictions.from_outputs(task["type"], y_true, outputs, item_ids, tuple(data.names.get("class_names", ())))
    if predictions_path:
        predictions.save(predictions_path, pred)
    return record(task, model_name, seed, len(y_pred), score(task, y_true, y_pred, data.names, pred))


def log_test_metrics(run: dict, tracking: dict | None, result: dict, run_dir: str | Path | None = None) -> bool:
    """Add `test_<metric>` values, the metrics file and (classification) the confusion matrix and per-class table
    to the training job's MLflow run. When tracking fails, or the run is not logged yet, a marker in `run_dir`
    keeps the test metrics for `seqpipe sync-mlflow`; returns whether they reached MLflow."""
    from seqpipe.tracking.sync import mark_evaluation_pending, log_evaluation

    if not tracking:
        return False
    if not run.get("mlflow_run_id") or run.get("mlflow_error"):
        log.warning("training run is not in MLflow yet (tracking was unavailable); `seqpipe sync-mlflow` logs it with its test metrics")
        return False
    tracker = Tracker(tracking, run_id=run["mlflow_run_id"])
    if tracker.active:
        log_evaluation(tracker, result)
    if tracker.error or not tracker.active:
        if run_dir is not None:
            mark_evaluation_pending(run_dir, tracker.error or "tracking unavailable")
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """`seqpipe evaluate --data H5 --task JSON --checkpoint best.pt --run run.json --seed N --out metrics.json
    [--predictions predictions.h5]`"""
    parser = argparse.ArgumentParser(prog="seqpipe evaluate", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--run", required=True, help="run.json of the training job")
    parser.add_argument("--tracking")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--predictions", help="per-sample predictions to write (default: predictions.h5 beside --out)")
    args = parser.parse_args(argv)
    task = json.loads(args.task)
    model, state = load_checkpoint(args.checkpoint)
    data = load_task_data(args.data, task)
    predictions_path = args.predictions or str(Path(args.out).with_name("predictions.h5"))
    result = evaluate(data, task, model, state["job"]["model"]["name"], args.seed, predictions_path)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
    log_test_metrics(read_json(args.run), read_json(args.tracking) if args.tracking else None, result, Path(args.out).parent)
