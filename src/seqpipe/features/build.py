"""Build one feature set's HDF5 file from a dataset's raw files.

Items are extracted in parallel worker processes (pebble), each with a per-file timeout; an item
that cannot be read, hangs its parser or kills its worker is skipped and listed, with its reason,
in a report beside the HDF5 file. The stage fails only when more than
`max_failed_fraction` of the items fail. Each item is cut into fixed-length windows that keep the
item's id, so validation can check that no source item appears in two splits.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from pebble import ProcessExpired, ProcessPool

from seqpipe import __version__
from seqpipe.data.domains import ATTR as DOMAIN_ATTR
from seqpipe.data.domains import encode_domains
from seqpipe.data.hdf5 import write_splits
from seqpipe.data.manifest import files_digest, read_manifest
from seqpipe.datasets import SPLITS, Item, get_dataset
from seqpipe.io import config_hash, write_json

log = logging.getLogger("seqpipe.features")


@dataclass
class Extracted:
    """The result of one item: its features, or why it was skipped."""

    item: Item
    features: np.ndarray | None
    reason: str | None = None


def kind_module(kind: str) -> ModuleType:
    """The module implementing a feature kind (seqpipe.features.kinds.<kind>)."""
    return importlib.import_module(f"seqpipe.features.kinds.{kind}")


def _extract_one(args: tuple[Item, dict]) -> Extracted:
    item, spec = args
    try:
        features = np.asarray(kind_module(spec["kind"]).extract(item, spec), dtype=np.float32)
        if features.ndim != 2 or len(features) == 0:
            return Extracted(item, None, f"extractor returned shape {features.shape}, expected [steps, features]")
        if not np.isfinite(features).all():
            return Extracted(item, None, "features contain NaN or Inf")
        return Extracted(item, features)
    except Exception as err:  # noqa: BLE001 - any failure of one file skips that file only
        return Extracted(item, None, f"{type(err).__name__}: {err}")


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def extract_all(items: list[Item], spec: dict, workers: int, timeout: float | None = None) -> list[Extracted]:
    """Extract every item in `workers` processes, each file cut off after `timeout` seconds.

    A file that hangs its parser or crashes its worker becomes a skipped item with the reason;
    the result keeps the items' order.
    """
    jobs = [(item, spec) for item in items]
    results = []
    with ProcessPool(max_workers=max(1, workers), initializer=_init_worker) as pool:
        outcomes = pool.map(_extract_one, jobs, timeout=timeout).result()
        for item, _ in jobs:
            try:
                results.append(next(outcomes))
            except FuturesTimeout:
                results.append(Extracted(item, None, f"timed out after {timeout:g} s (features.{spec['name']}.timeout_s)"))
            except ProcessExpired as err:
                results.append(Extracted(item, None, f"the worker process died ({err})"))
    return results


def windows(features: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut [steps, D] into [n, window, D] (zero-padding a short item to one window); and the starts."""
    steps = len(features)
    if steps < window:
        padded = np.zeros((window, features.shape[1]), dtype=np.float32)
        padded[:steps] = features
        return padded[None], np.zeros(1, dtype=np.int64)
    starts = np.arange(0, steps - window + 1, hop, dtype=np.int64)
    return np.stack([features[s : s + window] for s in starts]), starts


def encode_targets(items: list[Item], target: str | list[str] | None) -> tuple[dict[str, np.ndarray], dict]:
    """Labels per item id: class indices for a text target, float vectors for numeric targets, none for None."""
    if target is None:
        return {}, {}
    names = [target] if isinstance(target, str) else list(target)
    for item in items:
        missing = [n for n in names if n not in item.labels]
        if missing:
            raise KeyError(f"item {item.item_id}: no label {missing[0]!r}; it has {sorted(item.labels)}")
    if isinstance(target, str) and isinstance(items[0].labels[target], str):
        classes = sorted({item.labels[target] for item in items})
        index = {c: i for i, c in enumerate(classes)}
        return {it.item_id: np.int64(index[it.labels[target]]) for it in items}, {"class_names": classes}
    values = {it.item_id: np.array([float(it.labels[n]) for n in names], dtype=np.float32) for it in items}
    return values, {"target_names": names}


def step_target_names(spec: dict) -> list[str]:
    """Per-step target names of a feature kind whose extractor appends them as its last columns ([] if none)."""
    names = getattr(kind_module(spec["kind"]), "step_targets", None)
    return list(names(spec)) if names else []


def item_domains(items: list[Item], column: str | None) -> dict:
    """Domain id per item id from the label `column` (and the names under `domain_names`); {} without a column."""
    if not column:
        return {}
    missing = [item.item_id for item in items if column not in item.labels]
    if missing:
        raise KeyError(f"item {missing[0]}: no label {column!r} for the feature set's `domain`; it has {sorted(items[0].labels) if items else []}")
    ids, names = encode_domains([str(item.labels[column]) for item in items])
    return {**{item.item_id: int(i) for item, i in zip(items, ids)}, DOMAIN_ATTR: names}


def assemble(results: list[Extracted], spec: dict) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Window every extracted item and group the windows by split."""
    ok = [r for r in results if r.features is not None]
    step_names = step_target_names(spec)
    if spec.get("forecast"):
        if not 0 < spec["forecast"] < spec["window"]:
            raise ValueError(f"feature set {spec['name']}: forecast {spec['forecast']} must lie between 0 and window {spec['window']} "
                             "(the window holds the input steps and the steps to predict)")
        labels, label_attrs = {}, {"target_names": kind_module(spec["kind"]).feature_names(spec)}
    elif step_names:
        labels, label_attrs = {}, {"target_names": step_names}
    else:
        labels, label_attrs = encode_targets([r.item for r in ok], spec["target"])
    domains = item_domains([r.item for r in ok], spec.get("domain"))
    if domains:
        label_attrs[DOMAIN_ATTR] = domains.pop(DOMAIN_ATTR)
    parts: dict[str, dict[str, list]] = {s: {"data": [], "labels": [], "item_ids": [], "window_start": [], "domains": []} for s in SPLITS}
    for r in ok:
        features = r.features[:, : -len(step_names)] if step_names else r.features
        data, starts = windows(features, spec["window"], spec["hop"])
        part = parts[r.item.split]
        part["data"].append(data)
        if spec.get("forecast"):  # the window's last `forecast` steps become the targets of its first steps
            data, future = data[:, : -spec["forecast"]], data[:, -spec["forecast"] :]
            part["data"][-1] = data
            part["labels"].append(future)
        elif step_names:  # per-step targets: windowed with the features, within the item
            part["labels"].append(windows(r.features[:, -len(step_names) :], spec["window"], spec["hop"])[0])
        elif labels:
            part["labels"].append(np.repeat(labels[r.item.item_id][None], len(data), axis=0))
        part["item_ids"].append(np.array([r.item.item_id] * len(data)))
        part["window_start"].append(starts)
        if domains:
            part["domains"].append(np.full(len(data), domains[r.item.item_id], dtype=np.int64))
    splits = {}
    for split, part in parts.items():
        if not part["data"]:
            raise ValueError(
                f"feature set {spec['name']}: the {split} split is empty after extraction "
                f"({len(ok)} items extracted); raise datasets.{spec['dataset']}.limit or check the skipped report"
            )
        splits[split] = {key: np.concatenate(values) for key, values in part.items() if values}
    return splits, label_attrs


def build(manifest_path: str | Path, spec: dict, out: str | Path, skipped_out: str | Path, workers: int = 1) -> dict:
    """Extract a feature set and write its HDF5 file and skipped-files report. Returns the report."""
    manifest = read_manifest(manifest_path)
    dataset = get_dataset(spec["dataset"])
    items = dataset.load_items(Path(manifest["root"]))
    if spec.get("limit"):
        items = items[: spec["limit"]]
    kind = kind_module(spec["kind"])
    log.info("extracting %s from %d %s items with %d workers", spec["kind"], len(items), spec["dataset"], workers)
    results = extract_all(items, spec, workers, spec.get("timeout_s"))
    skipped = [
        {"item_id": r.item.item_id, "path": str(Path(r.item.path).relative_to(manifest["root"])), "reason": r.reason}
        for r in results
        if r.features is None
    ]
    report = {
        "dataset": spec["dataset"],
        "feature_set": spec["name"],
        "items": len(items),
        "extracted": len(items) - len(skipped),
        "skipped": skipped,
        "max_failed_fraction": spec["max_failed_fraction"],
    }
    write_json(skipped_out, report)
    for entry in skipped:
        log.warning("skipped %s (%s): %s", entry["item_id"], entry["path"], entry["reason"])
    if not items or len(skipped) > spec["max_failed_fraction"] * len(items):
        raise RuntimeError(
            f"feature set {spec['name']}: {len(skipped)} of {len(items)} items failed, more than "
            f"max_failed_fraction={spec['max_failed_fraction']}; see {skipped_out} for each file and reason"
        )
    splits, label_attrs = assemble(results, spec)
    attrs = {
        "feature_names": kind.feature_names(spec),
        "frame_rate": kind.frame_rate(spec),
        "feature_set": spec["name"],
        "feature_kind": spec["kind"],
        "dataset": spec["dataset"],
        **label_attrs,
        "provenance": {
            "dataset": spec["dataset"],
            "source": manifest.get("source", "unknown"),
            "raw_files": len(manifest["files"]),
            "raw_sha256": files_digest(manifest),
            "spec": spec,
            "spec_hash": config_hash(spec),
            "seqpipe_version": __version__,
        },
    }
    write_splits(out, splits, attrs)
    log.info("wrote %s: %s", out, {s: splits[s]["data"].shape for s in SPLITS})
    return report


def main(argv: list[str] | None = None) -> None:
    """`seqpipe features --manifest M --spec JSON --out H5 --skipped JSON [--workers N]`"""
    parser = argparse.ArgumentParser(prog="seqpipe features", description=__doc__)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--spec", required=True, help="the feature set's settings as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--skipped", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        build(args.manifest, json.loads(args.spec), args.out, args.skipped, args.workers)
    except (RuntimeError, ValueError, KeyError, FileNotFoundError) as err:
        log.error("%s", err)
        sys.exit(1)
