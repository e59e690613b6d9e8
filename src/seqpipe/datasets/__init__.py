"""One module per dataset (mirdata style); `DATASETS` maps a dataset name to its module.

Every dataset module exposes the same small surface:

- `NAME`, `HOME`, `LICENSE_INFO`, `REMOTES` (url, bytes, sha256, archive member layout);
- `find_root(path) -> Path`: the dataset folder inside `path` (an extracted archive, a demo
  folder, or the user's own copy given as `datasets.<name>.root`);
- `load_items(root) -> list[Item]`: one record per source file, with its split and labels.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One source file of a dataset: a MIDI performance, a drum take or an audio clip."""

    item_id: str  # stable id, unique within the dataset (e.g. "drummer1/session1/1", "2004/foo", "10")
    path: Path  # absolute path of the file to extract features from
    split: str  # one of SPLITS
    labels: dict[str, Any] = field(default_factory=dict)  # e.g. {"style": "funk", "bpm": 96.0}


_MODULES = {
    "groove": "seqpipe.datasets.groove",
    "maestro": "seqpipe.datasets.maestro",
    "deam": "seqpipe.datasets.deam",
    "lakh": "seqpipe.datasets.lakh",
    "folder": "seqpipe.datasets.folder",
}
FOLDER_PREFIX = "folder_"  # datasets named folder_<anything> are folders too (several folders in one config)


def get_dataset(name: str) -> ModuleType:
    """Return the module of dataset `name`, with a clear error for an unknown name."""
    if name.startswith(FOLDER_PREFIX):
        name = "folder"
    if name not in _MODULES:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_MODULES))} (and folder_<name>)")
    return importlib.import_module(_MODULES[name])


def dataset_names() -> list[str]:
    """Names of the datasets seqpipe knows."""
    return sorted(_MODULES)


def normalise_split(value: str, *, where: str) -> str:
    """Map a dataset's split spelling (`validation`, `valid`, ...) onto train/val/test."""
    v = value.strip().lower()
    mapped = {"train": "train", "training": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}.get(v)
    if mapped is None:
        raise ValueError(f"{where}: split {value!r} is not one of train/validation/test")
    return mapped


def as_root(path: str | Path) -> Path:
    """Resolve a user-given root path."""
    return Path(path).expanduser().resolve()


def index_items(entries: Iterable[tuple[str, Item]], *, dataset: str, index: Path) -> list[Item]:
    """Items sorted by id from (where, item) pairs of a metadata file.

    A repeated id is an error naming where it appears; files the index lists but that are missing
    are skipped with one warning naming a few of them.
    """
    items: dict[str, Item] = {}
    missing: list[str] = []
    for where, item in entries:
        if item.item_id in items:
            raise ValueError(f"{where}: id {item.item_id!r} is listed twice; ids must be unique, remove one row")
        if not Path(item.path).is_file():
            missing.append(Path(item.path).name)
            continue
        items[item.item_id] = item
    if missing:
        warnings.warn(
            f"{dataset}: {len(missing)} file(s) listed in {index} are missing and were skipped, "
            f"e.g. {missing[:3]}; re-extract the archive to get them back",
            stacklevel=3,
        )
    return [items[key] for key in sorted(items)]
