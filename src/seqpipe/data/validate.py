"""Validation stage: check a task's HDF5 file against the task type before any training starts.

Every problem found is reported in one message naming the file, the key, what was found, what was
expected and how to fix it; the stage fails if there is any. A clean file gets a JSON summary:
shapes, dtypes, counts per split, class balance and value ranges.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import h5py
import numpy as np

from seqpipe.data.hdf5 import Split, is_presplit, load_splits, read_attrs
from seqpipe.datasets import SPLITS
from seqpipe.io import write_json

log = logging.getLogger("seqpipe.validate")


class ValidationError(ValueError):
    """The file cannot train the task; `problems` holds one message per problem."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


def _expected_labels(task: dict, n: int, t: int) -> str:
    kind = (task["mapping"], task["type"])
    return {
        ("seq2static", "classification"): f"int64 [N] = [{n}]",
        ("seq2seq", "classification"): f"int64 [N, T] = [{n}, {t}]",
        ("seq2static", "regression"): f"float32 [N, K] = [{n}, K]",
        ("seq2seq", "regression"): f"float32 [N, T', K] = [{n}, T', K]",
        ("seq2static", "summary"): f"float32 [N, K] = [{n}, K]",
    }.get(kind, "none (targets are the inputs)")


def check_split(path: str, name: str, split: Split, task: dict, num_classes: int | None) -> list[str]:
    """Problems of one split, each phrased as file, key, found, expected, fix."""
    where = f"{path} [{name}]" if name != "root" else path
    data, labels = split.data, split.labels
    problems: list[str] = []
    if data is None:
        return [f"{where}: key `data` is missing; expected float32 [N, T, D]; write the inputs under `data`"]
    if data.ndim != 3 or data.dtype != np.float32:
        problems.append(
            f"{where}: key `data` is {data.dtype} {list(data.shape)}; expected float32 [N, T, D]; "
            "convert with data.astype('float32') and add a feature axis ([N, T] -> [N, T, 1])"
        )
    if len(data) == 0:
        problems.append(f"{where}: key `data` has no samples; every split needs at least one")
        return problems
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int(np.size(data) - np.isfinite(data).sum())
        problems.append(f"{where}: key `data` holds {bad} NaN or Inf values; expected finite numbers; drop or impute them")
    if task["type"] == "reconstruction":
        return problems
    if labels is None:
        return problems + [f"{where}: key `labels` is missing; expected {_expected_labels(task, len(data), data.shape[1])}"]
    expected = _expected_labels(task, len(data), data.shape[1] if data.ndim > 1 else 0)
    if len(labels) != len(data):
        problems.append(
            f"{where}: key `labels` has N={len(labels)} but `data` has N={len(data)}; expected the same number of samples"
        )
    if task["type"] == "classification":
        want_ndim = 1 if task["mapping"] == "seq2static" else 2
        if labels.dtype.kind not in "iu" or labels.ndim != want_ndim:
            problems.append(
                f"{where}: key `labels` is {labels.dtype} {list(labels.shape)}; expected {expected}; "
                "store class ids with labels.astype('int64')"
            )
        elif task["mapping"] == "seq2seq" and data.ndim == 3 and labels.shape[1] != data.shape[1]:
            problems.append(f"{where}: key `labels` has T={labels.shape[1]} but `data` has T={data.shape[1]}; expected one label per step")
        elif len(labels) and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
            problems.append(
                f"{where}: key `labels` holds class ids {int(labels.min())}..{int(labels.max())}; expected ids in "
                f"[0, {num_classes}); set tasks.<task>.num_classes or the `class_names` attribute to the real count"
            )
    else:
        want_ndim = 2 if task["mapping"] == "seq2static" else 3
        if labels.dtype.kind != "f" or labels.ndim != want_ndim:
            problems.append(
                f"{where}: key `labels` is {labels.dtype} {list(labels.shape)}; expected {expected}; "
                "store targets with labels.astype('float32') and a target axis ([N] -> [N, 1])"
            )
        elif not np.isfinite(labels).all():
            problems.append(f"{where}: key `labels` holds NaN or Inf; expected finite targets; drop those samples")
        target_len = task.get("target_seq_len")
        if task["mapping"] == "seq2seq" and labels.ndim == 3 and target_len and labels.shape[1] != target_len:
            problems.append(
                f"{where}: key `labels` has T'={labels.shape[1]}; expected target_seq_len={target_len}; "
                "set tasks.<task>.target_seq_len to the label length"
            )
    return problems


def check_leakage(path: str, splits: dict[str, Split]) -> list[str]:
    """Source items that appear in more than one split."""
    problems = []
    ids = {s: set(splits[s].item_ids.tolist()) for s in SPLITS if splits[s].item_ids is not None}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = sorted(ids.get(a, set()) & ids.get(b, set()))
            if shared:
                problems.append(
                    f"{path}: key `item_ids`: {len(shared)} source item(s) are in both {a} and {b} "
                    f"(e.g. {shared[:3]}); expected each source item in one split; split by item, not by window"
                )
    return problems


def summarise(splits: dict[str, Split], task: dict, attrs: dict) -> dict:
    """Shapes, dtypes, counts per split, class balance and value ranges."""
    out: dict = {"task": task.get("name"), "type": task["type"], "mapping": task["mapping"], "splits": {}}
    for name, split in splits.items():
        entry = {
            "n": int(len(split.data)),
            "data_shape": list(split.data.shape),
            "data_dtype": str(split.data.dtype),
            "data_range": [float(split.data.min()), float(split.data.max())],
        }
        if split.labels is not None and task["type"] != "reconstruction":
            entry["labels_shape"] = list(split.labels.shape)
            entry["labels_dtype"] = str(split.labels.dtype)
            if task["type"] == "classification":
                ids, counts = np.unique(split.labels, return_counts=True)
                names = attrs.get("class_names")
                entry["class_counts"] = {(names[i] if names and i < len(names) else str(i)): int(c) for i, c in zip(ids, counts)}
            else:
                entry["labels_range"] = [float(split.labels.min()), float(split.labels.max())]
        if split.item_ids is not None:
            entry["items"] = int(len(set(split.item_ids.tolist())))
        out["splits"][name] = entry
    return out


def validate(path: str | Path, task: dict, seed: int = 0) -> dict:
    """Check `path` for `task`; return the summary or raise ValidationError with every problem."""
    path = str(path)
    if not Path(path).is_file():
        raise ValidationError(path, [f"{path}: file not found; build it first or fix tasks.<task>.data_path"])
    try:
        with h5py.File(path, "r") as fh:
            presplit = is_presplit(fh)
            partial = [s for s in SPLITS if s in fh] if not presplit else []
    except OSError as err:
        raise ValidationError(path, [f"{path}: not a readable HDF5 file ({err}); rebuild or re-download it"]) from err
    if partial:
        raise ValidationError(path, [f"{path}: has group(s) {partial} but not all of {list(SPLITS)}; add the missing split groups"])
    attrs = read_attrs(path)
    num_classes = task.get("num_classes") or (len(attrs["class_names"]) if "class_names" in attrs else None)
    try:
        splits = load_splits(path, task.get("split_fractions", (0.7, 0.15, 0.15)), seed)
    except KeyError as err:
        raise ValidationError(path, [str(err.args[0])]) from err
    problems = []
    for name, split in splits.items():
        problems += check_split(path, name if presplit else f"auto-split {name}", split, task, num_classes)
    problems += check_leakage(path, splits)
    if problems:
        raise ValidationError(path, problems)
    return summarise(splits, task, attrs)


def main(argv: list[str] | None = None) -> None:
    """`seqpipe validate --data H5 --task JSON --out JSON`"""
    parser = argparse.ArgumentParser(prog="seqpipe validate", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        summary = validate(args.data, json.loads(args.task))
    except ValidationError as err:
        log.error("%s", err)
        sys.exit(1)
    write_json(args.out, summary)
    log.info("%s is valid for task %s", args.data, summary["task"])
