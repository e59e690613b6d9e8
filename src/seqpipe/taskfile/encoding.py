"""What the model sees of a sample: float32 inputs (token ids one-hot encoded) and the task's targets."""

from __future__ import annotations

import numpy as np

from seqpipe.config.types import Task
from seqpipe.taskfile.hdf5 import DOCS, is_one_hot_task


def one_hot(ids: np.ndarray, vocab_size: int, where: str = "data") -> np.ndarray:
    """Int token ids [N, T] or [N, T, 1] -> one-hot float32 [N, T, vocab_size]."""
    if ids.ndim == 3 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: key `data` is {ids.dtype} {list(ids.shape)}; expected int token ids [N, T] or [N, T, 1] "
            "for input_encoding: one_hot; store ids with data.astype('int64') or use input_encoding: dense"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{where}: key `data` holds token ids {int(ids.min())}..{int(ids.max())}; expected ids in "
            f"[0, vocab_size={vocab_size}); set tasks.<task>.vocab_size to at least {int(ids.max()) + 1}"
        )
    return np.eye(vocab_size, dtype=np.float32)[ids]


def encode_inputs(task: Task, data: np.ndarray, where: str = "data") -> np.ndarray:
    """The model's input array: float32 as stored, or one-hot for token ids."""
    if is_one_hot_task(task):
        if not task.vocab_size:
            raise ValueError(f"config key tasks.{task.name}.vocab_size: input_encoding one_hot needs vocab_size")
        return one_hot(np.asarray(data), int(task.vocab_size), where)
    return np.ascontiguousarray(data, dtype=np.float32)


def targets(task: Task, data: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray:
    """The training target of a sample: class ids, float targets, or the (encoded) inputs for reconstruction."""
    if task.is_reconstruction:
        return data
    if labels is None:
        raise KeyError(f"task {task.name}: the file has no `labels`; a {task.type.value} task needs them ({DOCS})")
    return labels.astype(np.int64) if task.is_classification else labels.astype(np.float32)
