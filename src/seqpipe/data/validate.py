"""Validation stage: check a task's HDF5 file against the task type before any training starts.

Every problem found is reported in one message naming the file, the key, what was found, what was
expected and how to fix it; the stage fails if there is any. A clean file gets a JSON summary:
shapes, dtypes, counts per split, class balance and value ranges.

Checks: the task type is one of the six of the contract; `data` (float32 [N, T, D], or int token
ids in [0, vocab_size) for one-hot inputs); `labels` by task type (dtype, shape, N, T per step,
T' = target_seq_len, finite values, class ids); the same per-sample shapes in every split; name
attributes that match the arrays; items leaking across splits; for `format: rollout`, the
rollout file itself (`seqpipe.data.rollout`). docs/datasets.md describes the layouts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import h5py
import numpy as np

from seqpipe.data.domains import ATTR, check_domains
from seqpipe.data.hdf5 import (
    Split,
    is_one_hot_task,
    is_presplit,
    load_splits,
    read_attrs,
    split_fractions,
    split_seed,
    split_whole,
)
from seqpipe.data.rollout import is_rollout_task, rollout_spec, scan_rollout, spec_problems
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


def check_task(task: dict) -> list[str]:
    """Problems of the task's own settings: an unknown task type, one-hot without vocab_size, rollout keys."""
    name = task.get("name", "<task>")
    problems = []
    kind = (task.get("paradigm", "supervised"), task.get("mapping"), task.get("type"))
    if kind not in TASK_TYPES:
        known = "; ".join("/".join(k) for k in sorted(TASK_TYPES))
        problems.append(
            f"config key tasks.{name}: paradigm/mapping/type is {'/'.join(map(str, kind))}; expected one of: {known}; "
            "fix tasks.<task>.paradigm, mapping or type"
        )
    if is_one_hot_task(task) and not task.get("vocab_size"):
        problems.append(
            f"config key tasks.{name}.vocab_size: missing; expected the number of token ids for input_encoding: one_hot; "
            "set vocab_size to the largest token id + 1"
        )
    if is_rollout_task(task):
        problems += spec_problems(task)
    return problems


def _expected_labels(task: dict, n: int, t: int) -> str:
    kind = (task["mapping"], task["type"])
    return {
        ("seq2static", "classification"): f"int64 [N] = [{n}]",
        ("seq2seq", "classification"): f"int64 [N, T] = [{n}, {t}]",
        ("seq2static", "regression"): f"float32 [N, K] = [{n}, K]",
        ("seq2seq", "regression"): f"float32 [N, T', K] = [{n}, T', K]",
        ("seq2static", "summary"): f"float32 [N, K] = [{n}, K]",
    }.get(kind, "none (targets are the inputs)")


def _check_dense_data(where: str, data: np.ndarray) -> list[str]:
    """float32 [N, T, D] inputs: shape, dtype and finite values."""
    problems = []
    if data.ndim != 3 or data.dtype != np.float32:
        problems.append(
            f"{where}: key `data` is {data.dtype} {list(data.shape)}; expected float32 [N, T, D]; "
            "convert with data.astype('float32') and add a feature axis ([N, T] -> [N, T, 1])"
        )
    if len(data) and data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int(np.size(data) - np.isfinite(data).sum())
        problems.append(f"{where}: key `data` holds {bad} NaN or Inf values; expected finite numbers; drop or impute them")
    return problems


def _check_token_data(where: str, data: np.ndarray, vocab_size: int | None) -> list[str]:
    """Token ids for input_encoding one_hot: integer [N, T] or [N, T, 1], each in [0, vocab_size)."""
    token_shape = data.ndim == 2 or (data.ndim == 3 and data.shape[-1] == 1)
    if data.dtype.kind not in "iu" or not token_shape:
        return [
            f"{where}: key `data` is {data.dtype} {list(data.shape)}; expected int token ids [N, T] or [N, T, 1] "
            "(input_encoding: one_hot); store ids with data.astype('int64'), or set input_encoding: dense for float features"
        ]
    if not len(data):
        return []
    problems = []
    low, high = int(data.min()), int(data.max())
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


def _check_class_labels(where: str, data: np.ndarray, labels: np.ndarray, task: dict, num_classes: int | None, expected: str) -> list[str]:
    want_ndim = 1 if task["mapping"] == "seq2static" else 2
    if labels.dtype.kind not in "iu" or labels.ndim != want_ndim:
        return [
            f"{where}: key `labels` is {labels.dtype} {list(labels.shape)}; expected {expected}; "
            "store class ids with labels.astype('int64')"
        ]
    if task["mapping"] == "seq2seq" and data.ndim >= 2 and labels.shape[1] != data.shape[1]:
        return [
            f"{where}: key `labels` has T={labels.shape[1]} but `data` has T={data.shape[1]}; expected one label per step "
            f"({expected}); store one class id per input step, or use a seq2seq regression task with target_seq_len "
            "for outputs of another length"
        ]
    if len(labels) and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
        return [
            f"{where}: key `labels` holds class ids {int(labels.min())}..{int(labels.max())}; expected ids in "
            f"[0, {num_classes}); set tasks.<task>.num_classes or the `class_names` attribute to the real count"
        ]
    return []


def _check_float_labels(where: str, labels: np.ndarray, task: dict, expected: str) -> list[str]:
    problems = []
    want_ndim = 2 if task["mapping"] == "seq2static" else 3
    what = "the summaries (computed from the inputs)" if task["type"] == "summary" else "targets"
    if labels.dtype.kind != "f" or labels.ndim != want_ndim:
        problems.append(
            f"{where}: key `labels` is {labels.dtype} {list(labels.shape)}; expected {expected}; "
            f"store {what} with labels.astype('float32') and a target axis ([N] -> [N, 1])"
        )
    elif not np.isfinite(labels).all():
        problems.append(f"{where}: key `labels` holds NaN or Inf; expected finite targets; drop those samples")
    elif labels.shape[-1] == 0:
        problems.append(f"{where}: key `labels` has K=0 targets; expected at least one target column; store {what} in `labels`")
    target_len = task.get("target_seq_len")
    if task["mapping"] == "seq2seq" and labels.ndim == 3 and target_len and labels.shape[1] != target_len:
        problems.append(
            f"{where}: key `labels` has T'={labels.shape[1]}; expected target_seq_len={target_len}; "
            "set tasks.<task>.target_seq_len to the label length"
        )
    return problems


def _missing_labels(where: str, task: dict, expected: str) -> str:
    message = f"{where}: key `labels` is missing; expected {expected}"
    if task["type"] == "summary":
        message += "; compute the summaries from the inputs (e.g. per-feature mean over time) and store them as `labels`"
    return message


def check_split(path: str, name: str, split: Split, task: dict, num_classes: int | None) -> list[str]:
    """Problems of one split, each phrased as file, key, found, expected, fix."""
    where = f"{path} [{name}]" if name != "root" else path
    data, labels = split.data, split.labels
    if data is None:
        return [f"{where}: key `data` is missing; expected float32 [N, T, D]; write the inputs under `data`"]
    if is_one_hot_task(task):
        problems = _check_token_data(where, data, task.get("vocab_size"))
    else:
        problems = _check_dense_data(where, data)
    if len(data) == 0:
        return problems + [
            f"{where}: key `data` has no samples; every split needs at least one; add samples, "
            "or for a root-level or rollout file change split_fractions"
        ]
    if task["type"] == "reconstruction":
        return problems
    expected = _expected_labels(task, len(data), data.shape[1] if data.ndim > 1 else 0)
    if labels is None:
        return problems + [_missing_labels(where, task, expected)]
    if len(labels) != len(data):
        problems.append(
            f"{where}: key `labels` has N={len(labels)} but `data` has N={len(data)}; expected the same number of samples"
        )
    if task["type"] == "classification":
        return problems + _check_class_labels(where, data, labels, task, num_classes, expected)
    return problems + _check_float_labels(where, labels, task, expected)


def _step_shape(task: dict, data: np.ndarray) -> tuple:
    """The per-sample input shape the model sees: (T, D), or (T,) for token ids."""
    shape = tuple(data.shape[1:])
    return shape[:1] if is_one_hot_task(task) else shape


def check_consistency(path: str, splits: dict[str, Split], task: dict) -> list[str]:
    """Every split must have the same per-sample shapes of `data` and `labels` (one model serves all)."""
    problems = []
    ref = splits["train"]
    for name in SPLITS[1:]:
        split = splits[name]
        if _step_shape(task, split.data) != _step_shape(task, ref.data):
            problems.append(
                f"{path}: key `data` has per-sample shape {list(split.data.shape[1:])} in {name} but "
                f"{list(ref.data.shape[1:])} in train; expected the same T and D in every split; rebuild the splits "
                "with one window length and one feature set"
            )
        if task["type"] != "reconstruction" and split.labels is not None and ref.labels is not None:
            if split.labels.shape[1:] != ref.labels.shape[1:]:
                problems.append(
                    f"{path}: key `labels` has per-sample shape {list(split.labels.shape[1:])} in {name} but "
                    f"{list(ref.labels.shape[1:])} in train; expected the same in every split; write the same targets in every split"
                )
    return problems


def _names_problem(path: str, attr: str, names, want: int, what: str) -> list[str]:
    if not isinstance(names, list) or len(names) == want:
        return []
    return [
        f"{path}: attribute `{attr}` has {len(names)} name(s); expected {want} ({what}); "
        f"fix the attribute or remove it (default names are used)"
    ]


def check_names(path: str, attrs: dict, splits: dict[str, Split], task: dict, num_classes: int | None) -> list[str]:
    """Name attributes whose length disagrees with the arrays (evaluation would fail after training)."""
    train = splits["train"]
    problems = []
    if not is_one_hot_task(task) and not is_rollout_task(task) and train.data.ndim == 3:
        problems += _names_problem(path, "feature_names", attrs.get("feature_names"), train.data.shape[-1], "one per feature D")
    if task["type"] in ("regression", "summary") and train.labels is not None and train.labels.ndim >= 2 and not is_rollout_task(task):
        problems += _names_problem(path, "target_names", attrs.get("target_names"), train.labels.shape[-1], "one per label column K")
    if task["type"] == "classification" and task.get("num_classes"):
        problems += _names_problem(path, "class_names", attrs.get("class_names"), int(task["num_classes"]), "tasks.<task>.num_classes")
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
    if is_one_hot_task(task):
        out["input_encoding"], out["vocab_size"] = "one_hot", int(task["vocab_size"])
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


def _open_problems(path: str) -> tuple[bool, list[str]]:
    """Whether the file is pre-split, and the problems that stop reading it at all."""
    if not Path(path).is_file():
        return False, [f"{path}: file not found; build it first or fix tasks.<task>.data_path"]
    try:
        with h5py.File(path, "r") as fh:
            presplit = is_presplit(fh)
            partial = [s for s in SPLITS if s in fh] if not presplit else []
    except OSError as err:
        return False, [f"{path}: not a readable HDF5 file ({err}); rebuild or re-download it"]
    if partial:
        return presplit, [f"{path}: has group(s) {partial} but not all of {list(SPLITS)}; add the missing split groups"]
    return presplit, []


def _read_rollout_splits(path: str, task: dict, seed: int) -> tuple[dict[str, Split], dict]:
    """A rollout file's auto-split successful rollouts and its counts; ValidationError on any rollout problem."""
    arrays = scan_rollout(path, rollout_spec(task))
    if arrays.problems:
        raise ValidationError(path, arrays.problems)
    whole = Split(data=arrays.data, labels=arrays.labels, item_ids=arrays.item_ids)
    counts = {"groups": arrays.n_groups, "failed": arrays.n_failed, "used": int(len(arrays.data))}
    return split_whole(whole, split_fractions(task), seed), counts


def validate(path: str | Path, task: dict, seed: int | None = None) -> dict:
    """Check `path` for `task`; return the summary or raise ValidationError with every problem.

    `seed` is the auto-split seed; default the task's `split_seed` (0), as in training.
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
        splits, rollout = _read_rollout_splits(path, task, seed)
        attrs: dict = {}
    else:
        attrs = read_attrs(path)
        try:
            splits = load_splits(path, split_fractions(task), seed, task=task)
        except KeyError as err:
            raise ValidationError(path, [str(err.args[0])]) from err
    num_classes = task.get("num_classes") or (len(attrs["class_names"]) if "class_names" in attrs else None)
    for name, split in splits.items():
        problems += check_split(path, name if presplit else f"auto-split {name}", split, task, num_classes)
    if not problems:
        problems += check_consistency(path, splits, task) + check_names(path, attrs, splits, task, num_classes)
    problems += check_leakage(path, splits) + check_domains(path, attrs, splits)
    if problems:
        raise ValidationError(path, problems)
    summary = summarise(splits, task, attrs)
    if attrs.get(ATTR):
        summary[ATTR] = attrs[ATTR]
    if rollout is not None:
        summary["rollouts"] = rollout
    return summary


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
