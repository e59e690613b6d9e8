"""The manifest of a dataset's raw files: every file's size and SHA-256, and where the root is.

Features depend on the manifest, not on thousands of raw files. For a user's copy (`source:
root`) the `index_root` rule takes `tree_state(root)` (every file's path, size and modification
time: a stat of each file, no reading) as a parameter, so changing, adding or deleting a raw file
reindexes the copy, and a changed checksum in the manifest reruns the features built from it. A
reindex hashes only the files whose size or modification time changed since the last one (a
cache beside the manifest, `.<manifest name>.hashes.json`, that Snakemake never deletes). The
feature stage hashes every file it reads again, so the HDF5 provenance names the bytes it used.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from seqpipe.datasets import get_dataset, walk_files
from seqpipe.io import canonical_json, read_json, sha256_file, write_json


def _raw_files(root: Path) -> list[Path]:
    return walk_files(root)  # symbolic links followed (git-annex, DVC copies), paths kept below the root


def tree_state(path: str | Path) -> str:
    """A fingerprint of every file under `path` from its path, size and modification time (no
    reading): it changes when a file is changed, added or removed. "missing" when `path` is not a folder."""
    root = Path(path).expanduser()
    if not root.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for p in _raw_files(root):
        stat = p.stat()
        digest.update(f"{p.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def build_manifest(dataset: str, path: str | Path, source: str, cache: str | Path | None = None) -> dict:
    """List every file under the dataset root found in `path`, with its size and SHA-256, and the
    items the dataset's metadata lists that cannot become items (`skipped`, with the reason).

    `cache` (optional): a JSON file of {path: [bytes, mtime_ns, sha256]} from the last run; a file
    whose size and modification time are unchanged is not read again. It is rewritten after.
    """
    module = get_dataset(dataset)
    root = module.find_root(Path(path))
    known = read_json(cache) if cache and Path(cache).is_file() else {}
    files, seen = {}, {}
    for p in _raw_files(root):
        rel, stat = p.relative_to(root).as_posix(), p.stat()
        old = known.get(rel)
        digest = old[2] if old and old[:2] == [stat.st_size, stat.st_mtime_ns] else sha256_file(p)
        files[rel] = {"bytes": stat.st_size, "sha256": digest}
        seen[rel] = [stat.st_size, stat.st_mtime_ns, digest]
    if cache:
        write_json(cache, seen)
    if not files:
        raise FileNotFoundError(f"{root}: the {dataset} dataset folder holds no files")
    skipped = module.index(root).skipped  # listed items that cannot become items, with the reason
    return {"dataset": dataset, "source": source, "root": str(root), "files": files, "skipped": skipped}


def write_manifest(manifest: dict, out: str | Path) -> None:
    """Write a manifest; the root is stored relative to the manifest when it lies below it."""
    out = Path(out)
    root = Path(manifest["root"]).resolve()
    if root.is_relative_to(out.parent.resolve()):  # a root elsewhere stays absolute: a moved project still finds it
        manifest = {**manifest, "root": os.path.relpath(root, out.parent.resolve())}
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
    parser = argparse.ArgumentParser(prog="seqpipe manifest", description="List a dataset copy's files with their checksums, and "
                                     "the items its metadata lists that cannot be read, for the feature stage.")
    parser.add_argument("--dataset", required=True, help="the dataset module (groove, maestro, deam, lakh, folder)")
    parser.add_argument("--root", required=True, help="the folder the dataset's archive extracted to")
    parser.add_argument("--source", default="root", help="where the copy came from (root, demo, download; recorded)")
    parser.add_argument("--out", required=True, help="the manifest to write")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        write_manifest(build_manifest(args.dataset, args.root, args.source, cache=out.parent / f".{out.name}.hashes.json"), out)
    except (ValueError, KeyError, FileNotFoundError) as err:  # the dataset modules' messages name the fix
        sys.exit(f"seqpipe manifest: {err}")
