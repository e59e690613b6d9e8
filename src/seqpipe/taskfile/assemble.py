"""Assemble one task's HDF5 file from several feature sets (datasets): `results/tasks/<task>.h5`.

A task with `features: [set_a, set_b, ...]` trains on the samples of all of them. Each split of the
output is the concatenation of that split of every source file, in the order given, with
- `domains` (int64 [N]) and the root attribute `domain_names`: with `domain: source` (the default)
  one domain per source feature set, named after it; with `domain: labels` the sources' own
  `domains` (a feature set's `domain: <label column>`), their names merged by name;
- `item_ids` prefixed with the source set (`groove_grid/<id>`), so ids of two datasets never collide;
- `labels` when every source has them with the same class or target names; a reconstruction task
  drops them (a source without labels is fine there).
Inputs must agree on the window shape [T, D], `feature_names` and `frame_rate`. Rows are copied in
blocks of at most `CHUNK_BYTES`, so memory stays flat in the data size; the file is written
atomically, and the same sources give byte-identical output (no timestamps).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import h5py
import numpy as np

from seqpipe import __version__
from seqpipe.config.types import Task
from seqpipe.taskfile.domains import ATTR, KEY
from seqpipe.taskfile.hdf5 import STR, is_presplit, read_attrs
from seqpipe.datasets import SPLITS
from seqpipe.io import atomic_path

log = logging.getLogger("seqpipe.assemble")
CHUNK_BYTES = 32 * 2**20
SHARED_ATTRS = ("feature_names", "frame_rate")
LABEL_ATTRS = ("class_names", "target_names")


class AssemblyError(ValueError):
    """Sources that cannot form one task file."""


def _domain_mode(task: Task) -> str:
    """What a sample's domain is: its source feature set (`source`, the default) or the sources' own `labels`."""
    return task.data.get("domain", "source")


def _check_sources(sources: dict[str, str], task: Task) -> dict[str, dict]:
    """Each source's attributes, after checking the sources can be concatenated."""
    attrs, shapes = {}, {}
    for name, path in sources.items():
        if not Path(path).is_file():
            raise AssemblyError(f"task {task.name}: feature file {path} (feature set {name}) does not exist; build it first")
        with h5py.File(path, "r") as fh:
            if not is_presplit(fh):
                raise AssemblyError(f"{path}: no train/val/test groups; expected a feature set file written by seqpipe features")
            shapes[name] = tuple(fh["train"]["data"].shape[1:])
            if _domain_mode(task) == "labels" and KEY not in fh["train"]:
                raise AssemblyError(f"{path} [train]: key `{KEY}` is missing; tasks.{task.name}.domain is `labels`, which "
                                    f"needs every feature set to store domains: set features.{name}.domain to a label column")
        attrs[name] = read_attrs(path)
    first = next(iter(sources))
    for name in sources:
        if shapes[name] != shapes[first]:
            raise AssemblyError(f"{sources[name]}: key `data` has per-sample shape {list(shapes[name])} but {sources[first]} has "
                                f"{list(shapes[first])}; expected one window length and feature width; use the same kind, window and settings")
        for key in SHARED_ATTRS + (() if task.is_reconstruction else LABEL_ATTRS):
            if attrs[name].get(key) != attrs[first].get(key):
                raise AssemblyError(f"{sources[name]}: attribute `{key}` is {attrs[name].get(key)!r} but {sources[first]} has "
                                    f"{attrs[first].get(key)!r}; expected the same in every feature set of task {task.name}")
    return attrs


def _domain_plan(sources: dict[str, str], attrs: dict[str, dict], mode: str) -> tuple[list[str], dict[str, np.ndarray | None]]:
    """The output's domain names and, per source, a map from its domain ids to output ids (None: its source id)."""
    if mode == "source":
        return list(sources), {name: None for name in sources}
    names = sorted({n for a in attrs.values() for n in a.get(ATTR, [])})
    index = {n: i for i, n in enumerate(names)}
    return names, {name: np.array([index[n] for n in attrs[name].get(ATTR, [])], dtype=np.int64) for name in sources}


def _copy_rows(src: h5py.Dataset, dst: h5py.Dataset, offset: int, convert=None) -> None:
    """Copy `src` into `dst[offset:]` in blocks of about CHUNK_BYTES."""
    row = max(1, int(np.prod(src.shape[1:], dtype=np.int64)) * src.dtype.itemsize)
    step = max(1, CHUNK_BYTES // row)
    for start in range(0, len(src), step):
        block = src[start : start + step]
        dst[offset + start : offset + start + len(block)] = block if convert is None else convert(block)


def assemble_task(sources: dict[str, str], task: Task, out: str | Path) -> dict:
    """Write the task file `out` from `sources` (feature set name -> HDF5 path). Returns counts per split and source."""
    if len(sources) < 1:
        raise AssemblyError(f"task {task.name}: no feature sets to assemble")
    attrs = _check_sources(sources, task)
    domain_names, remap = _domain_plan(sources, attrs, _domain_mode(task))
    keep_labels = not task.is_reconstruction
    counts: dict[str, dict[str, int]] = {}
    handles = {name: h5py.File(path, "r") for name, path in sources.items()}
    try:
        with atomic_path(out) as tmp, h5py.File(tmp, "w", libver="earliest") as fh:
            first = attrs[next(iter(sources))]
            root = {key: first[key] for key in SHARED_ATTRS + (LABEL_ATTRS if keep_labels else ()) if key in first}
            root.update({ATTR: domain_names, "feature_set": task.name, "dataset": "+".join(a.get("dataset", "?") for a in attrs.values()),
                         "provenance": json.dumps({"sources": {n: attrs[n].get("provenance") for n in sources}, "seqpipe_version": __version__}, sort_keys=True)})
            for key in sorted(root):
                value = root[key]
                fh.attrs[key] = np.array(value, dtype=STR) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value
            for split in SPLITS:
                groups = {name: handles[name][split] for name in sources}
                sizes = {name: len(g["data"]) for name, g in groups.items()}
                counts[split] = sizes
                total, ref = sum(sizes.values()), groups[next(iter(sources))]
                group = fh.create_group(split)
                data = group.create_dataset("data", shape=(total, *ref["data"].shape[1:]), dtype=ref["data"].dtype, track_times=False)
                labels = None
                if keep_labels:
                    missing = [sources[n] for n, g in groups.items() if "labels" not in g]
                    if missing:
                        raise AssemblyError(f"{missing[0]} [{split}]: key `labels` is missing; a {task.type.value} task needs labels "
                                            "in every feature set; set features.<set>.target or use a reconstruction task")
                    labels = group.create_dataset("labels", shape=(total, *ref["labels"].shape[1:]), dtype=ref["labels"].dtype, track_times=False)
                ids = group.create_dataset("item_ids", shape=(total,), dtype=STR, track_times=False)
                domains = group.create_dataset(KEY, shape=(total,), dtype=np.int64, track_times=False)
                offset = 0
                for k, (name, g) in enumerate(groups.items()):
                    _copy_rows(g["data"], data, offset)
                    if labels is not None:
                        _copy_rows(g["labels"], labels, offset)
                    if "item_ids" in g:
                        _copy_rows(g["item_ids"], ids, offset, lambda b, n=name: np.array(
                            [f"{n}/{v.decode() if isinstance(v, bytes) else v}" for v in b], dtype=object))
                    else:
                        ids[offset : offset + sizes[name]] = np.array([f"{name}/{split}-{i}" for i in range(sizes[name])], dtype=object)
                    if remap[name] is None:
                        domains[offset : offset + sizes[name]] = np.full(sizes[name], k, dtype=np.int64)
                    else:
                        _copy_rows(g[KEY], domains, offset, lambda b, m=remap[name]: m[b])
                    offset += sizes[name]
    finally:
        for handle in handles.values():
            handle.close()
    log.info("wrote %s: %s, domains %s", out, counts, domain_names)
    return {"splits": counts, "domain_names": domain_names}


def parse_source(text: str) -> tuple[str, str]:
    """`name=path` -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--source {text!r}: expected FEATURE_SET=PATH")
    return name, path


def main(argv: list[str] | None = None) -> None:
    """`seqpipe assemble-task --task JSON --source SET=H5 [SET=H5 ...] --out H5`"""
    parser = argparse.ArgumentParser(prog="seqpipe assemble-task", description="Join a task's feature sets (datasets) into one "
                                     "task file, with a domain id per sample and the root attribute domain_names.")
    parser.add_argument("--task", required=True, help="the task's settings as JSON (name, type, features, domain)")
    parser.add_argument("--source", action="extend", nargs="+", type=parse_source, required=True,
                        help="each feature set and its HDF5 file, as SET=PATH (several after one --source, or repeat it)")
    parser.add_argument("--out", required=True, help="the task's HDF5 file to write")
    args = parser.parse_args(argv)
    try:
        assemble_task(dict(args.source), Task.from_json(args.task), args.out)
    except (AssemblyError, FileNotFoundError, KeyError) as err:
        log.error("%s", err)
        sys.exit(1)
