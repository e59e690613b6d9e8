"""HDF5 dataset files: writing them, their attributes, and the layout rules the reader follows.

Layout (docs/datasets.md): groups `train/`, `val/`, `test/`, each with `data` float32 [N, T, D] and
`labels` (shape and dtype by task type), or root-level `data` + `labels` split by fractions with a
fixed seed (`auto_split_indices`: whole source items, classes stratified). Files written by seqpipe
also hold `item_ids` per sample (the source item of each window, for leakage checks), optionally
`domains` (int64 domain id per sample, names in the root attribute `domain_names`), and root
attributes: feature names, frame rate, class or target names, provenance. Files written by anyone
else in this layout train unchanged. Stages read these files through `seqpipe.taskfile.reader`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from seqpipe.config.types import Task
from seqpipe.taskfile.rollout import looks_like_rollout
from seqpipe.datasets import SPLITS
from seqpipe.io import atomic_path

STR = h5py.string_dtype("utf-8")
DOCS = "docs/datasets.md (the layouts seqpipe reads)"
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
                fh.attrs[key] = attr_value(attrs[key])
            for split in SPLITS:
                group = fh.create_group(split)
                for key, array in splits[split].items():
                    dtype = STR if array.dtype.kind in "UO" else array.dtype
                    group.create_dataset(key, data=array.astype(object) if dtype is STR else array, dtype=dtype)


def attr_value(value):
    """An attribute value as HDF5 stores it: lists of text as string arrays, dicts as JSON."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=STR)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def read_attrs(path: str | Path) -> dict:
    """Root attributes as plain Python values (string arrays become lists of str)."""
    with open_h5(path) as fh:
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


def decode_strings(array: np.ndarray) -> np.ndarray:
    """Variable- or fixed-length HDF5 strings (bytes or str objects) as a numpy str array."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]).reshape(array.shape)


LOCK_HINTS = ("unable to lock file", "resource temporarily unavailable", "errno = 11")  # HDF5 1.10+ file locking


def open_h5(path: str | Path) -> h5py.File:
    """Open an HDF5 file for reading; a file another process holds open for writing gets a message that says so."""
    try:
        return h5py.File(path, "r")
    except OSError as err:
        text = str(err).lower()
        if any(hint in text for hint in LOCK_HINTS):
            raise OSError(
                f"{path}: the file is locked: another process has it open for writing (HDF5 file locking: {err}); "
                "wait until that writer (e.g. a running features job or a script of yours) has finished and closed it, "
                "then rerun; if no writer is running (a crashed one left the lock on a network file system), "
                "set HDF5_USE_FILE_LOCKING=FALSE for this run"
            ) from err
        raise


def _spread_order(groups: np.ndarray, strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Group ids ordered so that every stratum is spread evenly over the order, each in a random order.

    Stratum c's groups, shuffled, get keys (i + u_c) / n_c (u_c uniform in [0, 1)); sorting all groups
    by key puts each stratum's share of any prefix within one group of its share of the whole.
    """
    keys = np.empty(len(groups))
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        members = members[rng.permutation(len(members))]
        keys[members] = (np.arange(len(members)) + rng.random()) / len(members)
    tie_break = rng.permutation(len(groups))
    return groups[np.lexsort((tie_break, keys))]


def auto_split_indices(
    n: int, fractions: list[float], seed: int, groups: np.ndarray | None = None, strata: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Split n samples into train/val/test by fractions with a fixed seed, keeping groups whole.

    `groups` (e.g. item ids) keep every sample of a source item in one split. `strata` (e.g. class
    ids) stratify the split: each stratum lands in train/val/test in the fractions' proportions
    (within one group per stratum and split); a group's stratum is that of its first sample.
    """
    rng = np.random.default_rng(seed)
    fractions = np.asarray(fractions, dtype=float) / np.sum(fractions)
    if groups is None and strata is None:
        order = rng.permutation(n)
        bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
        return {split: np.sort(part) for split, part in zip(SPLITS, np.split(order, bounds))}
    if groups is None:
        groups = np.arange(n)
    unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if strata is None:
        ordered = rng.permutation(len(unique))
    else:
        ordered = _spread_order(np.arange(len(unique)), np.asarray(strata)[first], rng)
    bounds = np.round(np.cumsum(fractions)[:-1] * len(unique)).astype(int)
    part_of = np.empty(len(unique), dtype=np.int64)
    for i, part in enumerate(np.split(ordered, bounds)):
        part_of[part] = i
    sample_part = part_of[inverse.reshape(-1)]
    return {split: np.flatnonzero(sample_part == i) for i, split in enumerate(SPLITS)}


def split_fractions(task: Task) -> tuple[float, ...]:
    """The task's train/val/test fractions for root-level files (default 0.7/0.15/0.15)."""
    return tuple(task.data.get("split_fractions") or DEFAULT_FRACTIONS)


def is_one_hot_task(task: Task) -> bool:
    """True when the task's `data` holds token ids to one-hot encode (`input_encoding: one_hot`)."""
    return task.data.get("input_encoding", "dense") == "one_hot"


def split_seed(task: Task) -> int:
    """The task's auto-split seed (`split_seed`, default 0)."""
    return int(task.data.get("split_seed", 0))


def no_data_message(path: str | Path, fh: h5py.File) -> str:
    """Why a file cannot be read as the seqpipe layout, with the fix."""
    found = sorted(fh.keys())[:8]
    message = (
        f"{path}: no `data` dataset and no train/val/test groups (found keys {found}); expected root-level `data` "
        f"(+ `labels`) or train/val/test groups each with `data`, as {DOCS} shows; write the inputs under `data`"
    )
    if looks_like_rollout(fh):
        message += "; this looks like a rollout file: set tasks.<task>.format: rollout with in_lbl and out_lbl"
    return message
