"""Training batches: a split in memory when it fits `training.memory_budget_mb`, else read from the file.

In memory (the fast default) the splits come from `load_task_data`, exactly what evaluation reads.
A file whose splits do not fit the budget is streamed: `H5Batches` is a map-style Dataset whose
item is one whole batch, read as a few contiguous row ranges of the HDF5 file, with one h5py
handle per DataLoader worker, opened lazily inside the worker. The epoch's order is the same
function (`epoch_order`) on both paths: a shuffled list of contiguous blocks of `shuffle_block`
samples. With blocks of one sample it is `torch.randperm` (the in-memory default); the streaming
default is `batch_size // 8` (each batch is then about 8 contiguous reads). With the same
`shuffle_block` both paths feed the model the same batches in the same order, so their results
are identical (normalisation statistics are computed in float64 either way).

Streaming a root-level file (auto-split by fractions) reads the span of each run of consecutive
split rows and keeps the split's rows, so it over-reads by about 1/fraction; write train/val/test
groups for large files. Rollout files are always read into memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch

from seqpipe.data.hdf5 import auto_split_indices, is_presplit, split_fractions
from seqpipe.data.hdf5 import split_seed as task_split_seed
from seqpipe.data.rollout import is_rollout_task
from seqpipe.datasets import SPLITS
from seqpipe.training.data import encode_inputs, file_names, load_task_data, standardisation, targets, task_dims

log = logging.getLogger("seqpipe.train")
STATS_CHUNK_BYTES = 64 * 2**20  # rows read at a time while computing streamed normalisation statistics


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


class Batch(NamedTuple):
    """One batch: inputs, targets and the domain id per sample (None when the file has no `domains`)."""

    x: torch.Tensor
    y: torch.Tensor
    domain: torch.Tensor | None = None


def epoch_order(n: int, block: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(n) made of shuffled contiguous blocks of `block` samples (block 1: randperm)."""
    if block <= 1:
        return torch.randperm(n, generator=generator)
    starts = torch.randperm(math.ceil(n / block), generator=generator) * block
    order = (starts[:, None] + torch.arange(block)).reshape(-1)
    return order[order < n]


class MemorySplit:
    """A split held as tensors: batches are views (in order) or one gather per batch (shuffled)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, domain: torch.Tensor | None = None):
        self.x, self.y, self.domain = x, y, domain

    def __len__(self) -> int:
        return len(self.x)

    def default_block(self, batch_size: int) -> int:
        return 1  # a full shuffle: gathering from memory costs the same for any order

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        x, y, d = self.x, self.y, self.domain
        if order is None:
            for start in range(0, len(x), batch_size):
                part = slice(start, start + batch_size)
                yield Batch(x[part], y[part], None if d is None else d[part])
        else:
            for idx in order.split(batch_size):
                yield Batch(x.index_select(0, idx), y.index_select(0, idx), None if d is None else d.index_select(0, idx))


class H5Batches(torch.utils.data.Dataset):
    """Batches of one split read from an HDF5 file; `dataset[positions]` is the batch of those samples.

    `positions` index the split (0..n-1); runs of consecutive positions are read as one slice each.
    `rows` maps positions to file rows for a root-level (auto-split) file, None for a split group.
    """

    def __init__(self, path: str | Path, task: dict, group: str, rows: np.ndarray | None, n: int):
        self.path, self.task, self.group, self.rows, self.n = str(path), task, group, rows, n
        self._fh: h5py.File | None = None

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict:  # a worker opens its own handle
        return {**self.__dict__, "_fh": None}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _dataset(self, key: str) -> h5py.Dataset | None:
        if self._fh is None:
            self._fh = h5py.File(self.path, "r")
        node = self._fh[self.group] if self.group else self._fh
        return node[key] if key in node else None

    def read_rows(self, key: str, positions: np.ndarray) -> np.ndarray | None:
        """The values of `key` at `positions`, in that order, read run by run."""
        ds = self._dataset(key)
        if ds is None:
            return None
        parts = []
        for run in np.split(positions, np.flatnonzero(np.diff(positions) != 1) + 1):
            if self.rows is None:
                parts.append(ds[int(run[0]) : int(run[-1]) + 1])
            else:
                rows = self.rows[run]
                parts.append(ds[int(rows[0]) : int(rows[-1]) + 1][rows - rows[0]])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def read_inputs(self, positions: np.ndarray) -> np.ndarray:
        return encode_inputs(self.task, self.read_rows("data", positions), f"{self.path} [{self.group or 'root'}]")

    def __getitem__(self, positions) -> Batch:
        positions = np.asarray(positions, dtype=np.int64)
        x = self.read_inputs(positions)
        labels = None if self.task["type"] == "reconstruction" else self.read_rows("labels", positions)
        y = np.ascontiguousarray(targets(self.task, x, labels))
        domains = self.read_rows("domains", positions)
        return Batch(torch.from_numpy(x), torch.from_numpy(y), None if domains is None else torch.from_numpy(domains.astype(np.int64)))


class _Batches:
    """A sampler whose batches are replaced every epoch (so persistent workers see the new order)."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamSplit:
    """A split read from the file batch by batch through a DataLoader (`num_workers` reader processes)."""

    def __init__(self, dataset: H5Batches, num_workers: int = 0):
        self.dataset, self.sampler = dataset, _Batches()
        # A generator of its own: a DataLoader draws a seed per epoch, which must not move the global RNG.
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=self.sampler, num_workers=num_workers,
                                                  persistent_workers=num_workers > 0, generator=torch.Generator())

    def __len__(self) -> int:
        return len(self.dataset)

    def default_block(self, batch_size: int) -> int:
        return max(1, batch_size // 8)  # about 8 contiguous reads per batch

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        order = torch.arange(len(self)) if order is None else order
        self.sampler.batches = [idx.numpy() for idx in order.split(batch_size)]
        return iter(self.loader)


def split_sources(path: str | Path, task: dict) -> dict[str, H5Batches]:
    """A batch reader per split; a root-level file is auto-split by the task's fractions and seed."""
    with h5py.File(path, "r") as fh:
        if is_presplit(fh):
            return {s: H5Batches(path, task, s, None, len(fh[s]["data"])) for s in SPLITS}
        if "data" not in fh:
            raise KeyError(f"{path}: no `data` dataset and no train/val/test groups; expected the layout of SPEC.md (HDF5 dataset contract)")
        ids = fh["item_ids"][()] if "item_ids" in fh else None
        ids = None if ids is None else np.array([v.decode() if isinstance(v, bytes) else str(v) for v in ids])  # as load_splits reads them
        n = len(fh["data"])
    index = auto_split_indices(n, list(split_fractions(task)), task_split_seed(task), ids)
    return {s: H5Batches(path, task, "", index[s], len(index[s])) for s in SPLITS}


def estimate_mb(path: str | Path, task: dict) -> float:
    """Memory (MB) the three splits take as model inputs and targets (float32; one-hot expanded)."""
    if is_rollout_task(task):
        return 0.0
    with h5py.File(path, "r") as fh:
        groups = [fh[s] for s in SPLITS] if is_presplit(fh) else [fh]
        total = 0
        for group in groups:
            if "data" not in group:
                return 0.0  # let load_task_data name the problem
            shape = group["data"].shape
            if task.get("input_encoding", "dense") == "one_hot":
                shape = (*shape[:2], int(task.get("vocab_size") or 1))
            total += math.prod(shape) * 4 * (2 if task["type"] == "reconstruction" else 1)
            if "labels" in group and task["type"] != "reconstruction":
                total += math.prod(group["labels"].shape) * 8
    return total / 2**20


def streamed_standardisation(source: H5Batches, one_hot_inputs: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`standardisation` of a split's inputs read in chunks (float64 sums; one chunk gives the very same values)."""
    row_bytes = max(1, estimate_row_bytes(source))
    chunk = max(1, STATS_CHUNK_BYTES // row_bytes)
    if source.n <= chunk:
        return standardisation(torch.from_numpy(source.read_inputs(np.arange(source.n))), one_hot_inputs)
    if one_hot_inputs:
        d = source.read_inputs(np.arange(1)).shape[-1]
        return torch.zeros(d), torch.ones(d)
    count, mean, m2, one_hot = 0, None, None, one_hot_inputs is None
    for start in range(0, source.n, chunk):
        part = torch.from_numpy(source.read_inputs(np.arange(start, min(source.n, start + chunk))))
        flat = part.reshape(-1, part.shape[-1]).double()
        if one_hot:
            one_hot = bool(((flat == 0) | (flat == 1)).all() and (flat.sum(-1) == 1).all()) and flat.shape[-1] >= 2
        part_mean = flat.mean(0)
        part_m2 = ((flat - part_mean) ** 2).sum(0)
        if mean is None:
            count, mean, m2 = len(flat), part_mean, part_m2
        else:  # Chan et al.: merge two sets' means and squared deviations
            total = count + len(flat)
            delta = part_mean - mean
            mean = mean + delta * len(flat) / total
            m2 = m2 + part_m2 + delta**2 * count * len(flat) / total
            count = total
    if one_hot:
        return torch.zeros(len(mean)), torch.ones(len(mean))
    std = (m2 / count).sqrt()
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return mean.float(), std.float()


def estimate_row_bytes(source: H5Batches) -> int:
    ds = source._dataset("data")
    row = math.prod(ds.shape[1:])
    if source.task.get("input_encoding", "dense") == "one_hot":
        row = math.prod(ds.shape[1:2]) * int(source.task.get("vocab_size") or 1)
    return row * 4


def stream_task_data(path: str | Path, task: dict, num_workers: int = 0) -> TrainingData:
    """TrainingData whose train and val splits are read from the file batch by batch."""
    sources = split_sources(path, task)
    empty = [s for s in SPLITS if sources[s].n == 0]
    if empty:
        raise ValueError(f"{path}: split(s) {empty} have no samples; expected at least one sample per split; add samples or write train/val/test groups")
    first = {s: sources[s][np.arange(1)] for s in SPLITS}
    x_shape = (sources["train"].n, *first["train"][0].shape[1:])
    x_meta = torch.empty(x_shape, device="meta")
    if task["type"] == "classification":  # the class count needs every label (small)
        y = {s: torch.from_numpy(targets(task, None, sources[s].read_rows("labels", np.arange(sources[s].n)))) for s in SPLITS}
    else:
        y = {s: torch.empty((sources[s].n, *first[s][1].shape[1:]), device="meta") for s in SPLITS}
    names = file_names(path, task, x_shape[-1])
    dims = task_dims(task, x_meta, y, names)
    one_hot = task.get("input_encoding", "dense") == "one_hot"
    x_stats = streamed_standardisation(sources["train"], one_hot)
    y_stats = None
    if dims["target_dim"] is not None:
        if task["type"] == "reconstruction":
            y_stats = streamed_standardisation(sources["train"], None)
        else:
            labels = targets(task, None, sources["train"].read_rows("labels", np.arange(sources["train"].n)))
            y_stats = standardisation(torch.from_numpy(np.ascontiguousarray(labels)))
    for source in sources.values():
        source.close()  # the DataLoader's workers open their own handles
    splits = {s: StreamSplit(sources[s], num_workers) for s in ("train", "val")}
    return TrainingData(splits=splits, dims=dims, names=names, input_encoding="one_hot" if one_hot else "dense",
                        x_stats=x_stats, y_stats=y_stats, streaming=True)


def memory_task_data(path: str | Path, task: dict) -> TrainingData:
    """TrainingData with every split in memory (`load_task_data`, as evaluation reads it)."""
    data = load_task_data(path, task)
    x_stats = standardisation(data.x["train"], one_hot_inputs=data.input_encoding == "one_hot")
    y_stats = standardisation(data.y["train"]) if data.dims["target_dim"] is not None else None
    splits = {s: MemorySplit(data.x[s], data.y[s], data.domains.get(s)) for s in ("train", "val")}
    return TrainingData(splits=splits, dims=data.dims, names=data.names, input_encoding=data.input_encoding, x_stats=x_stats, y_stats=y_stats)


def training_data(path: str | Path, task: dict, memory_budget_mb: float, num_workers: int = 0) -> TrainingData:
    """In memory when the splits fit `memory_budget_mb`, else streamed from the file."""
    need = estimate_mb(path, task)
    if need <= memory_budget_mb:
        return memory_task_data(path, task)
    log.info("%s: the splits need about %.0f MB, more than training.memory_budget_mb = %g; reading batches from the file",
             path, need, memory_budget_mb)
    return stream_task_data(path, task, num_workers)
