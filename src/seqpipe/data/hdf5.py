"""HDF5 dataset files: the one layout every stage reads and writes (SPEC: HDF5 dataset contract).

Layout: groups `train/`, `val/`, `test/`, each with `data` float32 [N, T, D] and `labels` (shape and
dtype by task type), or root-level `data` + `labels` that `load_splits` splits by fractions with a
fixed seed. Files written by seqpipe also hold `item_ids` per sample (the source item of each
window, for leakage checks) and root attributes: feature names, frame rate, class or target names,
provenance. Files written by anyone else in this layout train unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from seqpipe.datasets import SPLITS
from seqpipe.io import atomic_path

STR = h5py.string_dtype("utf-8")


@dataclass
class Split:
    """The arrays of one split."""

    data: np.ndarray
    labels: np.ndarray | None
    item_ids: np.ndarray | None  # str per sample, or None when the file has none


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

    return Split(data=read("data"), labels=read("labels"), item_ids=read("item_ids"))


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


def load_splits(path: str | Path, fractions: list[float] = (0.7, 0.15, 0.15), seed: int = 0) -> dict[str, Split]:
    """Read all three splits into memory, auto-splitting a root-level file by `fractions` and `seed`."""
    with h5py.File(path, "r") as fh:
        if is_presplit(fh):
            return {split: _read_group(fh[split]) for split in SPLITS}
        if "data" not in fh:
            raise KeyError(
                f"{path}: no `data` dataset and no train/val/test groups; expected the layout of "
                "SPEC.md (HDF5 dataset contract)"
            )
        whole = _read_group(fh)
    index = auto_split_indices(len(whole.data), list(fractions), seed, whole.item_ids)
    return {
        split: Split(
            data=whole.data[idx],
            labels=None if whole.labels is None else whole.labels[idx],
            item_ids=None if whole.item_ids is None else whole.item_ids[idx],
        )
        for split, idx in index.items()
    }
