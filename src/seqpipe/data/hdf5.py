"""HDF5 dataset files: the one layout every stage reads and writes (SPEC: HDF5 dataset contract).

Layout: groups `train/`, `val/`, `test/`, each with `data` float32 [N, T, D] and `labels` (shape and
dtype by task type), or root-level `data` + `labels` that `load_splits` splits by fractions with a
fixed seed. Files written by seqpipe also hold `item_ids` per sample (the source item of each
window, for leakage checks) and root attributes: feature names, frame rate, class or target names,
provenance. Files written by anyone else in this layout train unchanged.

A task with `format: rollout` reads a rollout file instead (`seqpipe.data.rollout`): its successful
rollouts become root-level data and are auto-split the same way. docs/datasets.md has the details.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from seqpipe.data.rollout import is_rollout_task, looks_like_rollout, read_rollout, rollout_spec
from seqpipe.datasets import SPLITS
from seqpipe.io import atomic_path

STR = h5py.string_dtype("utf-8")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass
class Split:
    """The arrays of one split."""

    data: np.ndarray
    labels: np.ndarray | None
    item_ids: np.ndarray | None  # str per sample, or None when the file has none
    domains: np.ndarray | None = None  # int64 domain id per sample (root attr `domain_names`), or None


def write_splits(path: str | Path, splits: dict[str, dict[str, np.ndarray]], attrs: dict) -> None:
    """Write pre-split groups atomically. Same arrays and attrs give byte-identical files."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest") as fh:
            for key in sorted(attrs):
                fh.attrs[key] = _attr_value(attrs[key])
            for split in SPLITS:
                group = fh.create_group(split)
                for key, array in splits[split].items():
                    dtype = STR if array.dtype.kind in "UO" else array.dtype
                    group.create_dataset(key, data=array.astype(object) if dtype is STR else array, dtype=dtype)


def _attr_value(value):
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=STR)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def read_attrs(path: str | Path) -> dict:
    """Root attributes as plain Python values (string arrays become lists of str)."""
    with h5py.File(path, "r") as fh:
        out = {}
        for key, value in fh.attrs.items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "O":
                value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        return out


def is_presplit(fh: h5py.File) -> bool:
    """True when the file holds train/val/test groups rather than root-level arrays."""
    return all(isinstance(fh.get(s), h5py.Group) for s in SPLITS)


def _read_group(group: h5py.Group, index: np.ndarray | None = None) -> Split:
    def read(key: str) -> np.ndarray | None:
        if key not in group:
            return None
        array = group[key][()] if index is None else group[key][()][index]
        if array.dtype.kind == "O":
            array = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in array])
        return array

    return Split(data=read("data"), labels=read("labels"), item_ids=read("item_ids"), domains=read("domains"))


def auto_split_indices(n: int, fractions: list[float], seed: int, groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Split n samples into train/val/test by fractions with a fixed seed, keeping groups whole."""
    rng = np.random.default_rng(seed)
    fractions = np.asarray(fractions, dtype=float) / np.sum(fractions)
    if groups is None:
        order = rng.permutation(n)
        bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
        parts = np.split(order, bounds)
    else:
        unique = np.unique(groups)
        shuffled = unique[rng.permutation(len(unique))]
        bounds = np.round(np.cumsum(fractions)[:-1] * len(unique)).astype(int)
        parts = [np.flatnonzero(np.isin(groups, g)) for g in np.split(shuffled, bounds)]
    return {split: np.sort(part) for split, part in zip(SPLITS, parts)}


def split_fractions(task: dict) -> tuple[float, ...]:
    """The task's train/val/test fractions for root-level files (default 0.7/0.15/0.15)."""
    return tuple(task.get("split_fractions") or DEFAULT_FRACTIONS)


def is_one_hot_task(task: dict) -> bool:
    """True when the task's `data` holds token ids to one-hot encode (`input_encoding: one_hot`)."""
    return task.get("input_encoding", "dense") == "one_hot"


def split_seed(task: dict) -> int:
    """The task's auto-split seed (`split_seed`, default 0)."""
    return int(task.get("split_seed", 0))


def _no_data_message(path: str | Path, fh: h5py.File) -> str:
    """Why a file cannot be read as the seqpipe layout, with the fix."""
    message = (
        f"{path}: no `data` dataset and no train/val/test groups; expected the layout of "
        "SPEC.md (HDF5 dataset contract)"
    )
    if looks_like_rollout(fh):
        message += "; this looks like a rollout file: set tasks.<task>.format: rollout with in_lbl and out_lbl"
    return message


def _read_whole(path: str | Path, task: dict | None) -> Split | dict[str, Split]:
    """A pre-split file's three splits, or the root-level (or rollout) arrays still to split."""
    if task is not None and is_rollout_task(task):
        arrays = read_rollout(path, rollout_spec(task))
        return Split(data=arrays.data, labels=arrays.labels, item_ids=arrays.item_ids)
    with h5py.File(path, "r") as fh:
        if is_presplit(fh):
            return {split: _read_group(fh[split]) for split in SPLITS}
        if "data" not in fh:
            raise KeyError(_no_data_message(path, fh))
        return _read_group(fh)


def split_whole(whole: Split, fractions: list[float], seed: int) -> dict[str, Split]:
    """Auto-split root-level arrays by `fractions` and `seed`, keeping item ids whole."""
    index = auto_split_indices(len(whole.data), list(fractions), seed, whole.item_ids)
    return {
        split: Split(
            data=whole.data[idx],
            labels=None if whole.labels is None else whole.labels[idx],
            item_ids=None if whole.item_ids is None else whole.item_ids[idx],
            domains=None if whole.domains is None else whole.domains[idx],
        )
        for split, idx in index.items()
    }


def load_splits(
    path: str | Path, fractions: list[float] = DEFAULT_FRACTIONS, seed: int = 0, *, task: dict | None = None
) -> dict[str, Split]:
    """Read all three splits into memory, auto-splitting a root-level file by `fractions` and `seed`.

    `task` (optional) selects how the file is read: with `format: rollout` its successful rollouts
    (`in_lbl` -> data [N, 1, D], `out_lbl` -> labels [N, K]) are split like a root-level file.
    """
    whole = _read_whole(path, task)
    if isinstance(whole, dict):
        return whole
    return split_whole(whole, fractions, seed)
