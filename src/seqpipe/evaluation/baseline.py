"""Trivial baselines on the test split: the train split's majority class, or its mean target."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from seqpipe.evaluation.evaluate import scored_record
from seqpipe.io import write_json
from seqpipe.training.data import TaskData, load_task_data

log = logging.getLogger("seqpipe.baseline")


def baseline_predictions(data: TaskData, task_type: str, probabilities: bool = False) -> np.ndarray:
    """Predictions for the test split that ignore the inputs (with `probabilities`, a
    classifier's are one-hot class probabilities)."""
    train, n_test = data.y["train"].numpy(), len(data.y["test"])
    if task_type == "classification":
        majority = np.bincount(train.reshape(-1)).argmax()
        if probabilities:
            n_classes = max(len(data.names.get("class_names", ())), int(majority) + 1)
            return np.broadcast_to(np.eye(n_classes, dtype=np.float32)[majority], (*data.y["test"].shape, n_classes)).copy()
        return np.full(data.y["test"].shape, majority, dtype=np.int64)
    mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    return np.broadcast_to(mean, (n_test, *mean.shape)).copy()


def run_baseline(data: TaskData, task: dict, predictions_path: str | None = None) -> dict:
    """The baseline's metrics record (model name `baseline`); its per-sample predictions go to
    `predictions_path` when given, for the report's paired comparisons."""
    outputs = baseline_predictions(data, task["type"], probabilities=True)
    return scored_record(data, task, "baseline", 0, outputs, predictions_path)


def main(argv: list[str] | None = None) -> None:
    """`seqpipe baseline --data H5 --task JSON --out metrics.json`"""
    parser = argparse.ArgumentParser(prog="seqpipe baseline", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--predictions", help="per-sample predictions to write (default: predictions.h5 beside --out)")
    args = parser.parse_args(argv)
    task = json.loads(args.task)
    predictions_path = args.predictions or str(Path(args.out).with_name("predictions.h5"))
    result = run_baseline(load_task_data(args.data, task), task, predictions_path)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
