"""A task's file as three splits of rows, read in blocks: the part of the reader that needs no torch.

`SplitFile` opens a task's file in any layout (train/val/test groups; root-level `data` auto-split
by fractions and seed, whole items, classes stratified; a rollout file) and gives a `SplitSource`
per split: sizes, shapes, dtypes, item ids, domains, and contiguous blocks of at most
budget / BLOCK_SHARE bytes. Validation reads files through it alone (no torch import);
`seqpipe.taskfile.reader` adds statistics and batches on top.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seqpipe.config.types import Task, runtime_from_env
from seqpipe.taskfile.encoding import encode_inputs, targets
from seqpipe.taskfile.hdf5 import (
    DOCS,
    auto_split_indices,
    is_one_hot_task,
    is_presplit,
    no_data_message,
    open_h5,
    read_attrs,
    split_fractions,
    split_seed,
)
from seqpipe.taskfile.rollout import is_rollout_task, read_rollout, rollout_spec
from seqpipe.taskfile.rows import ArrayRows, H5Rows
from seqpipe.datasets import SPLITS

BLOCK_SHARE = 8  # a block of one array takes at most budget / BLOCK_SHARE (float64 copies and temporaries fit)
STATS_CHUNK_BYTES = 64 * 2**20  # the largest block read at a time, whatever the budget


def default_budget_mb() -> float:
    """The memory budget when a caller gives none: $SEQPIPE_RUNTIME's (the workflow's training.memory_budget_mb),
    else the schema's default for it (the one place defaults live)."""
    runtime = runtime_from_env()
    if runtime is None:  # outside the workflow: read the schema's default (imports jsonschema, so only here)
        from seqpipe.config.load import default_runtime

        runtime = default_runtime()
    return float(runtime.memory_budget_mb)


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    """`--memory-budget-mb MB`: the stage's memory budget (default: default_budget_mb)."""
    default = default_budget_mb()
    parser.add_argument(
        "--memory-budget-mb", type=float, default=default, metavar="MB",
        help="splits that need at most this many MB are read into memory, larger ones in blocks from the file "
             f"(default: $SEQPIPE_RUNTIME's memory_budget_mb, the workflow's training.memory_budget_mb, else the "
             f"schema's default: {default:g})",
    )


class SplitSource:
    """One split of a task's file: sizes, shapes and dtypes, item ids, domains, and contiguous blocks (numpy)."""

    def __init__(self, path: str | Path, name: str, task: Task, rows: H5Rows | ArrayRows, where: str):
        self.path, self.name, self.task, self.rows, self.where = str(path), name, task, rows, where

    # -- what the split holds
    def __len__(self) -> int:
        return self.rows.n

    @property
    def n(self) -> int:
        return self.rows.n

    def has(self, key: str) -> bool:
        return self.rows.has(key)

    def shape(self, key: str) -> tuple[int, ...] | None:
        """Shape of `key` for this split (first axis: the split's sample count)."""
        return self.rows.shape(key)

    def dtype(self, key: str) -> np.dtype | None:
        return self.rows.dtype(key)

    def item_ids(self) -> np.ndarray | None:
        """The source item of each sample (str), or None when the file has no `item_ids`."""
        return self.rows.read_all("item_ids")

    def domains(self) -> np.ndarray | None:
        """The domain id of each sample, or None when the file has no `domains`."""
        return self.rows.read_all("domains")

    def labels(self) -> np.ndarray | None:
        """Every label of the split (small for static tasks; use `raw_blocks` for large ones)."""
        return self.rows.read_all("labels")

    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the model's input (T, D); one-hot: (T, vocab_size)."""
        shape = self.shape("data")
        if shape is None:
            raise KeyError(f"{self.where}: key `data` is missing; expected float32 [N, T, D]; see {DOCS}")
        if is_one_hot_task(self.task):
            return (shape[1], int(self.task.vocab_size or 1))
        return tuple(shape[1:])

    def row_bytes(self, key: str = "data") -> int:
        """Bytes one sample of `key` takes as the model sees it (float32 inputs, one-hot expanded)."""
        if key == "data":
            return max(1, math.prod(self.input_shape()) * 4)
        shape, dtype = self.shape(key), self.dtype(key)
        return 0 if shape is None else max(1, math.prod(shape[1:]) * max(dtype.itemsize, 4))

    def estimate_mb(self) -> float:
        """Memory (MB) the split takes as model inputs, targets and domain ids."""
        if not self.has("data"):
            return 0.0
        x = self.n * self.row_bytes("data")
        y = x if self.task.is_reconstruction else self.n * (self.row_bytes("labels") if self.has("labels") else 0)
        return (x + y + (self.n * 8 if self.has("domains") else 0)) / 2**20

    # -- reading
    def block_rows(self, key: str, budget_mb: float | None) -> int:
        """Rows of `key` per block: budget / BLOCK_SHARE (at most STATS_CHUNK_BYTES), at least one row."""
        limit = STATS_CHUNK_BYTES if budget_mb is None else min(STATS_CHUNK_BYTES, budget_mb * 2**20 / BLOCK_SHARE)
        return max(1, int(limit // max(1, self.row_bytes(key))))

    def raw_blocks(self, key: str, budget_mb: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(start, rows) of the raw array `key` in contiguous blocks, as stored (no encoding)."""
        step = self.block_rows(key, budget_mb)
        for start in range(0, self.n, step):
            yield start, self.rows.read(key, np.arange(start, min(self.n, start + step)))

    def inputs(self, positions: np.ndarray) -> np.ndarray:
        """The model's inputs at `positions` (float32; one-hot expanded)."""
        return encode_inputs(self.task, self.rows.read("data", positions), self.where)

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(x, y, domain) numpy arrays at `positions`."""
        x = self.inputs(positions)
        labels = None if self.task.is_reconstruction else self.rows.read("labels", positions)
        y = np.ascontiguousarray(targets(self.task, x, labels))
        domain = self.rows.read("domains", positions)
        return x, y, None if domain is None else domain.astype(np.int64)


def require_samples(path: str | Path, sizes: dict[str, int]) -> None:
    """Fail with the fix when a split has no samples (a file too small for its auto-split)."""
    empty = [s for s in SPLITS if sizes[s] == 0]
    if empty:
        raise ValueError(
            f"{path}: split(s) {empty} have no samples (sizes {sizes}); expected at least one sample per split; "
            "add samples (a root-level or rollout file needs at least 3) or write train/val/test groups"
        )


def names_attr(value) -> list[str] | None:
    """A names attribute as a list of str: a string array, or a JSON list in a string; None otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return [str(v) for v in value] if isinstance(value, list) else None


def _root_strata(task: Task, rows: H5Rows) -> np.ndarray | None:
    """Class of each sample for a stratified auto-split (seq2static classification with int labels), else None."""
    if not task.is_classification or task.mapping != "seq2static":
        return None
    dtype = rows.dtype("labels")
    if dtype is None or dtype.kind not in "iu" or len(rows.shape("labels")) != 1 or rows.file_length("labels") != rows.n:
        return None  # not class ids, or a length validation reports
    return rows.read_all("labels")


def _open_splits(path: str, task: Task) -> tuple[dict[str, H5Rows | ArrayRows], bool]:
    """Row sources of the three splits, and whether the file is pre-split."""
    fractions, seed = list(split_fractions(task)), split_seed(task)
    if is_rollout_task(task):
        arrays = read_rollout(path, rollout_spec(task))
        index = auto_split_indices(len(arrays.data), fractions, seed, arrays.item_ids)
        whole = {"data": arrays.data, "labels": arrays.labels, "item_ids": arrays.item_ids}
        return {s: ArrayRows({k: v[index[s]] for k, v in whole.items()}) for s in SPLITS}, False
    with open_h5(path) as fh:
        if is_presplit(fh):
            return {s: H5Rows(path, s, None, len(fh[s]["data"]) if "data" in fh[s] else 0) for s in SPLITS}, True
        if "data" not in fh:
            raise KeyError(no_data_message(path, fh))
        n = len(fh["data"])
    whole = H5Rows(path, "", None, n)
    ids, strata = whole.read_all("item_ids"), _root_strata(task, whole)
    whole.close()
    index = auto_split_indices(n, fractions, seed, ids, strata)
    return {s: H5Rows(path, "", index[s], len(index[s])) for s in SPLITS}, False


class SplitFile:
    """A task's file opened for reading: one split source per split, its attributes, the stage's budget."""

    split_class: type = SplitSource

    def __init__(self, path: str | Path, task: Task, memory_budget_mb: float | None = None):
        budget = default_budget_mb() if memory_budget_mb is None else memory_budget_mb
        self.path, self.task, self.memory_budget_mb = str(path), task, float(budget)
        rows, self.presplit = _open_splits(self.path, task)
        self.splits = {s: self.split_class(self.path, s, task, rows[s], f"{self.path} [{s}]" if self.presplit else f"{self.path} [auto-split {s}]")
                       for s in SPLITS}
        self.attrs = {} if is_rollout_task(task) else read_attrs(self.path)
        self.input_encoding = "one_hot" if is_one_hot_task(task) else "dense"
        self.domain_names = names_attr(self.attrs.get("domain_names"))

    def __getitem__(self, split: str):
        return self.splits[split]

    def sizes(self) -> dict[str, int]:
        return {s: self.splits[s].n for s in SPLITS}

    def require_samples(self) -> None:
        require_samples(self.path, self.sizes())

    def fits(self, splits: tuple[str, ...]) -> bool:
        """True when `splits` together fit the memory budget."""
        return sum(self.splits[s].estimate_mb() for s in splits) <= self.memory_budget_mb

    def close(self) -> None:
        for split in self.splits.values():
            split.rows.close()


def open_splits(path: str | Path, task: Task, memory_budget_mb: float | None = None) -> SplitFile:
    """Open a task's file as three split sources (no torch); no budget: default_budget_mb."""
    return SplitFile(path, task, memory_budget_mb)
