"""Helpers only the tests use (moved out of the package: issue 21 item 4). Import as `from taskfiles import ...`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from seqpipe.config.types import Task
from seqpipe.taskfile.hdf5 import DEFAULT_FRACTIONS, Split
from seqpipe.taskfile.reader import TaskFile, TrainingData, open_task, training_data
from seqpipe.datasets import SPLITS


class WholeTask(TaskFile):
    """A task file with every split readable in memory through `.x` / `.y` (split -> tensor)."""

    @property
    def x(self) -> dict[str, torch.Tensor]:
        return {s: self.memory(s).x for s in SPLITS}

    @property
    def y(self) -> dict[str, torch.Tensor]:
        return {s: self.memory(s).y for s in SPLITS}


def as_task(task: Task | Mapping) -> Task:
    """A test's task as the data layer takes it: a `Task`, or its settings (`Task.from_dict`)."""
    return task if isinstance(task, Task) else Task.from_dict(task)


def load_task_data(path: str | Path, task: Task | Mapping, split_seed: int | None = None) -> WholeTask:
    """The task's file with every split readable in memory (`.x`, `.y`); `split_seed` overrides the task's."""
    task = as_task(task)
    if split_seed is not None:
        task = task.with_data(split_seed=split_seed)
    data = WholeTask(path, task, math.inf)
    data.require_samples()
    return data


def memory_task_data(path: str | Path, task: Task | Mapping, device: torch.device | str = "cpu") -> TrainingData:
    """TrainingData with train and val in memory."""
    return training_data(path, as_task(task), math.inf, 0, device)


def stream_task_data(path: str | Path, task: Task | Mapping, num_workers: int = 0, device: torch.device | str = "cpu") -> TrainingData:
    """TrainingData whose train and val splits are read from the file batch by batch."""
    return training_data(path, as_task(task), 0.0, num_workers, device)


def load_splits(
    path: str | Path, fractions: list[float] = DEFAULT_FRACTIONS, seed: int = 0, *, task: Task | Mapping | None = None
) -> dict[str, Split]:
    """Read all three splits into memory, auto-splitting a root-level file by `fractions` and `seed`.

    A convenience for small files and tests; stages read through `seqpipe.taskfile.reader`. `task`
    (optional) selects how the file is read (`format: rollout`, stratified classes); its
    `split_fractions` and `split_seed` are replaced by `fractions` and `seed`; without one the file is read as a
    seq2static regression task's (labels as stored, no stratification).
    """
    task = as_task(task or {"name": "<file>", "type": "regression", "mapping": "seq2static"})
    task = task.with_data(split_fractions=list(fractions), split_seed=seed)
    data = open_task(path, task)
    try:
        out = {}
        for name, split in data.splits.items():
            every = np.arange(split.n)
            out[name] = Split(data=split.rows.read("data", every), labels=split.rows.read("labels", every), item_ids=split.item_ids())
        return out
    finally:
        data.close()
