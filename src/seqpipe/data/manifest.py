"""The manifest of a dataset's raw files: every file's size and SHA-256, and where the root is.

Features depend on the manifest, not on thousands of raw files, and copy its checksum into the
HDF5 provenance, so a feature file says exactly which raw bytes it came from.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from seqpipe.datasets import get_dataset
from seqpipe.io import canonical_json, read_json, sha256_file, write_json


def build_manifest(dataset: str, path: str | Path, source: str) -> dict:
    """List every file under the dataset root found in `path`, with its size and SHA-256."""
    module = get_dataset(dataset)
    root = module.find_root(Path(path))
    files = {
        p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    if not files:
        raise FileNotFoundError(f"{root}: the {dataset} dataset folder holds no files")
    manifest = {"dataset": dataset, "source": source, "root": str(root), "files": files}
    if hasattr(module, "skipped_entries"):  # files that cannot become items (interface 3)
        manifest["skipped"] = module.skipped_entries(root)
    return manifest


def files_digest(manifest: dict) -> str:
    """One SHA-256 over all file names and checksums: the identity of the raw data."""
    return hashlib.sha256(canonical_json(manifest["files"]).encode()).hexdigest()


def write_manifest(manifest: dict, out: str | Path) -> None:
    """Write a manifest; the root is stored relative to the manifest when it lies below it."""
    out = Path(out)
    root = Path(manifest["root"]).resolve()
    try:
        manifest = {**manifest, "root": os.path.relpath(root, out.parent.resolve())}
    except ValueError:  # another drive
        pass
    write_json(out, manifest)


def read_manifest(path: str | Path) -> dict:
    """Read a manifest and resolve its root to an absolute path."""
    manifest = read_json(path)
    for key in ("dataset", "root", "files"):
        if key not in manifest:
            raise ValueError(f"{path}: manifest has no {key!r}; rerun the demo or index_root rule")
    manifest["root"] = str((Path(path).parent / manifest["root"]).resolve())
    return manifest


def main(argv: list[str] | None = None) -> None:
    """`seqpipe manifest --dataset NAME --root DIR --out FILE`"""
    parser = argparse.ArgumentParser(prog="seqpipe manifest", description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--source", default="root")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    write_manifest(build_manifest(args.dataset, args.root, args.source), args.out)
