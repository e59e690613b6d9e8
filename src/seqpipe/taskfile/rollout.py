"""Rollout files (SPEC: Rollout format) read as seq2static regression data.

A rollout file holds one group per simulated parameter set:

    parameter_names        root dataset of strings, one per entry of every `param_state`
    metadata/              group of attributes (provenance; not read as data)
    param_0/ … param_N/    one group per rollout
        param_state        dataset: one value per parameter name
        attrs: success     bool; false marks a failed rollout
        attrs: metabolic/cot/MA/mean, …   output metrics named by slash paths

A task picks inputs by parameter name (`in_lbl`) and targets by alias -> attribute path
(`out_lbl`). Failed rollouts are dropped (a group without `success` counts as successful). The
result is root-level `data` float32 [N, 1, D_in] and `labels` float32 [N, K] with the group names
as item ids, which the reader (`seqpipe.taskfile.reader.open_task`) auto-splits like any root-level file. A file
with a single group gives N = 1.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from seqpipe.config.types import Task, TaskType, thawed

GROUP_PATTERN = re.compile(r"^param_(\d+)$")
TRUE_STRINGS = {"true", "1", "yes", "y", "t"}


class RolloutError(ValueError):
    """A rollout file that cannot give the task's inputs and targets; one message per problem."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s) reading a rollout file\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class RolloutSpec:
    """What a task reads from a rollout file: input parameter names and (alias, attribute path) targets."""

    in_lbl: tuple[str, ...]
    out_lbl: tuple[tuple[str, str], ...]

    @property
    def aliases(self) -> list[str]:
        return [alias for alias, _ in self.out_lbl]


@dataclass
class RolloutArrays:
    """The successful rollouts as arrays, and how many groups the file held."""

    data: np.ndarray  # float32 [N, 1, D_in]
    labels: np.ndarray  # float32 [N, K]
    item_ids: np.ndarray  # group name per sample
    n_groups: int
    n_failed: int
    problems: list[str] = field(default_factory=list)


def is_rollout_task(task: Task) -> bool:
    """True when the task reads its file in the rollout format (`format: rollout`)."""
    return task.data.get("format") == "rollout"


def _selection(task: Task) -> tuple[Any, Any]:
    """The task's `in_lbl` and `out_lbl` settings as plain JSON values (None when unset)."""
    return thawed(task.data.get("in_lbl")), thawed(task.data.get("out_lbl"))


def spec_problems(task: Task) -> list[str]:
    """Problems of the task's `in_lbl` / `out_lbl` settings (config keys, not the file)."""
    name = task.name
    problems = []
    in_lbl, out_lbl = _selection(task)
    if not in_lbl or not isinstance(in_lbl, (list, tuple)) or not all(isinstance(v, str) for v in in_lbl):
        problems.append(
            f"config key tasks.{name}.in_lbl: found {in_lbl!r}; expected a list of parameter names (the inputs); "
            f"set e.g. in_lbl: [gait_cadence, gait_stride]"
        )
    if not out_lbl or not isinstance(out_lbl, (dict, list, tuple)):
        problems.append(
            f"config key tasks.{name}.out_lbl: found {out_lbl!r}; expected a mapping alias -> attribute path "
            f"(the targets); set e.g. out_lbl: {{cot: metabolic/cot/MA/mean}}"
        )
    if task.type is not TaskType.REGRESSION or task.mapping != "seq2static":
        problems.append(
            f"config key tasks.{name}.type: found {task.paradigm}/{task.mapping}/{task.type.value}; "
            "a rollout file gives supervised seq2static regression data; set mapping: seq2static and type: regression"
        )
    return problems


def rollout_spec(task: Task) -> RolloutSpec:
    """The task's rollout selection; raises RolloutError naming the config key when it is unusable."""
    problems = spec_problems(task)
    if problems:
        raise RolloutError(f"task {task.name}", problems)
    in_lbl, out_lbl = _selection(task)
    pairs = tuple(out_lbl.items()) if isinstance(out_lbl, dict) else tuple((p, p) for p in out_lbl)
    return RolloutSpec(in_lbl=tuple(in_lbl), out_lbl=pairs)


def looks_like_rollout(fh: h5py.File) -> bool:
    """True when an open file has the rollout layout (parameter_names and param_<i> groups)."""
    return "parameter_names" in fh and any(GROUP_PATTERN.match(k) for k in fh.keys())


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parameter_names(fh: h5py.File) -> list[str]:
    """The root `parameter_names` dataset as a list of str (variable- or fixed-length strings)."""
    values = np.atleast_1d(fh["parameter_names"][()])
    return [_as_str(v).strip() for v in values]


def param_groups(fh: h5py.File) -> list[str]:
    """Names of the `param_<i>` groups, in numeric order (param_2 before param_10)."""
    names = [k for k in fh.keys() if GROUP_PATTERN.match(k) and isinstance(fh[k], h5py.Group)]
    return sorted(names, key=lambda k: int(GROUP_PATTERN.match(k).group(1)))


def is_success(group: h5py.Group) -> bool:
    """A rollout's `success` attribute as a bool; True when the attribute is absent."""
    if "success" not in group.attrs:
        return True
    value = np.asarray(group.attrs["success"]).reshape(-1)
    if value.size == 0:
        return False
    first = value[0]
    if isinstance(first, (bytes, str)) or value.dtype.kind in "OSU":
        return _as_str(first).strip().lower() in TRUE_STRINGS
    return bool(first)


def read_metric(group: h5py.Group, path: str) -> float | None:
    """The scalar at attribute `path` of a rollout group (or a scalar dataset at that path); None if absent."""
    if path in group.attrs:
        raw = group.attrs[path]
    elif path in group and isinstance(group[path], h5py.Dataset):
        raw = group[path][()]
    else:
        return None
    value = np.asarray(raw).reshape(-1)
    if value.size != 1 or value.dtype.kind not in "biuf":
        raise TypeError(f"{value.dtype} {list(np.shape(raw))}")
    return float(value[0])


def _missing_name(path: str, name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"{path}: key `parameter_names` has no {name!r}{hint}; found {len(names)} names, e.g. {names[:8]}; "
        "expected every in_lbl entry among them; fix tasks.<task>.in_lbl"
    )


def _layout_problems(path: str, fh: h5py.File) -> list[str]:
    problems = []
    if "parameter_names" not in fh or not isinstance(fh["parameter_names"], h5py.Dataset):
        problems.append(
            f"{path}: key `parameter_names` is missing; expected a root dataset of parameter-name strings "
            "(rollout format); write it, or remove `format: rollout` if this file is in the seqpipe layout"
        )
    if not param_groups(fh):
        problems.append(
            f"{path}: no `param_<i>` groups (found keys {sorted(fh.keys())[:8]}); expected one group per rollout "
            "named param_0, param_1, …; write one group per rollout"
        )
    return problems


class _Scan:
    """One pass over the groups: rows of the successful rollouts and what is wrong with them."""

    def __init__(self, path: str, spec: RolloutSpec, names: list[str]):
        self.path, self.spec, self.names = path, spec, names
        self.index = [names.index(n) for n in spec.in_lbl if n in names]
        self.rows_x: list[np.ndarray] = []
        self.rows_y: list[list[float]] = []
        self.ids: list[str] = []
        self.n_failed = 0
        self.bad_state: list[str] = []
        self.missing: dict[str, list[str]] = {alias: [] for alias in spec.aliases}
        self.not_scalar: dict[str, str] = {}

    def add(self, key: str, group: h5py.Group) -> None:
        if not is_success(group):
            self.n_failed += 1
            return
        state = np.atleast_1d(np.asarray(group["param_state"][()])).reshape(-1) if "param_state" in group else None
        if state is None or len(state) != len(self.names) or state.dtype.kind not in "biuf":
            self.bad_state.append(key)
            return
        targets = [self._metric(key, group, alias, attr) for alias, attr in self.spec.out_lbl]
        if any(t is None for t in targets):
            return
        self.rows_x.append(state[self.index].astype(np.float32))
        self.rows_y.append(targets)
        self.ids.append(key)

    def _metric(self, key: str, group: h5py.Group, alias: str, attr: str) -> float | None:
        try:
            value = read_metric(group, attr)
        except TypeError as err:
            self.not_scalar.setdefault(alias, f"{key} holds {err}")
            return None
        if value is None:
            self.missing[alias].append(key)
        return value


def _scan_problems(scan: _Scan, groups: list[str], fh: h5py.File) -> list[str]:
    path, n_ok = scan.path, len(groups) - scan.n_failed
    problems = []
    if n_ok == 0:
        problems.append(
            f"{path}: key `success`: 0 of {len(groups)} rollouts succeeded; expected at least one with success = true; "
            "check the simulation run or the `success` attributes"
        )
    if scan.bad_state:
        first = fh[scan.bad_state[0]]
        found = "missing" if "param_state" not in first else f"{first['param_state'].dtype} {list(first['param_state'].shape)}"
        problems.append(
            f"{path}: key `{scan.bad_state[0]}/param_state` is {found} ({len(scan.bad_state)} rollout(s) like it); "
            f"expected a numeric vector of {len(scan.names)} values, one per `parameter_names` entry; rewrite those groups"
        )
    for alias, attr in scan.spec.out_lbl:
        keys = scan.missing[alias]
        if keys:
            found = sorted(k for k in fh[keys[0]].attrs.keys())[:8]
            close = difflib.get_close_matches(attr, list(fh[keys[0]].attrs.keys()), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"{path}: key `{keys[0]}` has no attribute {attr!r}{hint} (out_lbl {alias!r}; missing in {len(keys)} of "
                f"{n_ok} successful rollouts); found attributes {found}; expected it in every successful rollout; "
                "fix tasks.<task>.out_lbl"
            )
        if alias in scan.not_scalar:
            problems.append(
                f"{path}: attribute {attr!r} (out_lbl {alias!r}): {scan.not_scalar[alias]}; expected one number per "
                "rollout; point out_lbl at a scalar metric"
            )
    return problems


def _value_problems(path: str, data: np.ndarray, labels: np.ndarray, spec: RolloutSpec) -> list[str]:
    problems = []
    for what, array, names in (("param_state", data.reshape(len(data), -1), list(spec.in_lbl)), ("attributes", labels, spec.aliases)):
        bad = [names[j] for j in range(array.shape[1]) if not np.isfinite(array[:, j]).all()]
        if bad:
            problems.append(
                f"{path}: {what} of successful rollouts hold NaN or Inf for {bad}; expected finite numbers; "
                "mark those rollouts success = false or drop the names from in_lbl/out_lbl"
            )
    return problems


def scan_rollout(path: str | Path, spec: RolloutSpec) -> RolloutArrays:
    """Read the successful rollouts of `path`; every problem found is listed in `problems`."""
    path = str(path)
    empty = RolloutArrays(np.zeros((0, 1, len(spec.in_lbl)), np.float32), np.zeros((0, len(spec.out_lbl)), np.float32), np.array([], str), 0, 0)
    with h5py.File(path, "r") as fh:
        layout = _layout_problems(path, fh)
        if layout:
            empty.problems = layout
            return empty
        names = parameter_names(fh)
        groups = param_groups(fh)
        scan = _Scan(path, spec, names)
        for key in groups:
            scan.add(key, fh[key])
        problems = [_missing_name(path, n, names) for n in spec.in_lbl if n not in names]
        problems += _scan_problems(scan, groups, fh)
    data = np.asarray(scan.rows_x, np.float32).reshape(len(scan.rows_x), 1, len(scan.index))
    labels = np.asarray(scan.rows_y, np.float32).reshape(len(scan.rows_y), len(spec.out_lbl))
    if not problems:
        problems = _value_problems(path, data, labels, spec)
    return RolloutArrays(data, labels, np.array(scan.ids, dtype=str), len(groups), scan.n_failed, problems)


def read_rollout(path: str | Path, spec: RolloutSpec) -> RolloutArrays:
    """The successful rollouts as `data` [N, 1, D_in] and `labels` [N, K]; raise RolloutError on any problem."""
    arrays = scan_rollout(path, spec)
    if arrays.problems:
        raise RolloutError(path, arrays.problems)
    return arrays
