"""What every dataset module shares: `Item`, `Index`, the split names, the layout error and the helpers that
index a dataset's files (skipped entries with their reasons, walking a tree of links)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One source file of a dataset: a MIDI performance, a drum take or an audio clip."""

    item_id: str  # stable id, unique within the dataset (e.g. "drummer1/session1/1", "2004/foo", "10")
    path: Path  # absolute path of the file to extract features from
    split: str  # one of SPLITS
    labels: dict[str, Any] = field(default_factory=dict)  # e.g. {"style": "funk", "bpm": 96.0}


def normalise_split(value: str, *, where: str) -> str:
    """Map a dataset's split spelling (`validation`, `valid`, ...) onto train/val/test."""
    v = value.strip().lower()
    mapped = {"train": "train", "training": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}.get(v)
    if mapped is None:
        raise ValueError(f"{where}: split {value!r} is not one of train/validation/test")
    return mapped


@dataclass(frozen=True)
class Index:
    """A dataset's items, and the entries of its metadata that could not become items (and why)."""

    items: list[Item]
    skipped: list[dict[str, str]]  # {"id": str, "path": str relative to the root, "reason": str}


class DatasetLayoutError(FileNotFoundError):
    """A dataset root does not hold any layout the dataset module knows; the message says what was looked for."""


def where_not_found(path: str | Path) -> str:
    """' (PATH does not exist)' or ' (PATH is a file)' for a root that is no folder; '' for a folder."""
    path = Path(path)
    if path.is_dir():
        return ""
    return f" ({path} {'is a file, not a folder' if path.exists() else 'does not exist'})"


def as_root(path: str | Path) -> Path:
    """A user-given root as an absolute path, symbolic links kept (never resolved)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def relative_path(path: str | Path, root: str | Path) -> str:
    """`path` relative to `root` as a POSIX string, computed on the unresolved paths."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be read as a source file (missing, dangling link, folder, unreadable), or None."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return f"a symbolic link to {os.readlink(path)}, which does not exist (fetch the linked content, e.g. git annex get)"
    if not path.exists():
        return "listed in the dataset's metadata but missing; re-extract the archive to get it back"
    if path.is_dir():
        return "a folder where a file is expected"
    if not path.is_file():
        return "not a regular file (a pipe, socket or device)"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied); fix the file's permissions"
    return None


def skipped_entry(item_id: str, path: str | Path, root: str | Path, reason: str) -> dict[str, str]:
    """One entry of a manifest's `skipped` list."""
    return {"id": item_id, "path": relative_path(path, root), "reason": reason}


def index_items(
    entries: Iterable[tuple[str, Item]],
    *,
    dataset: str,
    index: Path,
    root: Path,
    suffixes: tuple[str, ...] = (),
) -> Index:
    """Items sorted by id from (where, item) pairs of a metadata file; unusable files become skipped entries.

    A repeated id is an error naming where it appears. A listed file that is missing, a folder,
    unreadable, or (with `suffixes`) not named with one of them is skipped with its reason.
    """
    items: dict[str, Item] = {}
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    for where, item in entries:
        if item.item_id in seen:
            raise ValueError(f"{where}: id {item.item_id!r} is listed twice; ids must be unique, remove one row")
        seen.add(item.item_id)
        reason = file_problem(item.path)
        if reason is None and suffixes and Path(item.path).suffix.lower() not in suffixes:
            reason = f"not named as {dataset} names its files (expected a {' or '.join(suffixes)} file, as listed in {Path(index).name})"
        if reason is not None:
            skipped.append(skipped_entry(item.item_id, item.path, root, reason))
            continue
        items[item.item_id] = item
    return Index([items[key] for key in sorted(items)], sorted(skipped, key=lambda e: e["id"]))


def warn_skipped(index: Index, dataset: str) -> list[Item]:
    """The items of `index`, with one warning naming a few skipped entries when there are any."""
    if index.skipped:
        examples = "; ".join(f"{e['path']}: {e['reason']}" for e in index.skipped[:3])
        warnings.warn(
            f"{dataset}: {len(index.skipped)} listed item(s) skipped (the manifest lists each with its reason), e.g. {examples}",
            stacklevel=3,
        )
    return index.items


def walk_files(root: str | Path) -> list[Path]:
    """Every regular file below `root`, sorted, following symbolic links to files and folders.

    Paths stay under `root` as given (never resolved), so a tree of links (git-annex, DVC) lists
    the same relative paths as a plain copy; a link back to a folder already being walked is
    not followed twice.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        found += [Path(folder) / name for name in files if (Path(folder) / name).is_file()]
    return sorted(found)
