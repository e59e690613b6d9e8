"""One reader for every stage: a task's splits, in memory under the budget, streamed in blocks above it.

`open_task(path, task, memory_budget_mb)` opens a task's file in any of its layouts (train/val/test
groups, root-level `data` auto-split by fractions and seed, int token ids one-hot encoded, a
rollout file) and gives, per split, a `SplitReader`: its length, the shapes and dtypes in the file,
item ids, domain ids, and three ways to read it:

- `raw_blocks(...)`: contiguous blocks of the raw arrays (validation checks them block by block);
- `moments(...)`: one-pass mean and variance of inputs or targets in float64 (Chan et al.'s merge
  of per-block moments; one block gives exactly the in-memory values);
- `source(...)`: the split as batches of `Batch(x, y, domain)` tensors, held in memory (on the
  training device, batched there) when it fits the stage's budget, else read from the file through
  a DataLoader (`StreamSplit`, pinned and prefetched on CUDA).

Both batch sources take the same `order` (a permutation of the split's positions) and give the
same batches, so a streamed run trains exactly like an in-memory one. Memory of a streamed stage is
bounded by the budget: blocks hold at most budget / BLOCK_SHARE bytes of one array, and only the
small per-sample arrays (labels of classification tasks, item ids, domains) are read whole.

Its parts, each a module of its own: `seqpipe.data.rows` (where a split's rows come from),
`seqpipe.data.encoding` (inputs and targets as the model sees them), `seqpipe.data.stats` (one-pass
moments, the negligible-spread rule) and `seqpipe.data.batches` (`Batch`, in-memory and streamed
batch sources); import them from here.

Root-level files of classification tasks are split stratified by class, keeping every source item
in one split (`seqpipe.data.hdf5.auto_split_indices`). Streaming a root-level file reads the span
of each run of consecutive split rows and keeps the split's rows; write train/val/test groups for
large files.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqpipe.data.batches import Batch, MemorySplit, StreamSplit, epoch_order
from seqpipe.data.encoding import encode_inputs, one_hot, targets
from seqpipe.data.hdf5 import (
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
from seqpipe.data.rollout import is_rollout_task, read_rollout, rollout_spec
from seqpipe.data.rows import ArrayRows, H5Rows
from seqpipe.data.stats import CONSTANT_REL_STD, Moments, finish_standardisation, is_one_hot, negligible_spread, standardisation
from seqpipe.datasets import SPLITS

__all__ = [  # the reader's interface; batches, encoding, rows and stats are its parts
    "Batch", "MemorySplit", "StreamSplit", "epoch_order", "encode_inputs", "one_hot", "targets", "ArrayRows", "H5Rows",
    "Moments", "is_one_hot", "standardisation", "SplitReader", "TaskFile", "TaskData", "TrainingData", "open_task",
    "load_task_data", "training_data", "memory_task_data", "stream_task_data", "estimate_mb", "add_budget_option",
    "file_names", "task_dims", "require_samples",
]

log = logging.getLogger("seqpipe.reader")

DEFAULT_BUDGET_MB = 2048.0  # the schema's training.memory_budget_mb default
BLOCK_SHARE = 8  # a block of one array takes at most budget / BLOCK_SHARE (float64 copies and temporaries fit)
STATS_CHUNK_BYTES = 64 * 2**20  # the largest block read at a time, whatever the budget


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    """`--memory-budget-mb MB`: the stage's memory budget (default: $SEQPIPE_MEMORY_BUDGET_MB, else 2048)."""
    default = float(os.environ.get("SEQPIPE_MEMORY_BUDGET_MB") or DEFAULT_BUDGET_MB)
    parser.add_argument(
        "--memory-budget-mb", type=float, default=default, metavar="MB",
        help="splits that need at most this many MB are read into memory, larger ones in blocks from the file "
             f"(default: $SEQPIPE_MEMORY_BUDGET_MB, else {DEFAULT_BUDGET_MB:g}; the workflow passes training.memory_budget_mb)",
    )


# --------------------------------------------------------------------------------------------
# One split


class SplitReader(torch.utils.data.Dataset):
    """One split of a task's file: sizes, shapes, ids, blocks, statistics and batch sources.

    As a map-style Dataset, `split[positions]` is the `Batch` of those positions (numpy in, tensors out).
    """

    def __init__(self, path: str | Path, name: str, task: dict, rows: H5Rows | ArrayRows, where: str):
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
            return (shape[1], int(self.task.get("vocab_size") or 1))
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
        y = x if self.task["type"] == "reconstruction" else self.n * (self.row_bytes("labels") if self.has("labels") else 0)
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
        labels = None if self.task["type"] == "reconstruction" else self.rows.read("labels", positions)
        y = np.ascontiguousarray(targets(self.task, x, labels))
        domain = self.rows.read("domains", positions)
        return x, y, None if domain is None else domain.astype(np.int64)

    def __getitem__(self, positions) -> Batch:
        x, y, d = self.read(np.asarray(positions, dtype=np.int64))
        return Batch(torch.from_numpy(x), torch.from_numpy(y), None if d is None else torch.from_numpy(d))

    def moments(self, what: str = "x", budget_mb: float | None = None, detect_one_hot: bool = True) -> Moments:
        """One pass over the split's inputs (`x`) or targets (`y`) in blocks: float64 moments per column."""
        moments = Moments(detect=detect_one_hot)
        key = "data" if what == "x" or self.task["type"] == "reconstruction" else "labels"
        step = self.block_rows(key, budget_mb)
        for start in range(0, self.n, step):
            positions = np.arange(start, min(self.n, start + step))
            if key == "data":
                block = self.inputs(positions)
            else:
                block = targets(self.task, None, self.rows.read("labels", positions))
            moments.add(torch.from_numpy(np.ascontiguousarray(block)))
        return moments

    def standardisation(self, what: str = "x", one_hot_inputs: bool | None = None, budget_mb: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`standardisation` of inputs or targets in one pass of blocks (one block: the in-memory values)."""
        width = self.input_shape()[-1] if what == "x" or self.task["type"] == "reconstruction" else self.shape("labels")[-1]
        if one_hot_inputs:  # left as they are: no pass needed
            return torch.zeros(width), torch.ones(width)
        features = what == "x" or self.task["type"] == "reconstruction"  # regression targets keep small spreads
        moments = self.moments(what, budget_mb, detect_one_hot=one_hot_inputs is None)
        mean, std = finish_standardisation(moments, one_hot_inputs, width, features)
        if features and moments.mean is not None and moments.count > 1 and not (one_hot_inputs is None and moments.one_hot):
            raw = moments.std()
            tiny = ((raw >= 1e-8) & negligible_spread(moments.mean, raw)).nonzero().flatten().tolist()
            if tiny:
                log.warning("%s: %d %s column(s) %s have a train std below %g x max(1, |mean|) (largest %.3g); "
                            "treated as constant (centred, not scaled)", self.where, len(tiny), "input" if what == "x" else "reconstruction target",
                            tiny[:10], CONSTANT_REL_STD, float(raw[tiny].max()))
        return mean, std

    def memory(self, device: torch.device | str = "cpu") -> MemorySplit:
        """The whole split as tensors on `device` (read once, copied once)."""
        x, y, d = self.read(np.arange(self.n))
        self.rows.close()
        device = torch.device(device)
        move = (lambda t: t.to(device)) if device.type != "cpu" else (lambda t: t)  # noqa: E731
        return MemorySplit(move(torch.from_numpy(x)), move(torch.from_numpy(y)), None if d is None else move(torch.from_numpy(d)))

    def stream(self, num_workers: int = 0, device: torch.device | str = "cpu") -> StreamSplit:
        """The split read from the file batch by batch."""
        return StreamSplit(self, num_workers, device)


# --------------------------------------------------------------------------------------------
# The task's file


def require_samples(path: str | Path, sizes: dict[str, int]) -> None:
    """Fail with the fix when a split has no samples (a file too small for its auto-split)."""
    empty = [s for s in SPLITS if sizes[s] == 0]
    if empty:
        raise ValueError(
            f"{path}: split(s) {empty} have no samples (sizes {sizes}); expected at least one sample per split; "
            "add samples (a root-level or rollout file needs at least 3) or write train/val/test groups"
        )


def file_names(path: str | Path, task: dict, in_dim: int, attrs: dict | None = None) -> dict:
    """class_names / target_names / feature_names from the file's attributes or the rollout selection."""
    if is_rollout_task(task):
        spec = rollout_spec(task)
        return {"feature_names": list(spec.in_lbl), "target_names": spec.aliases}
    attrs = read_attrs(path) if attrs is None else attrs
    names = {k: attrs[k] for k in ("class_names", "target_names", "feature_names") if k in attrs}
    if is_one_hot_task(task):
        tokens = attrs.get("token_names")
        names.pop("feature_names", None)
        if isinstance(tokens, list) and len(tokens) == in_dim:
            names["feature_names"] = tokens
    return names


def task_dims(task: dict, x: torch.Tensor, y: dict[str, torch.Tensor], names: dict) -> dict:
    """build_model's keyword arguments; fills default class or target names into `names`.

    `x` and `y` may be meta tensors (shapes only), except classification labels when the class
    count comes from the largest label.
    """
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


def names_attr(value) -> list[str] | None:
    """A names attribute as a list of str: a string array, or a JSON list in a string; None otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return [str(v) for v in value] if isinstance(value, list) else None


def _root_strata(task: dict, rows: H5Rows) -> np.ndarray | None:
    """Class of each sample for a stratified auto-split (seq2static classification with int labels), else None."""
    if task.get("type") != "classification" or task.get("mapping", "seq2static") != "seq2static":
        return None
    dtype = rows.dtype("labels")
    if dtype is None or dtype.kind not in "iu" or len(rows.shape("labels")) != 1 or rows.file_length("labels") != rows.n:
        return None  # not class ids, or a length validation reports
    return rows.read_all("labels")


def _open_splits(path: str, task: dict) -> tuple[dict[str, H5Rows | ArrayRows], bool]:
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


class TaskFile:
    """A task's file opened for reading: one `SplitReader` per split, names, dimensions, the budget.

    `memory_budget_mb` decides, per stage, whether the splits it reads are held in memory
    (`source`, `fits`); `device` is where in-memory splits are placed.
    """

    def __init__(self, path: str | Path, task: dict, memory_budget_mb: float = DEFAULT_BUDGET_MB, device: torch.device | str = "cpu",
                 num_workers: int = 0):
        self.path, self.task = str(path), task
        self.memory_budget_mb, self.device, self.num_workers = float(memory_budget_mb), torch.device(device), num_workers
        rows, self.presplit = _open_splits(self.path, task)
        self.splits = {s: SplitReader(self.path, s, task, rows[s], f"{self.path} [{s}]" if self.presplit else f"{self.path} [auto-split {s}]")
                       for s in SPLITS}
        self.attrs = {} if is_rollout_task(task) else read_attrs(self.path)
        self.input_encoding = "one_hot" if is_one_hot_task(task) else "dense"
        self.domain_names = names_attr(self.attrs.get("domain_names"))
        self._dims: dict | None = None
        self._names: dict | None = None
        self._memory: dict[str, MemorySplit] = {}

    def __getitem__(self, split: str) -> SplitReader:
        return self.splits[split]

    def sizes(self) -> dict[str, int]:
        return {s: self.splits[s].n for s in SPLITS}

    def require_samples(self) -> None:
        require_samples(self.path, self.sizes())

    # -- names and model dimensions (from shapes; classification labels only when the class count is unknown)
    def _describe(self) -> None:
        self.require_samples()
        train = self.splits["train"]
        x_meta = torch.empty((train.n, *train.input_shape()), device="meta")
        names = file_names(self.path, self.task, x_meta.shape[-1], self.attrs)
        if self.task["type"] == "classification" and not (self.task.get("num_classes") or names.get("class_names")):
            y = {s: torch.from_numpy(targets(self.task, None, self.splits[s].labels())) for s in SPLITS}
        elif self.task["type"] == "reconstruction":
            y = {s: torch.empty((self.splits[s].n, *self.splits[s].input_shape()), device="meta") for s in SPLITS}
        else:
            shapes = {s: self.splits[s].shape("labels") for s in SPLITS}
            if any(shape is None for shape in shapes.values()):
                targets(self.task, None, None)  # raises: the task needs labels
            y = {s: torch.empty(shapes[s], device="meta") for s in SPLITS}
        self._dims = task_dims(self.task, x_meta, y, names)
        self._names = names

    @property
    def dims(self) -> dict:
        if self._dims is None:
            self._describe()
        return self._dims

    @property
    def names(self) -> dict:
        if self._names is None:
            self._describe()
        return self._names

    # -- placement
    def fits(self, splits: tuple[str, ...]) -> bool:
        """True when `splits` together fit the memory budget."""
        return sum(self.splits[s].estimate_mb() for s in splits) <= self.memory_budget_mb

    def memory(self, split: str) -> MemorySplit:
        """`split` in memory on the device (read once per TaskFile)."""
        if split not in self._memory:
            self._memory[split] = self.splits[split].memory(self.device)
        return self._memory[split]

    def source(self, split: str, in_memory: bool | None = None) -> MemorySplit | StreamSplit:
        """`split` as a batch source: in memory when it fits the budget (or `in_memory`), else streamed."""
        if in_memory is None:
            in_memory = self.fits((split,))
        return self.memory(split) if in_memory else self.splits[split].stream(self.num_workers, self.device)

    def standardisation(self, what: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
        """Train-split statistics of inputs (`x`) or targets (`y`), in blocks under the budget."""
        one_hot = self.input_encoding == "one_hot" if what == "x" else None
        return self.splits["train"].standardisation(what, one_hot, self.memory_budget_mb)

    # -- the in-memory view older callers use (every split read whole)
    @property
    def x(self) -> dict[str, torch.Tensor]:
        return {s: self.memory(s).x for s in SPLITS}

    @property
    def y(self) -> dict[str, torch.Tensor]:
        return {s: self.memory(s).y for s in SPLITS}

    def close(self) -> None:
        for split in self.splits.values():
            split.rows.close()


def open_task(path: str | Path, task: dict, memory_budget_mb: float = DEFAULT_BUDGET_MB, device: torch.device | str = "cpu",
              num_workers: int = 0) -> TaskFile:
    """Open a task's file for reading (see the module docstring)."""
    return TaskFile(path, task, memory_budget_mb, device, num_workers)


def estimate_mb(path: str | Path, task: dict) -> float:
    """Memory (MB) the three splits take as model inputs and targets (float32; one-hot expanded)."""
    if is_rollout_task(task):
        return 0.0
    with open_h5(path) as fh:
        groups = [fh[s] for s in SPLITS] if is_presplit(fh) else [fh]
        total = 0
        for group in groups:
            if "data" not in group:
                return 0.0  # the reader names the problem
            shape = group["data"].shape
            if is_one_hot_task(task):
                shape = (*shape[:2], int(task.get("vocab_size") or 1))
            total += math.prod(shape) * 4 * (2 if task["type"] == "reconstruction" else 1)
            if "labels" in group and task["type"] != "reconstruction":
                total += math.prod(group["labels"].shape) * 8
    return total / 2**20


# --------------------------------------------------------------------------------------------
# What training reads


TaskData = TaskFile  # every split in memory through `.x` / `.y` (`load_task_data`)


def load_task_data(path: str | Path, task: dict, split_seed: int | None = None) -> TaskFile:
    """The task's file with every split readable in memory (`.x`, `.y`); `split_seed` overrides the task's."""
    if split_seed is not None:
        task = {**task, "split_seed": split_seed}
    data = open_task(path, task, math.inf)
    data.require_samples()
    return data


@dataclass
class TrainingData:
    """What training needs: batch sources for train and val, model dimensions, normalisation statistics."""

    splits: dict  # train, val -> MemorySplit or StreamSplit
    dims: dict
    names: dict = field(default_factory=dict)
    input_encoding: str = "dense"
    x_stats: tuple[torch.Tensor, torch.Tensor] | None = None
    y_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # None when there are no float targets
    streaming: bool = False
    domain_names: list[str] | None = None


def training_data(path: str | Path, task: dict, memory_budget_mb: float = DEFAULT_BUDGET_MB, num_workers: int = 0,
                  device: torch.device | str = "cpu") -> TrainingData:
    """Train and val as batch sources (in memory on `device` when both fit the budget, else streamed) and the
    train-split statistics."""
    data = open_task(path, task, memory_budget_mb, device, num_workers)
    data.require_samples()
    in_memory = data.fits(("train", "val"))
    if not in_memory:
        need = sum(data.splits[s].estimate_mb() for s in ("train", "val"))
        log.info("%s: train and val need about %.0f MB, more than the memory budget of %g MB; reading batches from the file",
                 path, need, memory_budget_mb)
    dims, names = data.dims, data.names
    x_stats = data.standardisation("x")
    y_stats = None
    if dims["target_dim"] is not None:
        y_stats = data.standardisation("y")  # reconstruction: the inputs again, one-hot detected as before
    splits = {s: data.source(s, in_memory) for s in ("train", "val")}
    return TrainingData(splits=splits, dims=dims, names=names, input_encoding=data.input_encoding, x_stats=x_stats,
                        y_stats=y_stats, streaming=not in_memory, domain_names=data.domain_names)


def memory_task_data(path: str | Path, task: dict, device: torch.device | str = "cpu") -> TrainingData:
    """TrainingData with train and val in memory."""
    return training_data(path, task, math.inf, 0, device)


def stream_task_data(path: str | Path, task: dict, num_workers: int = 0, device: torch.device | str = "cpu") -> TrainingData:
    """TrainingData whose train and val splits are read from the file batch by batch."""
    return training_data(path, task, 0.0, num_workers, device)
