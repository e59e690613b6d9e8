"""A part file: the samples of one slice of a feature set's items, appended as items finish.

A part is an HDF5 file with groups `train/`, `val/`, `test/` of chunked, resizable datasets
(`data`, `labels`, `domains`, `item_ids`, `window_start`) that grow by one item's samples at a time, plus a
root group `items/` that lists every item of the slice (its path relative to the dataset root and
the SHA-256 of its bytes) and `skipped/` (id, path, reason of each item that failed). Memory holds
one item's samples at a time. The merge (`seqpipe.features.merge`) streams parts into the final file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from seqpipe.datasets import SPLITS, relative_path
from seqpipe.features.extract import Extracted
from seqpipe.features.windows import item_windows, step_target_names

STR = h5py.string_dtype("utf-8")
CHUNK_BYTES = 1 << 20  # about 1 MB per chunk of a part's datasets
TABLES = {"items": ("path", "sha256"), "skipped": ("id", "path", "reason")}


class PartWriter:
    """Append items' samples and the skipped entries to an open part file."""

    def __init__(self, fh: h5py.File, spec: dict, labels: dict[str, np.ndarray], domains: dict[str, np.int64] | None = None):
        self.fh, self.spec, self.labels, self.domains = fh, spec, labels, domains or {}
        self.step_names = step_target_names(spec)
        for split in SPLITS:
            fh.create_group(split)
        for table, columns in TABLES.items():
            group = fh.create_group(table)
            for column in columns:
                group.create_dataset(column, shape=(0,), maxshape=(None,), dtype=STR, chunks=(1024,))

    def _append(self, group: h5py.Group, key: str, values: np.ndarray) -> None:
        if key not in group:
            row = max(1, int(np.prod(values.shape[1:])) * values.dtype.itemsize)
            chunk_rows = max(1, CHUNK_BYTES // row)
            dtype = STR if values.dtype.kind in "UO" else values.dtype
            group.create_dataset(key, shape=(0, *values.shape[1:]), maxshape=(None, *values.shape[1:]), dtype=dtype,
                                 chunks=(chunk_rows, *values.shape[1:]))
        ds = group[key]
        if ds.shape[1:] != values.shape[1:]:
            raise ValueError(f"{self.fh.filename}: {group.name}/{key} holds samples of shape {ds.shape[1:]}, "
                             f"an item gave {values.shape[1:]}; every item must give the same feature dimension")
        n = ds.shape[0]
        ds.resize(n + len(values), axis=0)
        ds[n:] = values.astype(object) if values.dtype.kind in "UO" else values

    def _row(self, table: str, *values: str) -> None:
        for column, value in zip(TABLES[table], values):
            self._append(self.fh[table], column, np.array([value], dtype=object))

    def add(self, result: Extracted, rel_path: str) -> None:
        """Record one item: its samples in its split (when extracted), or its skipped entry."""
        self._row("items", rel_path, result.sha256 or "")
        if result.features is None:
            self._row("skipped", result.item.item_id, rel_path, result.reason or "unknown")
            return
        label = self.labels[result.item.item_id] if self.labels else None
        data, labels, starts = item_windows(result.features, self.spec, label, self.step_names)
        group = self.fh[result.item.split]
        self._append(group, "data", data)
        if labels is not None:
            self._append(group, "labels", labels)
        if self.domains:
            self._append(group, "domains", np.full(len(data), self.domains[result.item.item_id], dtype=np.int64))
        self._append(group, "item_ids", np.array([result.item.item_id] * len(data), dtype=object))
        self._append(group, "window_start", starts)


def write_part(path: str | Path, results: Iterable[Extracted], spec: dict, labels: dict[str, np.ndarray],
               label_attrs: dict, root: str | Path, on_item=None, domains: dict[str, np.int64] | None = None) -> None:
    """Write a part file from a stream of results (written in place: callers write to a temporary name).

    `label_attrs` (class or target names, domain names) become root attributes of the final file."""
    with h5py.File(path, "w", libver="earliest") as fh:
        fh.attrs["label_attrs"] = json.dumps(label_attrs, sort_keys=True)
        writer = PartWriter(fh, spec, labels, domains)
        for result in results:
            writer.add(result, relative_path(result.item.path, root))
            if on_item is not None:
                on_item(result)
