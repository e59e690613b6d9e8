"""Trivial baselines on the test split: the train split's majority class, or its mean target.

The train statistics take one pass over the train split in blocks (`seqpipe.data.reader`), and the
test split is scored batch by batch, so memory stays within `--memory-budget-mb` whatever the
file's size.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np

from seqpipe.data.reader import TaskFile, add_budget_option, open_task, targets
from seqpipe.evaluation.evaluate import record, score, score_split
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


def train_mean(data: TaskFile, task: dict) -> np.ndarray:
    """Mean over the train samples (axis 0) of the targets (the inputs for reconstruction), float64 sums, float32."""
    train = data["train"]
    key = "data" if task["type"] == "reconstruction" else "labels"
    step = train.block_rows(key, data.memory_budget_mb)
    total = None
    for start in range(0, train.n, step):
        positions = np.arange(start, min(train.n, start + step))
        block = train.inputs(positions) if key == "data" else targets(task, None, train.rows.read("labels", positions))
        part = block.sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
    return (total / train.n).astype(np.float32)


def baseline_predictions(data: TaskFile, task_type: str) -> np.ndarray:
    """Predictions for the test split that ignore the inputs (classification and regression-like tasks)."""
    task = data.task
    y_test = targets(task, None, data["test"].labels())
    if task_type == "classification":
        return np.full(y_test.shape, majority_class(data), dtype=np.int64)
    mean = train_mean(data, task)
    return np.broadcast_to(mean, (len(y_test), *mean.shape)).copy()


def run_baseline(data: TaskFile, task: dict) -> dict:
    """The baseline's metrics record (model name `baseline`)."""
    data.require_samples()
    if task["type"] == "reconstruction":
        mean = train_mean(data, task)
        n, scored = score_split(task, data, lambda x: np.broadcast_to(mean, (len(x), *mean.shape)))
        return record(task, "baseline", 0, n, scored)
    y_true = targets(task, None, data["test"].labels())
    y_pred = baseline_predictions(data, task["type"])
    return record(task, "baseline", 0, len(y_pred), score(task, y_true, y_pred, data.names))


def main(argv: list[str] | None = None) -> None:
    """`seqpipe baseline --data H5 --task JSON --out metrics.json [--memory-budget-mb MB]`"""
    parser = argparse.ArgumentParser(prog="seqpipe baseline", description="Score a task's trivial baseline on the test split.")
    parser.add_argument("--data", required=True, help="the task's HDF5 file")
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--out", required=True, help="where metrics.json goes")
    add_budget_option(parser)
    args = parser.parse_args(argv)
    task = json.loads(args.task)
    try:
        result = run_baseline(open_task(args.data, task, args.memory_budget_mb), task)
    except (OSError, KeyError, ValueError) as err:  # a locked, unreadable or malformed file: the message says what to do
        log.error("%s", err.args[0] if isinstance(err, KeyError) and err.args else err)
        sys.exit(1)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
