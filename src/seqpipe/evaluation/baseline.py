"""Trivial baselines on the test split: the train split's majority class, or its mean target."""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from seqpipe.evaluation.evaluate import record, score, with_song_scores
from seqpipe.evaluation.per_song import song_scores
from seqpipe.io import write_json
from seqpipe.training.data import TaskData, load_task_data

log = logging.getLogger("seqpipe.baseline")


def baseline_predictions(data: TaskData, task_type: str) -> np.ndarray:
    """Predictions for the test split that ignore the inputs."""
    train, n_test = data.y["train"].numpy(), len(data.y["test"])
    if task_type == "classification":
        majority = np.bincount(train.reshape(-1)).argmax()
        return np.full(data.y["test"].shape, majority, dtype=np.int64)
    mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    return np.broadcast_to(mean, (n_test, *mean.shape)).copy()


def run_baseline(data: TaskData, task: dict, path: str | None = None) -> dict:
    """The baseline's metrics record (model name `baseline`); with the file's `path`, per-song metrics too."""
    y_pred = baseline_predictions(data, task["type"])
    result = record(task, "baseline", 0, len(y_pred), score(task, data.y["test"].numpy(), y_pred, data.names))
    return with_song_scores(result, song_scores(path, task, data.y["test"].numpy(), y_pred, data.names))


def main(argv: list[str] | None = None) -> None:
    """`seqpipe baseline --data H5 --task JSON --out metrics.json`"""
    parser = argparse.ArgumentParser(prog="seqpipe baseline", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    task = json.loads(args.task)
    result = run_baseline(load_task_data(args.data, task), task, args.data)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
