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

Its parts, each a module of its own: `seqpipe.taskfile.splits` (the file as three split sources read
in blocks, no torch: what validation uses), `seqpipe.taskfile.rows` (where a split's rows come from),
`seqpipe.taskfile.encoding` (inputs and targets as the model sees them), `seqpipe.taskfile.stats` (one-pass
moments, the negligible-spread rule) and `seqpipe.taskfile.batches` (`Batch`, in-memory and streamed
batch sources); import them from here.

Root-level files of classification tasks are split stratified by class, keeping every source item
in one split (`seqpipe.taskfile.hdf5.auto_split_indices`). Streaming a root-level file reads the span
of each run of consecutive split rows and keeps the split's rows; write train/val/test groups for
large files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqpipe.config.types import Task
from seqpipe.taskfile.batches import Batch, MemorySplit, StreamSplit, epoch_order
from seqpipe.taskfile.encoding import encode_inputs, one_hot, targets
from seqpipe.taskfile.hdf5 import is_one_hot_task, is_presplit, open_h5, read_attrs
from seqpipe.taskfile.rollout import is_rollout_task, rollout_spec
from seqpipe.taskfile.rows import ArrayRows, H5Rows
from seqpipe.taskfile.splits import (
    BLOCK_SHARE,
    default_budget_mb,
    STATS_CHUNK_BYTES,
    SplitFile,
    SplitSource,
    add_budget_option,
    names_attr,
    open_splits,
    require_samples,
)
from seqpipe.taskfile.stats import CONSTANT_REL_STD, Moments, finish_standardisation, is_one_hot, negligible_spread, standardisation
from seqpipe.datasets import SPLITS

__all__ = [  # the reader's interface; batches, encoding, rows and stats are its parts
    "Batch", "MemorySplit", "StreamSplit", "epoch_order", "encode_inputs", "one_hot", "targets", "ArrayRows", "H5Rows",
    "Moments", "is_one_hot", "standardisation", "SplitReader", "TaskFile", "TrainingData", "open_task",
    "training_data", "estimate_mb", "add_budget_option",
    "file_names", "task_dims", "require_samples", "SplitFile", "SplitSource", "open_splits", "names_attr",
    "BLOCK_SHARE", "default_budget_mb", "STATS_CHUNK_BYTES",
]

log = logging.getLogger("seqpipe.reader")

# --------------------------------------------------------------------------------------------
# One split


class SplitReader(SplitSource, torch.utils.data.Dataset):
    """One split of a task's file (`SplitSource`) with statistics and batch sources.

    As a map-style Dataset, `split[positions]` is the `Batch` of those positions (numpy in, tensors out).
    """

    def __getitem__(self, positions) -> Batch:
        x, y, d = self.read(np.asarray(positions, dtype=np.int64))
        return Batch(torch.from_numpy(x), torch.from_numpy(y), None if d is None else torch.from_numpy(d))

    def moments(self, what: str = "x", budget_mb: float | None = None, detect_one_hot: bool = True) -> Moments:
        """One pass over the split's inputs (`x`) or targets (`y`) in blocks: float64 moments per column."""
        moments = Moments(detect=detect_one_hot)
        key = "data" if what == "x" or self.task.is_reconstruction else "labels"
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
        width = self.input_shape()[-1] if what == "x" or self.task.is_reconstruction else self.shape("labels")[-1]
        if one_hot_inputs:  # left as they are: no pass needed
            return torch.zeros(width), torch.ones(width)
        features = what == "x" or self.task.is_reconstruction  # regression targets keep small spreads
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


def file_names(path: str | Path, task: Task, in_dim: int, attrs: dict | None = None) -> dict:
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


def task_dims(task: Task, x: torch.Tensor, y: dict[str, torch.Tensor], names: dict) -> dict:
    """build_model's keyword arguments; fills default class or target names into `names`.

    `x` and `y` may be meta tensors (shapes only), except classification labels when the class
    count comes from the largest label.
    """
    _, seq_len, in_dim = x.shape
    out_len = None
    if task.is_classification:
        n_classes = task.num_classes or len(names.get("class_names", [])) or int(max(int(t.max()) for t in y.values() if t.numel())) + 1
        names.setdefault("class_names", [str(i) for i in range(n_classes)])
        out_dim, target_dim = n_classes, None
        if task.is_seq2seq:
            out_len = y["train"].shape[1]
    elif task.is_reconstruction:
        out_dim, target_dim, out_len = in_dim, in_dim, seq_len
    else:
        out_dim = target_dim = y["train"].shape[-1]
        if task.is_seq2seq:
            out_len = y["train"].shape[1]
        names.setdefault("target_names", [f"target_{i}" for i in range(out_dim)])
    return {"in_dim": in_dim, "seq_len": seq_len, "out_dim": out_dim, "mapping": task.mapping, "out_len": out_len, "target_dim": target_dim}


class TaskFile(SplitFile):
    """A task's file opened for reading: one `SplitReader` per split, names, dimensions, the budget.

    `memory_budget_mb` decides, per stage, whether the splits it reads are held in memory
    (`source`, `fits`); `device` is where in-memory splits are placed.
    """

    split_class = SplitReader

    def __init__(self, path: str | Path, task: Task, memory_budget_mb: float | None = None, device: torch.device | str = "cpu",
                 num_workers: int = 0):
        super().__init__(path, task, memory_budget_mb)
        self.device, self.num_workers = torch.device(device), num_workers
        self._dims: dict | None = None
        self._names: dict | None = None
        self._memory: dict[str, MemorySplit] = {}

    def __getitem__(self, split: str) -> SplitReader:
        return self.splits[split]

    # -- names and model dimensions (from shapes; classification labels only when the class count is unknown)
    def _describe(self) -> None:
        self.require_samples()
        train = self.splits["train"]
        x_meta = torch.empty((train.n, *train.input_shape()), device="meta")
        names = file_names(self.path, self.task, x_meta.shape[-1], self.attrs)
        if self.task.is_classification and not (self.task.num_classes or names.get("class_names")):
            y = {s: torch.from_numpy(targets(self.task, None, self.splits[s].labels())) for s in SPLITS}
        elif self.task.is_reconstruction:
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

    @property
    def item_ids(self) -> dict[str, np.ndarray]:
        """Split -> the source item of each sample (str), for the splits whose file has `item_ids`."""
        ids = {s: self.splits[s].item_ids() for s in SPLITS}
        return {s: v for s, v in ids.items() if v is not None}

    @property
    def domains(self) -> dict[str, torch.Tensor]:
        """Split -> the domain id of each sample (int64), for the splits whose file has `domains`."""
        found = {s: self.splits[s].domains() for s in SPLITS}
        return {s: torch.as_tensor(np.asarray(v, dtype=np.int64)) for s, v in found.items() if v is not None}


def open_task(path: str | Path, task: Task, memory_budget_mb: float | None = None, device: torch.device | str = "cpu",
              num_workers: int = 0) -> TaskFile:
    """Open a task's file for reading (see the module docstring)."""
    return TaskFile(path, task, memory_budget_mb, device, num_workers)


def estimate_mb(path: str | Path, task: Task) -> float:
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
                shape = (*shape[:2], int(task.vocab_size or 1))
            total += math.prod(shape) * 4 * (2 if task.is_reconstruction else 1)
            if "labels" in group and not task.is_reconstruction:
                total += math.prod(group["labels"].shape) * 8
    return total / 2**20


# --------------------------------------------------------------------------------------------
# What training reads


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


def training_data(path: str | Path, task: Task, memory_budget_mb: float | None = None, num_workers: int = 0,
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
