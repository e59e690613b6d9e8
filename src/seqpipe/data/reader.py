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

Root-level files of classification tasks are split stratified by class, keeping every source item
in one split (`seqpipe.data.hdf5.auto_split_indices`). Streaming a root-level file reads the span
of each run of consecutive split rows and keeps the split's rows; write train/val/test groups for
large files.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch

from seqpipe.data.hdf5 import (
    DOCS,
    auto_split_indices,
    decode_strings,
    is_one_hot_task,
    is_presplit,
    no_data_message,
    open_h5,
    read_attrs,
    split_fractions,
    split_seed,
)
from seqpipe.data.rollout import is_rollout_task, read_rollout, rollout_spec
from seqpipe.datasets import SPLITS

log = logging.getLogger("seqpipe.reader")

DEFAULT_BUDGET_MB = 2048.0  # the schema's training.memory_budget_mb default
BLOCK_SHARE = 8  # a block of one array takes at most budget / BLOCK_SHARE (float64 copies and temporaries fit)
STATS_CHUNK_BYTES = 64 * 2**20  # the largest block read at a time, whatever the budget
CONSTANT_REL_STD = 1e-4  # a column whose std is below this x max(1, |mean|) is constant (see `standardisation`)


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    """`--memory-budget-mb MB`: the stage's memory budget (default: $SEQPIPE_MEMORY_BUDGET_MB, else 2048)."""
    default = float(os.environ.get("SEQPIPE_MEMORY_BUDGET_MB") or DEFAULT_BUDGET_MB)
    parser.add_argument(
        "--memory-budget-mb", type=float, default=default, metavar="MB",
        help="splits that need at most this many MB are read into memory, larger ones in blocks from the file "
             f"(default: $SEQPIPE_MEMORY_BUDGET_MB, else {DEFAULT_BUDGET_MB:g}; the workflow passes training.memory_budget_mb)",
    )


class Batch(NamedTuple):
    """One batch: model inputs, targets, and domain ids (None when the file has no `domains`)."""

    x: torch.Tensor
    y: torch.Tensor
    domain: torch.Tensor | None


# --------------------------------------------------------------------------------------------
# Encoding: what the model sees of a sample


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


def targets(task: dict, data: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray:
    """The training target of a sample: class ids, float targets, or the (encoded) inputs for reconstruction."""
    if task["type"] == "reconstruction":
        return data
    if labels is None:
        raise KeyError(f"task {task.get('name')}: the file has no `labels`; a {task['type']} task needs them ({DOCS})")
    return labels.astype(np.int64) if task["type"] == "classification" else labels.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Statistics


def is_one_hot(values: torch.Tensor) -> bool:
    """True when every vector along the last axis is one-hot (0/1 entries summing to 1, at least 2 entries)."""
    if values.ndim < 2 or values.shape[-1] < 2 or values.numel() == 0 or not values.is_floating_point():
        return False
    return bool(((values == 0) | (values == 1)).all() and (values.sum(-1) == 1).all())


@dataclass
class Moments:
    """Count, mean and summed squared deviations per column (float64), mergeable block by block."""

    count: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None
    one_hot: bool = True  # every block so far was one-hot

    def add(self, values: torch.Tensor) -> None:
        """Merge a block [..., D] into the moments (Chan et al.'s parallel update)."""
        flat = values.reshape(-1, values.shape[-1]).double()
        self.one_hot = self.one_hot and is_one_hot(values)
        if not len(flat):
            return
        mean = flat.mean(0)
        m2 = ((flat - mean) ** 2).sum(0)
        if self.mean is None:
            self.count, self.mean, self.m2 = len(flat), mean, m2
            return
        total = self.count + len(flat)
        delta = mean - self.mean
        self.mean = self.mean + delta * len(flat) / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * len(flat) / total
        self.count = total

    def std(self) -> torch.Tensor:
        """Population standard deviation (float64)."""
        return (self.m2 / self.count).sqrt()


def negligible_spread(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Columns whose spread is negligible against their scale: std < CONSTANT_REL_STD * max(1, |mean|).

    Features are stored as float32, often computed from larger float32 quantities (seconds into a
    piece, sample counts); a column that is constant in truth then carries rounding noise of about
    1e-7 of those quantities (~1e-5 for note times of a few minutes). Dividing by that noise turns
    any real variation on the test split into values of ~1e4. A spread under 1e-4 of the column's
    scale (at least 1: the unit scale standardised inputs have) is below what any feature of this
    pipeline means, so such columns are centred but not scaled.
    """
    return std < CONSTANT_REL_STD * torch.clamp(mean.abs(), min=1.0)


def finish_standardisation(moments: Moments, one_hot_inputs: bool | None, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) float32 from merged moments; std 1 for constant, negligible or single-row columns."""
    if one_hot_inputs or (one_hot_inputs is None and moments.one_hot and moments.count) or moments.mean is None:
        return torch.zeros(width), torch.ones(width)
    mean = moments.mean
    if moments.count < 2:
        return mean.float(), torch.ones(width)
    std = moments.std()
    std = torch.where((std < 1e-8) | negligible_spread(mean, std), torch.ones_like(std), std)
    return mean.float(), std.float()


def standardisation(values: torch.Tensor, one_hot_inputs: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over all but the last axis, for the train split only.

    std is 1 where a feature is constant, where its spread is negligible against its scale
    (`negligible_spread`), or where there is a single row, so normalising never divides by (almost)
    zero. One-hot values (`one_hot_inputs`, or detected when None) get mean 0 and std 1.
    """
    moments = Moments()
    moments.add(values)
    return finish_standardisation(moments, one_hot_inputs, values.shape[-1])


# --------------------------------------------------------------------------------------------
# Row sources: where a split's rows come from


def _runs(positions: np.ndarray) -> list[np.ndarray]:
    """Runs of consecutive values in `positions`."""
    return np.split(positions, np.flatnonzero(np.diff(positions) != 1) + 1)


class H5Rows:
    """The rows of one split in an HDF5 file: a group's rows, or the `rows` of a root-level file.

    Holds no open handle when pickled (each DataLoader worker opens its own, lazily).
    """

    def __init__(self, path: str | Path, group: str, rows: np.ndarray | None, n: int):
        self.path, self.group, self.rows, self.n = str(path), group, rows, n
        self._fh: h5py.File | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fh": None}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def dataset(self, key: str) -> h5py.Dataset | None:
        """The split's dataset `key` (None when absent)."""
        if self._fh is None:
            self._fh = open_h5(self.path)
        node = self._fh[self.group] if self.group else self._fh
        value = node.get(key)
        return value if isinstance(value, h5py.Dataset) else None

    def has(self, key: str) -> bool:
        return self.dataset(key) is not None

    def shape(self, key: str) -> tuple[int, ...] | None:
        ds = self.dataset(key)
        return None if ds is None else (self.n, *ds.shape[1:])

    def dtype(self, key: str) -> np.dtype | None:
        ds = self.dataset(key)
        return None if ds is None else ds.dtype

    def file_length(self, key: str) -> int | None:
        ds = self.dataset(key)
        return None if ds is None else (len(ds) if ds.shape else 0)

    def read(self, key: str, positions: np.ndarray) -> np.ndarray | None:
        """Values of `key` at split `positions`, in that order; runs of consecutive positions are one read each."""
        ds = self.dataset(key)
        if ds is None:
            return None
        if not len(positions):
            return np.zeros((0, *ds.shape[1:]), ds.dtype)
        parts = []
        for run in _runs(np.asarray(positions, dtype=np.int64)):
            if self.rows is None:
                parts.append(ds[int(run[0]) : int(run[-1]) + 1])
            else:
                rows = self.rows[run]  # increasing: read their span once and keep the split's rows
                lo, hi = int(rows[0]), int(rows[-1])
                span = ds[lo : hi + 1]
                parts.append(span if hi - lo + 1 == len(rows) else span[rows - lo])
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return decode_strings(out) if out.dtype.kind in "OS" else out

    def read_all(self, key: str) -> np.ndarray | None:
        """Every value of `key` in the split (for small per-sample arrays: labels, item ids, domains)."""
        return self.read(key, np.arange(self.n))


class ArrayRows:
    """The rows of one split held as arrays (rollout files: a few thousand rows of a few numbers)."""

    def __init__(self, arrays: dict[str, np.ndarray | None]):
        self.arrays = {k: v for k, v in arrays.items() if v is not None}
        self.n = len(self.arrays["data"])

    def close(self) -> None:
        pass

    def has(self, key: str) -> bool:
        return key in self.arrays

    def shape(self, key: str) -> tuple[int, ...] | None:
        return self.arrays[key].shape if key in self.arrays else None

    def dtype(self, key: str) -> np.dtype | None:
        return self.arrays[key].dtype if key in self.arrays else None

    def file_length(self, key: str) -> int | None:
        return len(self.arrays[key]) if key in self.arrays else None

    def read(self, key: str, positions: np.ndarray) -> np.ndarray | None:
        return self.arrays[key][np.asarray(positions, dtype=np.int64)] if key in self.arrays else None

    def read_all(self, key: str) -> np.ndarray | None:
        return self.arrays.get(key)


# --------------------------------------------------------------------------------------------
# Batch sources: in memory (on the device) or streamed


def epoch_order(n: int, block: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(n) made of shuffled contiguous blocks of `block` samples (block 1: randperm)."""
    if block <= 1:
        return torch.randperm(n, generator=generator)
    starts = torch.randperm(math.ceil(n / block), generator=generator) * block
    order = (starts[:, None] + torch.arange(block)).reshape(-1)
    return order[order < n]


class MemorySplit:
    """A split held as tensors on one device; batches are views (in order) or one gather on the device (shuffled)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, domain: torch.Tensor | None = None):
        self.x, self.y, self.domain = x, y, domain

    def __len__(self) -> int:
        return len(self.x)

    def default_block(self, batch_size: int) -> int:
        return 1  # a full shuffle: gathering from memory costs the same for any order

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        """Batches of `batch_size` samples, in `order` (positions; None: in file order)."""
        x, y, d = self.x, self.y, self.domain
        if order is None:
            for start in range(0, len(x), batch_size):
                end = start + batch_size
                yield Batch(x[start:end], y[start:end], None if d is None else d[start:end])
            return
        order = order.to(x.device, non_blocking=True)  # one copy per epoch; the gathers run where the data is
        for idx in order.split(batch_size):
            yield Batch(x.index_select(0, idx), y.index_select(0, idx), None if d is None else d.index_select(0, idx))


class _BatchSampler:
    """A sampler whose batches are replaced every epoch (so persistent workers see the new order)."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamSplit:
    """A split read from the file batch by batch through a DataLoader.

    `num_workers` reader processes (each with its own h5py handle) prefetch `prefetch_factor`
    batches each; on CUDA the batches come in pinned memory, so the copy to the device overlaps.
    """

    def __init__(self, split: SplitReader, num_workers: int = 0, device: torch.device | str = "cpu", prefetch_factor: int = 4):
        self.split, self.sampler = split, _BatchSampler()
        split.rows.close()  # the loader's workers (or the first batch) open their own handle
        pin = torch.device(device).type == "cuda"
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor} if num_workers > 0 else {}
        # A generator of its own: a DataLoader draws a seed per epoch, which must not move the global RNG.
        self.loader = torch.utils.data.DataLoader(split, batch_size=None, sampler=self.sampler, num_workers=num_workers,
                                                  pin_memory=pin, generator=torch.Generator(), **extra)

    @property
    def dataset(self) -> SplitReader:
        return self.split

    def __len__(self) -> int:
        return len(self.split)

    def default_block(self, batch_size: int) -> int:
        return max(1, batch_size // 8)  # about 8 contiguous reads per batch

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        """Batches of `batch_size` samples read from the file, in `order` (None: in file order)."""
        order = torch.arange(len(self)) if order is None else order.cpu()
        self.sampler.batches = [idx.numpy() for idx in order.split(batch_size)]
        return iter(self.loader)


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
        y = x if self.task["type"] == "reconstruction" else self.n * (self.row_bytes("labels") * 2 if self.has("labels") else 0)
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

    def moments(self, what: str = "x", budget_mb: float | None = None) -> Moments:
        """One pass over the split's inputs (`x`) or targets (`y`) in blocks: float64 moments per column."""
        moments = Moments()
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
        moments = self.moments(what, budget_mb)
        width = self.input_shape()[-1] if what == "x" or self.task["type"] == "reconstruction" else self.shape("labels")[-1]
        mean, std = finish_standardisation(moments, one_hot_inputs, width)
        if moments.mean is not None and moments.count > 1 and not (one_hot_inputs or (one_hot_inputs is None and moments.one_hot)):
            raw = moments.std()
            tiny = ((raw >= 1e-8) & negligible_spread(moments.mean, raw)).nonzero().flatten().tolist()
            if tiny:
                log.warning("%s: %d %s column(s) %s have a train std below %g x max(1, |mean|) (largest %.3g); "
                            "treated as constant (centred, not scaled)", self.where, len(tiny), "input" if what == "x" else "target",
                            tiny[:10], CONSTANT_REL_STD, float(raw[tiny].max()))
        return mean, std

    def memory(self, device: torch.device | str = "cpu") -> MemorySplit:
        """The whole split as tensors on `device` (read once, copied once)."""
        x, y, d = self.read(np.arange(self.n))
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


def _root_strata(task: dict, rows: H5Rows) -> np.ndarray | None:
    """Class of each sample for a stratified auto-split (seq2static classification with int labels), else None."""
    if task.get("type") != "classification" or task.get("mapping", "seq2static") != "seq2static":
        return None
    dtype = rows.dtype("labels")
    if dtype is None or dtype.kind not in "iu" or len(rows.shape("labels") or ()) != 1:
        return None
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
        self.domain_names = self.attrs.get("domain_names") if isinstance(self.attrs.get("domain_names"), list) else None
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
        y_stats = x_stats if task["type"] == "reconstruction" and data.input_encoding != "one_hot" else data.standardisation("y")
    splits = {s: data.source(s, in_memory) for s in ("train", "val")}
    return TrainingData(splits=splits, dims=dims, names=names, input_encoding=data.input_encoding, x_stats=x_stats,
                        y_stats=y_stats, streaming=not in_memory, domain_names=data.domain_names)


def memory_task_data(path: str | Path, task: dict, device: torch.device | str = "cpu") -> TrainingData:
    """TrainingData with train and val in memory."""
    return training_data(path, task, math.inf, 0, device)


def stream_task_data(path: str | Path, task: dict, num_workers: int = 0, device: torch.device | str = "cpu") -> TrainingData:
    """TrainingData whose train and val splits are read from the file batch by batch."""
    return training_data(path, task, 0.0, num_workers, device)
