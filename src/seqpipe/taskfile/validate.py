"""Validation stage: check a task's HDF5 file against the task type before any training starts.

Every problem found is reported in one message naming the file, the key, what was found, what was
expected and how to fix it; the stage fails if there is any. A clean file gets a JSON summary:
shapes, dtypes, counts per split, class balance and value ranges.

Checks: the task type is one of the six of the contract; `data` (float32 [N, T, D], or int token
ids in [0, vocab_size) for one-hot inputs); `labels` by task type (dtype, shape, N, T per step,
T' = target_seq_len, finite values, class ids); the same per-sample shapes in every split; name
attributes that match the arrays; items leaking across splits; for `format: rollout`, the
rollout file itself (`seqpipe.taskfile.rollout`); `domains` (int [N], ids >= 0 and below the number
of `domain_names`). docs/datasets.md describes the layouts.

Splits are read through `seqpipe.taskfile.splits` (the reader's torch-free part) block by block (contiguous rows, each block at most
`--memory-budget-mb` / 8), so peak memory does not grow with the file; only per-sample ids (item
ids, domains) are held whole.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from seqpipe.config.types import Task, TaskType
from seqpipe.taskfile.hdf5 import is_one_hot_task, is_presplit, open_h5, split_seed
from seqpipe.taskfile.splits import SplitFile, SplitSource, add_budget_option, open_splits
from seqpipe.taskfile.rollout import is_rollout_task, rollout_spec, scan_rollout, spec_problems
from seqpipe.datasets import SPLITS
from seqpipe.io import write_json

log = logging.getLogger("seqpipe.validate")


class ValidationError(ValueError):
    """The file cannot train the task; `problems` holds one message per problem."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


TASK_TYPES = {
    ("supervised", "seq2static", "classification"),
    ("supervised", "seq2static", "regression"),
    ("supervised", "seq2seq", "classification"),
    ("supervised", "seq2seq", "regression"),
    ("self_supervised", "seq2seq", "reconstruction"),
    ("self_supervised", "seq2static", "summary"),
}


def check_task(task: Task) -> list[str]:
    """Problems of the task's own settings: an unknown task type, one-hot without vocab_size, rollout keys."""
    name = task.name
    problems = []
    kind = ("supervised" if task.paradigm is None else task.paradigm, task.mapping, task.type.value)
    if kind not in TASK_TYPES:
        known = "; ".join("/".join(k) for k in sorted(TASK_TYPES))
        problems.append(
            f"config key tasks.{name}: paradigm/mapping/type is {'/'.join(map(str, kind))}; expected one of: {known}; "
            "fix tasks.<task>.paradigm, mapping or type"
        )
    if is_one_hot_task(task) and not task.vocab_size:
        problems.append(
            f"config key tasks.{name}.vocab_size: missing; expected the number of token ids for input_encoding: one_hot; "
            "set vocab_size to the largest token id + 1"
        )
    if is_rollout_task(task):
        problems += spec_problems(task)
    return problems


def _expected_labels(task: Task, n: int, t: int) -> str:
    kind = (task.mapping, task.type.value)
    return {
        ("seq2static", "classification"): f"int64 [N] = [{n}]",
        ("seq2seq", "classification"): f"int64 [N, T] = [{n}, {t}]",
        ("seq2static", "regression"): f"float32 [N, K] = [{n}, K]",
        ("seq2seq", "regression"): f"float32 [N, T', K] = [{n}, T', K]",
        ("seq2static", "summary"): f"float32 [N, K] = [{n}, K]",
    }.get(kind, "none (targets are the inputs)")


def _dense_data_problems(where: str, shape: tuple, dtype: np.dtype) -> list[str]:
    """float32 [N, T, D] inputs: shape and dtype."""
    if len(shape) == 3 and dtype == np.float32:
        return []
    fixes = [] if dtype == np.float32 else ["convert with data.astype('float32')"]
    if len(shape) == 2:
        fixes.append("add a feature axis ([N, T] -> [N, T, 1], data[..., None])")
    elif len(shape) != 3:
        fixes.append(f"reshape the {len(shape)}-D array to 3-D: samples, steps, features")
    return [f"{where}: key `data` is {dtype} {list(shape)}; expected float32 [N, T, D]; {' and '.join(fixes)}"]


def _token_shape_problems(where: str, shape: tuple, dtype: np.dtype) -> list[str]:
    """Token ids for input_encoding one_hot: integer [N, T] or [N, T, 1]."""
    token_shape = len(shape) == 2 or (len(shape) == 3 and shape[-1] == 1)
    if dtype.kind not in "iu" or not token_shape:
        return [
            f"{where}: key `data` is {dtype} {list(shape)}; expected int token ids [N, T] or [N, T, 1] "
            "(input_encoding: one_hot); store ids with data.astype('int64'), or set input_encoding: dense for float features"
        ]
    return []


def _token_range_problems(where: str, low: int, high: int, vocab_size: int | None) -> list[str]:
    problems = []
    span = f"[0, vocab_size={vocab_size})" if vocab_size else "[0, vocab_size)"
    if low < 0:
        problems.append(
            f"{where}: key `data` holds negative token id(s) (min {low}); expected ids in {span}; "
            "map padding or unknown tokens to a non-negative id"
        )
    if vocab_size and high >= vocab_size:
        problems.append(
            f"{where}: key `data` holds token ids up to {high}; expected ids in {span}; "
            f"set tasks.<task>.vocab_size to at least {high + 1}"
        )
    return problems


class Range:
    """Running min and max over blocks, and the count of non-finite values seen."""

    def __init__(self):
        self.low, self.high, self.bad = None, None, 0

    def add(self, block: np.ndarray) -> None:
        if not block.size:
            return
        if block.dtype.kind == "f":
            finite = np.isfinite(block)
            self.bad += int(block.size - finite.sum())
            block = block[finite] if self.bad else block
            if not block.size:
                return
        low, high = block.min(), block.max()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def pair(self) -> list:
        return [float(self.low), float(self.high)] if self.low is not None else [0.0, 0.0]


def _missing_labels(where: str, task: Task, expected: str) -> str:
    message = f"{where}: key `labels` is missing; expected {expected}"
    if task.type is TaskType.SUMMARY:
        message += "; compute the summaries from the inputs (e.g. per-feature mean over time) and store them as `labels`"
    return message


class SplitScan:
    """One pass over a split, block by block: its problems, its summary entry, and its class ids."""

    def __init__(self, split: SplitSource, task: Task, budget_mb: float):
        self.split, self.task, self.budget = split, task, budget_mb
        self.where = split.where
        self.problems: list[str] = []
        self.entry: dict = {"n": int(split.n)}
        self.class_range = Range()
        self.class_counts = np.zeros(0, dtype=np.int64)
        self.labels_ok = False

    def run(self) -> SplitScan:
        if not self.split.has("data"):
            self.problems.append(f"{self.where}: key `data` is missing; expected float32 [N, T, D]; write the inputs under `data`")
            return self
        if not self._data() or self.task.is_reconstruction:
            return self
        self._labels()
        return self

    def _data(self) -> bool:
        """Checks `data`; False when the split has no samples (nothing more to check)."""
        split, task = self.split, self.task
        shape, dtype = split.shape("data"), split.dtype("data")
        one_hot = is_one_hot_task(task)
        shape_problems = _token_shape_problems(self.where, shape, dtype) if one_hot else _dense_data_problems(self.where, shape, dtype)
        self.problems += shape_problems
        self.entry.update({"data_shape": list(shape), "data_dtype": str(dtype)})
        if split.n == 0:
            self.problems.append(
                f"{self.where}: key `data` has no samples; every split needs at least one; add samples, "
                "or for a root-level or rollout file change split_fractions"
            )
            return False
        if dtype.kind not in "biuf" or (one_hot and shape_problems):
            return True
        values = Range()
        for _, block in split.raw_blocks("data", self.budget):
            values.add(block)
        self.entry["data_range"] = values.pair()
        if one_hot:
            self.problems += _token_range_problems(self.where, int(values.low), int(values.high), task.vocab_size)
        elif values.bad:
            self.problems.append(f"{self.where}: key `data` holds {values.bad} NaN or Inf values; expected finite numbers; drop or impute them")
        return True

    def _labels(self) -> None:
        split, task = self.split, self.task
        shape = split.shape("data")
        expected = _expected_labels(task, split.n, shape[1] if len(shape) > 1 else 0)
        if not split.has("labels"):
            self.problems.append(_missing_labels(self.where, task, expected))
            return
        n_labels, n_data = split.rows.file_length("labels"), split.rows.file_length("data")
        if n_labels != n_data:
            self.problems.append(
                f"{self.where}: key `labels` has N={n_labels} but `data` has N={n_data}; expected the same number of samples"
            )
            return
        labels_shape, labels_dtype = split.shape("labels"), split.dtype("labels")
        self.entry.update({"labels_shape": list(labels_shape), "labels_dtype": str(labels_dtype)})
        if task.is_classification:
            self._class_labels(shape, labels_shape, labels_dtype, expected)
        else:
            self._float_labels(labels_shape, labels_dtype, expected)

    def _class_labels(self, shape: tuple, labels_shape: tuple, dtype: np.dtype, expected: str) -> None:
        want_ndim = 1 if self.task.mapping == "seq2static" else 2
        if dtype.kind not in "iu" or len(labels_shape) != want_ndim:
            self.problems.append(
                f"{self.where}: key `labels` is {dtype} {list(labels_shape)}; expected {expected}; store class ids with labels.astype('int64')"
            )
            return
        if self.task.is_seq2seq and len(shape) >= 2 and labels_shape[1] != shape[1]:
            self.problems.append(
                f"{self.where}: key `labels` has T={labels_shape[1]} but `data` has T={shape[1]}; expected one label per step "
                f"({expected}); store one class id per input step, or use a seq2seq regression task with target_seq_len "
                "for outputs of another length"
            )
            return
        for _, block in self.split.raw_blocks("labels", self.budget):
            self.class_range.add(block)
            ids = block[block >= 0].reshape(-1).astype(np.int64)
            counts = np.bincount(ids, minlength=len(self.class_counts))
            counts[: len(self.class_counts)] += self.class_counts
            self.class_counts = counts
        self.labels_ok = True

    def class_problems(self, num_classes: int, source: str) -> list[str]:
        """The class-id range check, once the class count C is known."""
        low, high = self.class_range.low, self.class_range.high
        if not self.labels_ok or low is None or (low >= 0 and high < num_classes):
            return []
        fix = ("set tasks.<task>.num_classes or the `class_names` attribute to the real count" if high >= num_classes
               else "map the negative ids (e.g. padding or unknown) to a class in [0, C), or drop those samples")
        return [
            f"{self.where}: key `labels` holds class ids {int(low)}..{int(high)}; expected ids in [0, {num_classes}) "
            f"(C = {num_classes} classes, {source}); {fix}"
        ]

    def _float_labels(self, labels_shape: tuple, dtype: np.dtype, expected: str) -> None:
        task = self.task
        want_ndim = 2 if task.mapping == "seq2static" else 3
        what = "the summaries (computed from the inputs)" if task.type is TaskType.SUMMARY else "targets"
        if dtype.kind != "f" or len(labels_shape) != want_ndim:
            self.problems.append(
                f"{self.where}: key `labels` is {dtype} {list(labels_shape)}; expected {expected}; "
                f"store {what} with labels.astype('float32') and a target axis ([N] -> [N, 1])"
            )
        elif labels_shape[-1] == 0:
            self.problems.append(f"{self.where}: key `labels` has K=0 targets; expected at least one target column; store {what} in `labels`")
        else:
            values = Range()
            for _, block in self.split.raw_blocks("labels", self.budget):
                values.add(block)
            if values.bad:
                self.problems.append(f"{self.where}: key `labels` holds NaN or Inf; expected finite targets; drop those samples")
            else:
                self.entry["labels_range"] = values.pair()
        target_len = task.data.get("target_seq_len")
        if task.is_seq2seq and len(labels_shape) == 3 and target_len and labels_shape[1] != target_len:
            self.problems.append(
                f"{self.where}: key `labels` has T'={labels_shape[1]}; expected target_seq_len={target_len}; "
                "set tasks.<task>.target_seq_len to the label length"
            )


def _step_shape(task: Task, shape: tuple) -> tuple:
    """The per-sample input shape the model sees: (T, D), or (T,) for token ids."""
    return tuple(shape[1:2]) if is_one_hot_task(task) else tuple(shape[1:])


def check_consistency(path: str, data: SplitFile, task: Task) -> list[str]:
    """Every split must have the same per-sample shapes of `data` and `labels` (one model serves all)."""
    problems = []
    ref = data["train"]
    for name in SPLITS[1:]:
        split = data[name]
        if _step_shape(task, split.shape("data")) != _step_shape(task, ref.shape("data")):
            problems.append(
                f"{path}: key `data` has per-sample shape {list(split.shape('data')[1:])} in {name} but "
                f"{list(ref.shape('data')[1:])} in train; expected the same T and D in every split; rebuild the splits "
                "with one window length and one feature set"
            )
        if not task.is_reconstruction and split.has("labels") and ref.has("labels"):
            if split.shape("labels")[1:] != ref.shape("labels")[1:]:
                problems.append(
                    f"{path}: key `labels` has per-sample shape {list(split.shape('labels')[1:])} in {name} but "
                    f"{list(ref.shape('labels')[1:])} in train; expected the same in every split; write the same targets in every split"
                )
    return problems


def _names_problem(path: str, attr: str, names, want: int, what: str) -> list[str]:
    if not isinstance(names, list) or len(names) == want:
        return []
    return [
        f"{path}: attribute `{attr}` has {len(names)} name(s); expected {want} ({what}); "
        f"fix the attribute or remove it (default names are used)"
    ]


def check_names(path: str, attrs: dict, data: SplitFile, task: Task) -> list[str]:
    """Name attributes whose length disagrees with the arrays (evaluation would fail after training)."""
    train = data["train"]
    shape, labels = train.shape("data"), train.shape("labels")
    problems = []
    if not is_one_hot_task(task) and not is_rollout_task(task) and len(shape) == 3:
        problems += _names_problem(path, "feature_names", attrs.get("feature_names"), shape[-1], "one per feature D")
    if task.type in (TaskType.REGRESSION, TaskType.SUMMARY) and labels is not None and len(labels) >= 2 and not is_rollout_task(task):
        problems += _names_problem(path, "target_names", attrs.get("target_names"), labels[-1], "one per label column K")
    if task.is_classification and task.num_classes:
        problems += _names_problem(path, "class_names", attrs.get("class_names"), int(task.num_classes), "tasks.<task>.num_classes")
    return problems


def check_leakage(path: str, ids: dict[str, np.ndarray | None]) -> list[str]:
    """Source items that appear in more than one split."""
    problems = []
    sets = {s: set(ids[s].tolist()) for s in SPLITS if ids.get(s) is not None}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = sorted(sets.get(a, set()) & sets.get(b, set()))
            if shared:
                problems.append(
                    f"{path}: key `item_ids`: {len(shared)} source item(s) are in both {a} and {b} "
                    f"(e.g. {shared[:3]}); expected each source item in one split; split by item, not by window"
                )
    return problems


def check_domains(split: SplitSource, domain_names: list | None) -> tuple[list[str], int | None]:
    """`domains` of a split: int64 [N], ids >= 0 (and below len(domain_names)); the number of distinct ids."""
    if not split.has("domains"):
        return [], None
    where, shape, dtype = split.where, split.shape("domains"), split.dtype("domains")
    n_domains, n_data = split.rows.file_length("domains"), split.rows.file_length("data")
    if dtype.kind not in "iu" or len(shape) != 1 or n_domains != n_data:
        return [
            f"{where}: key `domains` is {dtype} [{n_domains}{', ...' if len(shape) > 1 else ''}]; expected int64 [N] = [{n_data}], "
            "one domain id per sample; write domains.astype('int64') with one entry per sample"
        ], None
    ids = split.domains()
    if not len(ids):
        return [], 0
    low, high = int(ids.min()), int(ids.max())
    count = len(domain_names) if domain_names else None
    if low < 0 or (count is not None and high >= count):
        span = f"[0, {count}) (the {count} names of `domain_names`)" if count is not None else "ids >= 0"
        return [
            f"{where}: key `domains` holds ids {low}..{high}; expected {span}; "
            "number the domains 0, 1, ... and list their names in the root attribute `domain_names`"
        ], None
    return [], int(len(np.unique(ids)))


def _open_problems(path: str) -> tuple[bool, list[str]]:
    """Whether the file is pre-split, and the problems that stop reading it at all."""
    if not Path(path).is_file():
        return False, [f"{path}: file not found; build it first or fix tasks.<task>.data_path"]
    try:
        with open_h5(path) as fh:
            presplit = is_presplit(fh)
            partial = [s for s in SPLITS if s in fh] if not presplit else []
    except OSError as err:
        if "locked" in str(err):
            return False, [str(err)]
        return False, [f"{path}: not a readable HDF5 file ({err}); rebuild or re-download it"]
    if partial:
        return presplit, [f"{path}: has group(s) {partial} but not all of {list(SPLITS)}; {_missing_split_fix(path, partial)}"]
    return presplit, []


SPLIT_SPELLINGS = {"valid": "val", "validation": "val", "dev": "val", "training": "train", "testing": "test"}


def _missing_split_fix(path: str, present: list[str]) -> str:
    """How to complete the split groups: a group spelled otherwise (`valid`) is named with its rename."""
    with open_h5(path) as fh:
        spelled = [(name, SPLIT_SPELLINGS[name.lower()]) for name in fh
                   if name.lower() in SPLIT_SPELLINGS and SPLIT_SPELLINGS[name.lower()] not in present]
    if spelled:
        return "; ".join(f"group `{old}` looks like the {new} split: rename it to `{new}` "
                         f"(h5py: fh.move({old!r}, {new!r}))" for old, new in spelled)
    return "add the missing split groups"


READ_KEYS = {"data", "labels", "item_ids", "domains", "window_start"}  # what seqpipe reads from a split


def unread_keys(path: str, presplit: bool) -> list[str]:
    """Datasets and groups of the file that no stage reads (e.g. a `mask`), as paths."""
    with open_h5(path) as fh:
        if not presplit:
            return sorted(name for name in fh if name not in READ_KEYS)
        unread = [name for name in fh if name not in SPLITS]
        unread += [f"{s}/{name}" for s in SPLITS for name in fh[s] if name not in READ_KEYS]
    return sorted(unread)


def _class_count(task: Task, attrs: dict, scans: list[SplitScan]) -> tuple[int, str]:
    """C and where it comes from: num_classes, class_names, or the largest id in the file + 1."""
    if task.num_classes:
        return int(task.num_classes), "tasks.<task>.num_classes"
    if "class_names" in attrs:
        return len(attrs["class_names"]), "the `class_names` attribute"
    highs = [int(s.class_range.high) for s in scans if s.class_range.high is not None]
    return (max(highs) + 1 if highs else 0), "the largest id in the file + 1"


def validate(path: str | Path, task: Task, seed: int | None = None, memory_budget_mb: float | None = None) -> dict:
    """Check `path` for `task`; return the summary or raise ValidationError with every problem.

    `seed` is the auto-split seed; default the task's `split_seed` (0), as in training. Splits are
    read block by block, each block at most `memory_budget_mb` / BLOCK_SHARE.
    """
    path = str(path)
    seed = split_seed(task) if seed is None else seed
    problems = check_task(task)
    if problems:
        raise ValidationError(path, problems)
    presplit, problems = _open_problems(path)
    if problems:
        raise ValidationError(path, problems)
    rollout = None
    if is_rollout_task(task):
        arrays = scan_rollout(path, rollout_spec(task))
        if arrays.problems:
            raise ValidationError(path, arrays.problems)
        rollout = {"groups": arrays.n_groups, "failed": arrays.n_failed, "used": int(len(arrays.data))}
    try:
        data = open_splits(path, task.with_data(split_seed=seed), memory_budget_mb)
    except KeyError as err:
        raise ValidationError(path, [str(err.args[0])]) from err
    try:
        summary = _validate_open(path, data, task, rollout)
    finally:
        data.close()
    unread = [] if rollout is not None else unread_keys(path, presplit)
    if unread:
        summary["ignored"] = unread
        summary["ignored_note"] = (f"{len(unread)} key(s) of the file are not read by seqpipe ({', '.join(unread)}): "
                                   f"only {', '.join(sorted(READ_KEYS))} are; a mask or weights there has no effect")
        log.warning("%s: %s", path, summary["ignored_note"])
    return summary


def _validate_open(path: str, data: SplitFile, task: Task, rollout: dict | None) -> dict:
    attrs = data.attrs
    scans = [SplitScan(data[s], task, data.memory_budget_mb).run() for s in SPLITS]
    problems = [p for scan in scans for p in scan.problems]
    if task.is_classification:
        num_classes, source = _class_count(task, attrs, scans)
        problems += [p for scan in scans for p in scan.class_problems(num_classes, source)]
    if not problems:
        problems += check_consistency(path, data, task) + check_names(path, attrs, data, task)
    ids = {s: data[s].item_ids() for s in SPLITS}
    problems += check_leakage(path, ids)
    domains = {}
    for s in SPLITS:
        found, domains[s] = check_domains(data[s], data.domain_names)
        problems += found
    if problems:
        raise ValidationError(path, problems)
    summary: dict = {"task": task.name, "type": task.type.value, "mapping": task.mapping, "splits": {}}
    if is_one_hot_task(task):
        summary["input_encoding"], summary["vocab_size"] = "one_hot", int(task.vocab_size)
    names = attrs.get("class_names")
    for name, scan in zip(SPLITS, scans):
        entry = dict(scan.entry)
        if task.is_classification and scan.labels_ok:
            entry["class_counts"] = {(names[i] if names and i < len(names) else str(i)): int(c) for i, c in enumerate(scan.class_counts) if c}
        if task.is_reconstruction:
            entry = {k: v for k, v in entry.items() if not k.startswith("labels")}
        if ids[name] is not None:
            entry["items"] = int(len(set(ids[name].tolist())))
        if domains[name] is not None:
            entry["domains"] = domains[name]
        summary["splits"][name] = entry
    if data.domain_names:
        summary["domain_names"] = list(data.domain_names)
    if rollout is not None:
        summary["rollouts"] = rollout
    return summary


def main(argv: list[str] | None = None) -> None:
    """`seqpipe validate --data H5 --task JSON --out JSON [--memory-budget-mb MB]`"""
    parser = argparse.ArgumentParser(prog="seqpipe validate", description="Check a task's HDF5 file against its task type.")
    parser.add_argument("--data", required=True, help="the task's HDF5 file")
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--out", required=True, help="where the JSON summary goes")
    add_budget_option(parser)
    args = parser.parse_args(argv)
    try:
        summary = validate(args.data, Task.from_json(args.task), memory_budget_mb=args.memory_budget_mb)
    except (ValidationError, OSError) as err:
        log.error("%s", err)
        sys.exit(1)
    write_json(args.out, summary)
    log.info("%s is valid for task %s", args.data, summary["task"])
