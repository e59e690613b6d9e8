"""Lakh MIDI Dataset v0.1 (LMD), the full set.

176,581 unique MIDI files scraped from the web, each named by the MD5 of its content and stored
under `lmd_full/<first hex digit>/<md5>.mid`; the authors warn that a few thousand are likely
corrupt (seqpipe's feature stage skips and reports them). There are no labels and no official
split: seqpipe splits by a hash of the MD5 (80/10/10), so an item's split never depends on which
other files are present. Suited to self-supervised tasks (e.g. piano-roll reconstruction).
The archive is 1.77 GB (plain HTTP; checked by size and SHA-256). `lmd_matched` (1.4 GB) is
the subset matched to the Million Song Dataset.

Licence: Creative Commons Attribution 4.0 International (CC BY 4.0).
Home page: https://colinraffel.com/projects/lmd/
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from seqpipe.datasets.base import DatasetLayoutError, Index, Item, file_problem, skipped_entry, warn_skipped
from seqpipe.datasets.registry import register_dataset

NAME = "lakh"
HOME = "https://colinraffel.com/projects/lmd/"
LICENSE_INFO = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
PUBLISHED_ITEMS = 176_581  # items in the published release: the shard count's estimate before a copy is counted
REMOTES = {
    "lmd_full": dict(
        url="http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz",
        bytes=1_768_163_879,
        sha256="6fcfe2ac49ca08f3f214cec86ab138d4fc4dabcd7f27f491a838dae6db45a12b",
        md5="2536ce3fd2cede53ddaa264f731859ab",
        filename="lmd_full.tar.gz",
    ),
}

FOLDER = "lmd_full"
HEX_DIRS = tuple("0123456789abcdef")
MD5_NAME = re.compile(r"^[0-9a-f]{32}$")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def find_root(path: Path) -> Path:
    """The folder holding the hex-digit sub-folders, given that folder or its parent (links not resolved)."""
    path = Path(path)
    for candidate in (path, path / FOLDER):
        if candidate.is_dir() and any((candidate / d).is_dir() for d in HEX_DIRS):
            return candidate
    raise DatasetLayoutError(
        f"Lakh MIDI: looked for the sub-folders 0/ ... 9/, a/ ... f/ of <md5>.mid files in {path} and in "
        f"{path / FOLDER}, and found {'no such folder' if not path.is_dir() else 'none'}. Set "
        f"datasets.{NAME}.root to the `{FOLDER}` folder extracted from {REMOTES['lmd_full']['filename']} "
        "(or its parent), or use source: download or source: demo"
    )


def entries(root: Path) -> list[Path]:
    """Every entry `index` looks at: the non-hidden names in the hex-digit folders, sorted (listed, not stat'ed)."""
    found = []
    for digit in HEX_DIRS:
        try:
            found += [root / digit / name for name in os.listdir(root / digit) if not name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            continue
    return sorted(found)


def indexed_files(root: Path) -> list[Path]:
    """The files of the copy that `index` reads or reports (what the manifest lists): nothing else under the root."""
    return [path for path in entries(root) if path.is_file()]


def watched(root: Path) -> list[Path]:
    """The folders whose entries `index` reads: a file added, removed, renamed or re-linked there changes their stat."""
    return [root, *(root / digit for digit in HEX_DIRS if (root / digit).is_dir())]


def count_items(root: Path) -> int:
    """How many items the copy can hold at most (the entries of its hex-digit folders): names only, no stat, no sort."""
    root, count = find_root(Path(root)), 0
    for digit in HEX_DIRS:
        try:
            with os.scandir(root / digit) as found:
                count += sum(1 for entry in found if not entry.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return count


def split_of(md5: str) -> str:
    """Deterministic split from a hash of the file's MD5 name."""
    position = int(hashlib.sha256(md5.encode()).hexdigest()[:8], 16) / 16**8
    if position < SPLIT_FRACTIONS["train"]:
        return "train"
    return "val" if position < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"] else "test"


@register_dataset(NAME)
def index(root: Path) -> Index:
    """One item per readable `<hex>/<md5>.mid` file, sorted by MD5; every other entry skipped with its reason.

    Symbolic links (git-annex, DVC) are read through, never resolved: item paths stay below the
    root. Hidden files (`.DS_Store`, ...) are ignored.
    """
    root = find_root(Path(root))
    items, skipped = [], []
    for path in entries(root):
        named = path.suffix.lower() in {".mid", ".midi"} and MD5_NAME.match(path.stem) is not None
        reason = file_problem(path) if named else "not named as Lakh names its files (<32 hex digits md5>.mid)"
        if reason is None and path.stem[0] != path.parent.name:
            reason = f"in folder {path.parent.name}/ but Lakh files sit in the folder of their MD5's first digit"
        if reason is not None:
            skipped.append(skipped_entry(path.name, path, root, reason))
            continue
        items.append(Item(path.stem, path, split_of(path.stem), {}))
    return Index(sorted(items, key=lambda item: item.item_id), sorted(skipped, key=lambda e: e["path"]))


def load_items(root: Path) -> list[Item]:
    """The items of `index(root)`; skipped files are named in one warning."""
    return warn_skipped(index(root), "Lakh MIDI")
