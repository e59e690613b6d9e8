"""Stream a feature set's part files into its final HDF5 file and its skipped-files report.

The final file is written split by split in fixed blocks of rows (whatever the parts' sizes), as
contiguous datasets of known shape with no timestamps, so the same items give the same bytes
whether they were extracted in one job or in many shards. The skipped report lists every item
that did not become samples: the manifest's own `skipped` entries, raw files the manifest lists
that are gone, and the items that failed extraction; it is written before the failure threshold
is checked, so it is there to read when the stage fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from seqpipe import __version__
from seqpipe.taskfile.hdf5 import attr_value
from seqpipe.datasets import SPLITS
from seqpipe.features.parts import STR, TABLES
from seqpipe.io import atomic_path, canonical_json, config_hash, sha256_file

log = logging.getLogger("seqpipe.features")
BLOCK_BYTES = 4 << 20  # rows copied per step: about 4 MB, whatever the parts' sizes
TABLE_BLOCK = 4096


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def table_rows(fh: h5py.File, table: str) -> Iterator[dict[str, str]]:
    """Rows of a part's `items` or `skipped` table, read in blocks."""
    columns = TABLES[table]
    n = fh[table][columns[0]].shape[0]
    for start in range(0, n, TABLE_BLOCK):
        block = {c: _text(fh[table][c][start : start + TABLE_BLOCK]) for c in columns}
        yield from (dict(zip(columns, row)) for row in zip(*block.values()))


def keep_previous(out: str | Path, keep: str | Path) -> None:
    """Hard-link (or copy) a freshly written good file to `keep`, where it outlives Snakemake's
    deletion of the job's outputs before a rerun (results/features/.previous/ in the workflow)."""
    keep = Path(keep)
    keep.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(keep) as tmp:
        tmp.unlink()
        try:
            os.link(out, tmp)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(out, tmp)


def missing_raw_files(manifest: dict) -> list[dict]:
    """Skipped entries for files the manifest lists that are no longer in the dataset folder."""
    root = Path(manifest["root"])
    return [
        {"item_id": Path(rel).stem, "path": rel,
         "reason": "listed in the manifest but missing from the dataset folder (deleted or moved after indexing); "
                   "restore the file, or rebuild the manifest (snakemake --forcerun index_root) to drop it"}
        for rel in manifest["files"]
        if not (root / rel).is_file()
    ]


def manifest_skipped(manifest: dict) -> list[dict]:
    """The manifest's own `skipped` entries (items its indexer could not turn into items)."""
    return [{"item_id": str(e.get("id", "")), "path": str(e.get("path", "")), "reason": str(e.get("reason", "unknown"))}
            for e in manifest.get("skipped", [])]


def write_report(path: str | Path, header: dict, groups: list) -> int:
    """Write the skipped report as JSON, streaming its entries from iterables; returns their count."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        for key in sorted(header):
            fh.write(f"  {json.dumps(key)}: {json.dumps(header[key], sort_keys=True, ensure_ascii=False)},\n")
        fh.write('  "skipped": [')
        for group in groups:
            for entry in group:
                fh.write(("," if count else "") + "\n    " + json.dumps(entry, sort_keys=True, ensure_ascii=False))
                count += 1
        fh.write("\n  ]\n}\n" if count else "]\n}\n")
    return count


def raw_digest(manifest: dict, parts: list[h5py.File], missing: set[str]) -> tuple[str, list[str]]:
    """SHA-256 of the map {path: SHA-256 of the bytes read now} over every raw file, and the files
    whose bytes differ from the manifest. Items are hashed by the workers that read them; the other
    raw files (metadata, annotations) are hashed here."""
    measured: dict[str, str] = {}
    for fh in parts:
        for row in table_rows(fh, "items"):
            if row["sha256"]:
                measured[row["path"]] = row["sha256"]
    root = Path(manifest["root"])
    for rel in manifest["files"]:
        if rel not in measured and rel not in missing:
            try:
                measured[rel] = sha256_file(root / rel)
            except OSError:  # unreadable now: its item is in the skipped report already
                continue
    changed = [p for p, h in measured.items() if p in manifest["files"] and manifest["files"][p].get("sha256") not in (None, h)]
    return hashlib.sha256(canonical_json(dict(sorted(measured.items()))).encode()).hexdigest(), changed


def _split_sizes(parts: list[h5py.File], split: str) -> list[int]:
    return [fh[split]["data"].shape[0] if "data" in fh[split] else 0 for fh in parts]


def _blocks(parts: list[h5py.File], split: str, key: str, sizes: list[int], block: int) -> Iterator[np.ndarray]:
    """The concatenation of the parts' `split/key`, in blocks of `block` rows (the last one
    shorter), each filled in place from the parts: memory holds one block."""
    total = sum(sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ref = next(fh[split][key] for fh, n in zip(parts, sizes) if n)
    is_text = h5py.check_string_dtype(ref.dtype) is not None
    for start in range(0, total, block):
        stop = min(total, start + block)
        buf = np.empty((stop - start, *ref.shape[1:]), dtype=object if is_text else ref.dtype)
        for fh, lo, hi in zip(parts, offsets[:-1], offsets[1:]):
            a, b = max(start, lo), min(stop, hi)
            if a >= b:
                continue
            source = fh[split][key]
            if is_text:
                buf[a - start : b - start] = source[a - lo : b - lo]
            else:
                source.read_direct(buf, np.s_[a - lo : b - lo], np.s_[a - start : b - start])
        yield buf


def write_final(out: str | Path, parts: list[h5py.File], attrs: dict, spec: dict) -> dict[str, tuple]:
    """Copy the parts' splits into `out` (atomically); returns each split's data shape."""
    shapes = {}
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w", libver="earliest") as fh:
            for key in sorted(attrs):
                fh.attrs[key] = attr_value(attrs[key])
            for split in SPLITS:
                sizes = _split_sizes(parts, split)
                if not sum(sizes):
                    raise ValueError(
                        f"feature set {spec['name']}: the {split} split is empty after extraction; raise "
                        f"datasets.{spec['dataset']}.limit or check the skipped report"
                    )
                source = next(p[split] for p, n in zip(parts, sizes) if n)
                group = fh.create_group(split)
                for key in ("data", "labels", "domains", "item_ids", "window_start"):
                    if key not in source:
                        continue
                    ref = source[key]
                    dtype = STR if h5py.check_string_dtype(ref.dtype) else ref.dtype
                    total = (sum(sizes), *ref.shape[1:])
                    ds = group.create_dataset(key, shape=total, dtype=dtype, track_times=False)
                    row = max(1, int(np.prod(ref.shape[1:])) * (64 if dtype is STR else ref.dtype.itemsize))  # ~64 B per id string
                    block = max(1, BLOCK_BYTES // row)
                    start = 0
                    for values in _blocks(parts, split, key, sizes, block):
                        ds[start : start + len(values)] = values
                        start += len(values)
                shapes[split] = group["data"].shape
    return shapes


def merge(part_paths: list[str | Path], manifest: dict, spec: dict, kind_attrs: dict, out: str | Path,
          skipped_out: str | Path, previous: str | Path | None = None) -> dict:
    """Merge parts into `out` and write `skipped_out`; fail (after writing the report) when more
    than `max_failed_fraction` of the items were skipped. A good `out` is also kept at `previous`
    (when given), and a failure names that earlier file. Returns the report's header."""
    try:
        header = _merge(part_paths, manifest, spec, kind_attrs, out, skipped_out)
    except (RuntimeError, ValueError) as err:
        if previous is not None and Path(previous).exists():
            raise type(err)(f"{err}; the previous good file is kept at {previous} (copy it back to use it)") from err
        raise
    if previous is not None:
        keep_previous(out, previous)
    return header


def _merge(part_paths: list[str | Path], manifest: dict, spec: dict, kind_attrs: dict, out: str | Path,
           skipped_out: str | Path) -> dict:
    with ExitStack() as stack:
        parts = [stack.enter_context(h5py.File(p, "r")) for p in part_paths]
        label_attrs = {str(fh.attrs["label_attrs"]) for fh in parts}
        if len(label_attrs) > 1:
            raise ValueError(f"parts {', '.join(map(str, part_paths))} number their labels differently; they come from "
                             "different builds: delete them and rerun the feature set")
        missing = missing_raw_files(manifest)
        from_manifest = manifest_skipped(manifest)
        counted = {e["path"] for e in from_manifest}
        missing = [e for e in missing if e["path"] not in counted]
        items_total = sum(fh["items"]["path"].shape[0] for fh in parts)
        failed = sum(fh["skipped"]["id"].shape[0] for fh in parts)
        # with `limit`, entries about the whole dataset are listed but not counted (most lie beyond the limit)
        dataset_wide = 0 if spec.get("limit") else len(from_manifest) + len(missing)
        total, n_skipped = items_total + dataset_wide, failed + dataset_wide
        header = {"dataset": spec["dataset"], "feature_set": spec["name"], "items": total, "extracted": total - n_skipped,
                  "max_failed_fraction": spec["max_failed_fraction"]}
        if spec.get("limit"):
            header["listed_not_counted"] = len(from_manifest) + len(missing)
        part_skipped = ({"item_id": r["id"], "path": r["path"], "reason": r["reason"]} for fh in parts for r in table_rows(fh, "skipped"))
        write_report(skipped_out, header, [from_manifest, missing, part_skipped])
        if n_skipped:
            log.warning("%d of %d items skipped; each with its reason in %s", n_skipped, total, skipped_out)
        if not total or n_skipped > spec["max_failed_fraction"] * total:
            raise RuntimeError(
                f"feature set {spec['name']}: {n_skipped} of {total} items failed, more than "
                f"max_failed_fraction={spec['max_failed_fraction']}; see {skipped_out} for each file and reason"
            )
        digest, changed = raw_digest(manifest, parts, {e["path"] for e in missing})
        if changed:
            log.warning("%d raw file(s) differ from the manifest (e.g. %s): the provenance hashes the bytes read now; "
                        "rebuild the manifest (snakemake --forcerun index_root) to record them", len(changed), changed[:3])
        spec_for_file = {k: v for k, v in spec.items() if k != "shards"}
        attrs = {
            **kind_attrs,
            **json.loads(next(iter(label_attrs))),
            "provenance": {
                "dataset": spec["dataset"],
                "source": manifest.get("source", "unknown"),
                "raw_files": len(manifest["files"]) - len(missing),
                "raw_sha256": digest,
                "spec": spec_for_file,
                "spec_hash": config_hash(spec_for_file),
                "seqpipe_version": __version__,
            },
        }
        shapes = write_final(out, parts, attrs, spec)
    log.info("wrote %s: %s", out, shapes)
    return header
