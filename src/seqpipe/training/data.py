"""Turn a task's HDF5 splits into tensors, dimensions and normalisation statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqpipe.data.hdf5 import load_splits, read_attrs
from seqpipe.datasets import SPLITS


@dataclass
class TaskData:
    """Inputs and targets per split, and what the model must look like."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    dims: dict  # in_dim, seq_len, out_dim, mapping, out_len, target_dim
    names: dict = field(default_factory=dict)  # class_names / target_names / feature_names


def targets(task: dict, data: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The training target of a sample: class ids, float targets, or the inputs (reconstruction)."""
    if task["type"] == "reconstruction":
        return data
    if labels is None:
        raise KeyError(f"task {task.get('name')}: the file has no `labels`; a {task['type']} task needs them")
    return labels.astype(np.int64) if task["type"] == "classification" else labels.astype(np.float32)


def load_task_data(path: str | Path, task: dict, split_seed: int = 0) -> TaskData:
    """Read the three splits of `path` for `task` into tensors."""
    splits = load_splits(path, task.get("split_fractions", (0.7, 0.15, 0.15)), split_seed)
    attrs = read_attrs(path)
    x = {s: torch.from_numpy(np.ascontiguousarray(splits[s].data, dtype=np.float32)) for s in SPLITS}
    y = {s: torch.from_numpy(np.ascontiguousarray(targets(task, splits[s].data, splits[s].labels))) for s in SPLITS}
    n, seq_len, in_dim = x["train"].shape
    names = {k: attrs[k] for k in ("class_names", "target_names", "feature_names") if k in attrs}
    out_len = None
    if task["type"] == "classification":
        n_classes = task.get("num_classes") or len(names.get("class_names", [])) or int(max(int(t.max()) for t in y.values())) + 1
        names.setdefault("class_names", [str(i) for i in range(n_classes)])
        out_dim, target_dim = n_classes, None
        if task["mapping"] == "seq2seq":
            out_len = y["train"].shape[1]
    elif task["type"] == "reconstruction":
        out_dim, target_dim, out_len = in_dim, in_dim, seq_len
    else:
        out_dim = target_dim = y["train"].shape[-1]
        if task["mapping"] == "seq2seq":
            out_len = y["train"].shape[1]
        names.setdefault("target_names", [f"target_{i}" for i in range(out_dim)])
    dims = {"in_dim": in_dim, "seq_len": seq_len, "out_dim": out_dim, "mapping": task["mapping"], "out_len": out_len, "target_dim": target_dim}
    return TaskData(x=x, y=y, dims=dims, names=names)


def standardisation(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over all but the last axis; std 1 where a feature is constant or N = 1."""
    flat = values.reshape(-1, values.shape[-1]).double()
    mean = flat.mean(0)
    std = flat.std(0, unbiased=False) if len(flat) > 1 else torch.ones_like(mean)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return mean.float(), std.float()
