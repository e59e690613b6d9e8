"""Batch sources of one split: in memory on the training device, or streamed from the file.

Both take the same `order` (a permutation of the split's positions, `epoch_order`) and yield the
same `Batch(x, y, domain)` tensors, and both shuffle sample by sample unless `training.shuffle_block` says
otherwise, so a streamed run trains exactly like an in-memory one: `memory_budget_mb` changes no result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

if TYPE_CHECKING:
    from seqpipe.taskfile.reader import SplitReader


class Batch(NamedTuple):
    """One batch: model inputs, targets, and domain ids (None when the file has no `domains`)."""

    x: torch.Tensor
    y: torch.Tensor
    domain: torch.Tensor | None


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
        """1, as in memory: the memory budget decides only where batches come from, never their order
        (a result-neutral setting). `training.shuffle_block` trades a coarser shuffle for fewer reads."""
        return 1

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        """Batches of `batch_size` samples read from the file, in `order` (None: in file order)."""
        order = torch.arange(len(self)) if order is None else order.cpu()
        self.sampler.batches = [idx.numpy() for idx in order.split(batch_size)]
        return iter(self.loader)
