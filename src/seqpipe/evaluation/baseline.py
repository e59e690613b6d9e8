"""Trivial baselines on the test split: the train split's majority class, or its mean target.

The train statistics take one pass over the train split in blocks (`seqpipe.taskfile.reader`), and the
test split is scored batch by batch, so memory stays within `--memory-budget-mb` whatever the
file's size.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from seqpipe.config.types import Task, TaskType
from seqpipe.taskfile.reader import TaskFile, add_budget_option, open_task, targets
from seqpipe.evaluation.evaluate import record, score_split, scored_record
from seqpipe.io import write_json

log = logging.getLogger("seqpipe.baseline")


def majority_class(data: TaskFile) -> int:
    """The most frequent class id of the train split (the smallest id on ties), counted block by block."""
    counts = np.zeros(0, dtype=np.int64)
    for _, block in data["train"].raw_blocks("labels", data.memory_budget_mb):
        block = np.asarray(block, dtype=np.int64).reshape(-1)
        new = np.bincount(block, minlength=len(counts))
        new[: len(counts)] += counts
        counts = new
    return int(counts.argmax())


def train_mean(data: TaskFile, task_type: TaskType) -> np.ndarray:
    """Mean over the train samples (axis 0) of the targets (the inputs for reconstruction), float64 sums, float32."""
    train = data["train"]
    key = "data" if task_type.is_reconstruction else "labels"
    step = train.block_rows(key, data.memory_budget_mb)
    total = None
    for start in range(0, train.n, step):
        positions = np.arange(start, min(train.n, start + step))
        block = train.inputs(positions) if key == "data" else targets(data.task, None, train.rows.read("labels", positions))
        part = block.sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
    return (total / train.n).astype(np.float32)


def baseline_predictions(data: TaskFile, task_type: str, probabilities: bool = False) -> np.ndarray:
    """Predictions for the test split that ignore the inputs (classification and regression-like tasks;
    with `probabilities`, a classifier's are one-hot class probabilities). A read-only broadcast view:
    one row's memory whatever the split's size."""
    task = data.task
    shape = data["test"].shape("labels")
    if shape is None:
        targets(task, None, None)  # raises: the task needs labels
    if task_type == "classification":
        majority = majority_class(data)
        if probabilities:
            n_classes = max(len(data.names.get("class_names", ())), majority + 1)
            return np.broadcast_to(np.eye(n_classes, dtype=np.float32)[majority], (*shape, n_classes))
        return np.broadcast_to(np.int64(majority), shape)
    mean = train_mean(data, TaskType(task_type))
    return np.broadcast_to(mean, (shape[0], *mean.shape))


def run_baseline(data: TaskFile, task: Task, predictions_path: str | Path | None = None) -> dict:
    """The baseline's metrics record (model name `baseline`); its per-sample predictions go to
    `predictions_path` when given, for the report's paired comparisons."""
    data.require_samples()
    if task.is_reconstruction:
        mean = train_mean(data, task.type)
        n, scored = score_split(task, data, lambda x: np.broadcast_to(mean, (len(x), *mean.shape)), predictions_path=predictions_path)
        return record(task, "baseline", 0, n, scored)
    outputs = baseline_predictions(data, task.type.value, probabilities=True)
    return scored_record(data, task, "baseline", 0, outputs, predictions_path)


def main(argv: list[str] | None = None) -> None:
    """`seqpipe baseline --data H5 --task JSON --out metrics.json [--predictions predictions.h5] [--memory-budget-mb MB]`"""
    parser = argparse.ArgumentParser(prog="seqpipe baseline", description="Score a task's trivial baseline on the test split.")
    parser.add_argument("--data", required=True, help="the task's HDF5 file")
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--out", required=True, help="where metrics.json goes")
    parser.add_argument("--predictions", help="per-sample predictions to write (default: predictions.h5 beside --out)")
    add_budget_option(parser)
    args = parser.parse_args(argv)
    task = Task.from_json(args.task)
    predictions_path = args.predictions or str(Path(args.out).with_name("predictions.h5"))
    try:
        result = run_baseline(open_task(args.data, task, args.memory_budget_mb), task, predictions_path)
    except (OSError, KeyError, ValueError) as err:  # a locked, unreadable or malformed file: the message says what to do
        log.error("%s", err.args[0] if isinstance(err, KeyError) and err.args else err)
        sys.exit(1)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
