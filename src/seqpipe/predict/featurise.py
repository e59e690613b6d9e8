"""A raw file's windows through a run's feature set: the feature builder's extraction and windowing
(`seqpipe.features.extract`, `seqpipe.features.windows`), without labels and without a split.

Files are extracted in worker processes with the feature set's per-file timeout, at most a few in
flight, and come back in order, so memory holds the windows of a few files whatever their number.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.extract import extract_stream, kind_module
from seqpipe.features.windows import item_windows, step_target_names
from seqpipe.predict.inputs import Source

BLOCK_BYTES = 64 * 2**20  # the float32 inputs read from an HDF5 input at a time


@dataclass
class Windows:
    """One source's model inputs [n, T, D] and the start time of each window in seconds (or why it has none)."""

    source: Source
    data: np.ndarray | None
    start_s: np.ndarray | None
    reason: str | None = None


@dataclass
class Block:
    """Consecutive samples of an HDF5 input: their item ids, model inputs [n, T, D] and start times in seconds."""

    item_ids: np.ndarray
    data: np.ndarray
    start_s: np.ndarray

    def runs(self) -> Iterator[tuple[int, int]]:
        """(lo, hi) of each run of consecutive rows of one item."""
        cut = np.flatnonzero(self.item_ids[1:] != self.item_ids[:-1]) + 1
        yield from zip(np.r_[0, cut].tolist(), np.r_[cut, len(self.item_ids)].tolist())


def check_spec(spec: dict) -> None:
    """Raise when raw files cannot go through `spec` without annotations."""
    if step_target_names(spec):
        raise ValueError(f"feature set {spec['name']} ({spec['kind']}) aligns its steps with per-step annotations, which new files "
                         "do not have; predict from an HDF5 file of this feature set instead (see docs/predict.md)")


def step_seconds(source: Source, spec: dict) -> float:
    """Seconds per feature step: 1 / the kind's frame rate, or for tempo-relative grids (drum_grid) one
    step at the file's first tempo; NaN for one-vector summaries."""
    kind = kind_module(spec["kind"])
    rate = float(kind.frame_rate(spec))
    if rate > 0:
        return 1.0 / rate
    if "steps_per_beat" in spec and hasattr(kind, "first_tempo"):
        bpm = source.labels.get("bpm") or kind.first_tempo(source.path)
        return 60.0 / (float(bpm) * spec["steps_per_beat"])
    return math.nan


def file_windows(sources: Iterable[Source], spec: dict, workers: int = 1) -> Iterator[Windows]:
    """Each source's windows, in order; a file that cannot be read gives its reason instead."""
    check_spec(spec)
    pending: deque[Source] = deque()  # results come back in the items' order

    def items() -> Iterator[Item]:
        for source in sources:
            pending.append(source)
            yield Item(item_id=source.item_id, path=source.path, split="test", labels=source.labels)

    for result in extract_stream(items(), spec, workers, spec.get("timeout_s")):
        source = pending.popleft()
        if result.features is None:
            yield Windows(source, None, None, result.reason)
            continue
        data, _, starts = item_windows(result.features, spec, None, [])
        try:
            seconds = step_seconds(source, spec)
        except Exception as err:  # noqa: BLE001 - the tempo of a file that gave features: report, never fail the batch
            yield Windows(source, None, None, f"cannot read its tempo: {type(err).__name__}: {err}")
            continue
        yield Windows(source, data, np.where(starts == 0, 0.0, starts.astype(np.float64) * seconds))


def hdf5_blocks(source: Source, dims: dict, block_bytes: int = BLOCK_BYTES, multiple: int = 1) -> Iterator[Block]:
    """The samples of an HDF5 file in the task's layout (root-level `data`, or `train`/`val`/`test` groups),
    read a block of about `block_bytes` of float32 inputs at a time (memory flat in the file's size). A
    block's rows are a multiple of `multiple` (the forward batch: the same batches whatever the block, so
    the same numbers)."""
    import h5py

    from seqpipe.datasets import SPLITS

    with h5py.File(source.path, "r") as fh:
        groups = [fh] if "data" in fh else [fh[s] for s in SPLITS if s in fh and "data" in fh[s]]
        if not groups:
            raise ValueError("no `data` dataset at the root or in train/val/test groups; expected an HDF5 file in the task's layout")
        rate = float(fh.attrs.get("frame_rate", 0) or 0)
        for group in groups:
            yield from _group_blocks(source, group, dims, rate, block_bytes, multiple)


def _group_blocks(source: Source, group, dims: dict, rate: float, block_bytes: int, multiple: int) -> Iterator[Block]:
    data = group["data"]
    want = (int(dims["seq_len"]), int(dims["in_dim"]))
    if tuple(data.shape[1:]) != want:
        raise ValueError(f"{group.name}/data holds samples of shape {tuple(data.shape[1:])}, the run's model takes {want} "
                         "(window, features); expected a file of the run's feature set")
    rows = max(1, block_bytes // (4 * want[0] * want[1]) // multiple) * multiple
    for lo in range(0, data.shape[0], rows):
        hi = min(lo + rows, data.shape[0])
        ids = (group["item_ids"].asstr()[lo:hi] if "item_ids" in group
               else np.array([f"{source.item_id}:{group.name.strip('/') or 'data'}:{i}" for i in range(lo, hi)]))
        starts = group["window_start"][lo:hi].astype(np.float64) / rate if "window_start" in group and rate > 0 else np.full(hi - lo, np.nan)
        yield Block(ids, data[lo:hi].astype(np.float32, copy=False), starts)
