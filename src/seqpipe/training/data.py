"""Turn a task's HDF5 splits into tensors, dimensions and normalisation statistics.

Inputs are float32 [N, T, D]. With `input_encoding: one_hot` the file holds int token ids [N, T]
or [N, T, 1] and the inputs become one-hot float32 [N, T, vocab_size]. A task with
`format: rollout` reads a rollout file (`seqpipe.data.rollout`) as [N, 1, D_in] / [N, K].

Normalisation statistics come from the train split only (`standardisation`); the model keeps them
as buffers, so evaluation reuses them whatever the val/test distributions are. One-hot inputs are
not standardised (mean 0, std 1): they are already on a unit scale, and standardising a rare token
would blow its column up to about 1/sqrt(frequency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqpipe.data.hdf5 import Split, is_one_hot_task, load_splits, read_attrs, split_fractions
from seqpipe.data.hdf5 import split_seed as task_split_seed
from seqpipe.data.rollout import is_rollout_task, rollout_spec
from seqpipe.datasets import SPLITS


@dataclass
class TaskData:
    """Inputs and targets per split, and what the model must look like."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    dims: dict  # in_dim, seq_len, out_dim, mapping, out_len, target_dim (the keyword arguments of build_model)
    names: dict = field(default_factory=dict)  # class_names / target_names / feature_names
    input_encoding: str = "dense"  # dense or one_hot (one-hot inputs keep mean 0, std 1)
    domains: dict[str, torch.Tensor | None] = field(default_factory=dict)  # int64 [N] per split, None without `domains`


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


def encode_inputs(task: dict, data: np.ndarray, where: str = "data") -> np.ndarray:
    """The model's input array: float32 as stored, or one-hot for token ids."""
    if is_one_hot_task(task):
        if not task.get("vocab_size"):
            raise ValueError(f"config key tasks.{task.get('name', '<task>')}.vocab_size: input_encoding one_hot needs vocab_size")
        return one_hot(np.asarray(data), int(task["vocab_size"]), where)
    return np.ascontiguousarray(data, dtype=np.float32)


def targets(task: dict, data: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The training target of a sample: class ids, float targets, or the (encoded) inputs for reconstruction."""
    if task["type"] == "reconstruction":
        return data
    if labels is None:
        raise KeyError(f"task {task.get('name')}: the file has no `labels`; a {task['type']} task needs them")
    return labels.astype(np.int64) if task["type"] == "classification" else labels.astype(np.float32)


def require_samples(path: str | Path, splits: dict[str, Split]) -> None:
    """Fail with the fix when a split has no samples (a file too small for its auto-split)."""
    empty = [s for s in SPLITS if splits[s].data is None or len(splits[s].data) == 0]
    if empty:
        sizes = {s: 0 if splits[s].data is None else len(splits[s].data) for s in SPLITS}
        raise ValueError(
            f"{path}: split(s) {empty} have no samples (sizes {sizes}); expected at least one sample per split; "
            "add samples (a root-level or rollout file needs at least 3) or write train/val/test groups"
        )


def file_names(path: str | Path, task: dict, in_dim: int) -> dict:
    """class_names / target_names / feature_names from the file's attributes or the rollout selection."""
    if is_rollout_task(task):
        spec = rollout_spec(task)
        return {"feature_names": list(spec.in_lbl), "target_names": spec.aliases}
    attrs = read_attrs(path)
    names = {k: attrs[k] for k in ("class_names", "target_names", "feature_names") if k in attrs}
    if is_one_hot_task(task):
        tokens = attrs.get("token_names")
        names.pop("feature_names", None)
        if isinstance(tokens, list) and len(tokens) == in_dim:
            names["feature_names"] = tokens
    return names


def task_dims(task: dict, x: torch.Tensor, y: dict[str, torch.Tensor], names: dict) -> dict:
    """build_model's keyword arguments; fills default class or target names into `names`."""
    _, seq_len, in_dim = x.shape
    out_len = None
    if task["type"] == "classification":
        n_classes = task.get("num_classes") or len(names.get("class_names", [])) or int(max(int(t.max()) for t in y.values() if t.numel())) + 1
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
    return {"in_dim": in_dim, "seq_len": seq_len, "out_dim": out_dim, "mapping": task["mapping"], "out_len": out_len, "target_dim": target_dim}


def load_task_data(path: str | Path, task: dict, split_seed: int | None = None) -> TaskData:
    """Read the three splits of `path` for `task` into tensors.

    The auto-split seed is `split_seed` when given, else the task's `split_seed` (default 0).
    """
    seed = task_split_seed(task) if split_seed is None else split_seed
    splits = load_splits(path, split_fractions(task), seed, task=task)
    require_samples(path, splits)
    arrays = {s: encode_inputs(task, splits[s].data, f"{path} [{s}]") for s in SPLITS}
    x = {s: torch.from_numpy(arrays[s]) for s in SPLITS}
    y = {s: torch.from_numpy(np.ascontiguousarray(targets(task, arrays[s], splits[s].labels))) for s in SPLITS}
    names = file_names(path, task, x["train"].shape[-1])
    dims = task_dims(task, x["train"], y, names)
    domains = {s: None if splits[s].domains is None else torch.from_numpy(splits[s].domains.astype(np.int64)) for s in SPLITS}
    return TaskData(x=x, y=y, dims=dims, names=names, input_encoding="one_hot" if is_one_hot_task(task) else "dense", domains=domains)


def is_one_hot(values: torch.Tensor) -> bool:
    """True when every vector along the last axis is one-hot (0/1 entries summing to 1, at least 2 entries)."""
    if values.ndim < 2 or values.shape[-1] < 2 or values.numel() == 0 or not values.is_floating_point():
        return False
    return bool(((values == 0) | (values == 1)).all() and (values.sum(-1) == 1).all())


def standardisation(values: torch.Tensor, one_hot_inputs: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over all but the last axis, for the train split only.

    std is 1 where a feature is constant (zero variance) or there is a single row (N = 1 for
    [N, K] targets), so normalising never divides by zero. One-hot values (`one_hot_inputs`, or
    detected when None) get mean 0 and std 1: they are left as they are.
    """
    flat = values.reshape(-1, values.shape[-1]).double()
    if one_hot_inputs or (one_hot_inputs is None and is_one_hot(values)):
        return torch.zeros(values.shape[-1]), torch.ones(values.shape[-1])
    mean = flat.mean(0) if len(flat) else torch.zeros(values.shape[-1], dtype=torch.float64)
    std = flat.std(0, unbiased=False) if len(flat) > 1 else torch.ones_like(mean)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return mean.float(), std.float()
