"""The columns of the tables `seqpipe predict` and the MLflow model give, from a task's settings alone (no other
seqpipe import than the stdlib-only `seqpipe.config.types`: the model's signature in `seqpipe.tracking.model` and
`seqpipe.predict.tables` share them)."""

from __future__ import annotations

from seqpipe.config.types import Task

ITEM_HEAD = ["item_id", "path", "status", "reason", "n_windows"]
TEXT = frozenset({"item_id", "path", "status", "reason", "predicted"})
INTEGER = frozenset({"window", "step", "n_windows"})


def value_names(task: Task, names: dict) -> list[str]:
    """The value columns of both tables (after `predicted` for classification)."""
    if task.is_classification:
        return [str(c) for c in names["class_names"]]
    if task.is_reconstruction:
        return ["mse"]
    return [str(t) for t in names["target_names"]]


def is_per_step(task: Task) -> bool:
    """Whether a run predicts per step (seq2seq classification or regression: one row per window step)."""
    return task.is_seq2seq and not task.is_reconstruction


def window_columns(task: Task, names: dict) -> list[str]:
    """The window table's header."""
    head = ["item_id", "window", *(["step"] if is_per_step(task) else []), "start_s"]
    return head + (["predicted"] if task.is_classification else []) + value_names(task, names)


def item_columns(task: Task, names: dict) -> list[str]:
    """The item table's header."""
    return ITEM_HEAD + (["predicted"] if task.is_classification else []) + value_names(task, names)


def column_type(column: str) -> str:
    """The MLflow schema type of a column: string, long or double."""
    return "string" if column in TEXT else "long" if column in INTEGER else "double"
