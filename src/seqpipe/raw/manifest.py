"""The manifest of a dataset's raw files: every file's size and SHA-256, and where the root is.

Features depend on the manifest, not on thousands of raw files. For a user's copy (`source:
root`) the `index_root` rule takes `tree_state(root, dataset)` as a parameter: a fingerprint of
what the dataset module indexes (stats only, no reading; for Lakh the stats of its 16 folders,
so a dry run on 176,581 files costs a few stats), so adding, deleting or replacing a raw file
reindexes the copy, and a changed checksum in the manifest reruns the features built from it.
The manifest lists the files the module indexes (`indexed_files`), not whatever else lies under
the root. A
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
from types import ModuleType

from seqpipe.datasets import as_root, get_dataset, relative_path, walk_files
from seqpipe.io import canonical_json, read_json, sha256_file, write_json


def _raw_files(root: Path, module: ModuleType | None = None) -> list[Path]:
    """The files the dataset module indexes (its `indexed_files`), else every file under the root.

    Symbolic links are followed (git-annex, DVC copies) and paths kept below the root.
    """
    listed = getattr(module, "indexed_files", None)
    return listed(root) if listed is not None else walk_files(root)


def _stat_line(path: Path, base: Path) -> bytes:
    stat = os.stat(path)
    return f"{relative_path(path, base)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()


def tree_state(path: str | Path, dataset: str | None = None) -> str:
    """A fingerprint of what a dataset module indexes under `path`, from stats alone (no reading).

    With a `dataset` whose module names the folders it lists (`watched`, e.g. Lakh's 16 hex-digit
    folders), the stats of those folders: a file added, removed, renamed or re-linked there
    changes it, at the cost of a few stats whatever the copy's size. Otherwise the path, size and
    modification time of every file it indexes (`indexed_files`, else every file). "missing" when
    `path` is not a folder, "no layout" when the module finds no layout it knows there (the index
    job then says why).
    """
    base = Path(path).expanduser()
    if not base.is_dir():
        return "missing"
    module = get_dataset(dataset) if dataset else None
    root = base
    if module is not None:
        try:
            root = module.find_root(base)
        except FileNotFoundError:  # DatasetLayoutError included
            return "no layout"
    watched = getattr(module, "watched", None)
    digest = hashlib.sha256()
    for p in watched(root) if watched is not None else _raw_files(root, module):
        digest.update(_stat_line(p, base))
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
    for p in _raw_files(root, module):
        rel, stat = relative_path(p, root), p.stat()
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
    """Write a manifest; the root is stored relative to the manifest's folder when it was given
    relative (to the project folder) or lies below that folder, so a moved project still finds it;
    a root elsewhere given absolute stays absolute. Links are never resolved."""
    out = Path(out)
    given = str(manifest["root"])
    root, home = as_root(given), as_root(out.parent)
    if not os.path.isabs(given) or root.is_relative_to(home):
        manifest = {**manifest, "root": os.path.relpath(root, home)}
    write_json(out, manifest)


def read_manifest(path: str | Path) -> dict:
    """Read a manifest and make its root an absolute path (relative to the manifest's folder; links kept)."""
    manifest = read_json(path)
    for key in ("dataset", "root", "files"):
        if key not in manifest:
            raise ValueError(f"{path}: manifest has no {key!r}; rerun the demo or index_root rule")
    manifest["root"] = os.path.normpath(as_root(Path(path).parent) / manifest["root"])
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
