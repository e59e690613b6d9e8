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
import re
import warnings
from pathlib import Path

from seqpipe.datasets import Item

NAME = "lakh"
HOME = "https://colinraffel.com/projects/lmd/"
LICENSE_INFO = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
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
    """The folder holding the hex-digit sub-folders, given that folder or its parent."""
    path = Path(path)
    for candidate in (path, path / FOLDER):
        if candidate.is_dir() and any((candidate / d).is_dir() for d in HEX_DIRS):
            return candidate
    raise FileNotFoundError(
        f"Lakh MIDI: no sub-folders 0-9/a-f in {path} nor in {path / FOLDER}; set datasets.{NAME}.root "
        f"to the extracted `{FOLDER}` folder (or its parent)"
    )


def split_of(md5: str) -> str:
    """Deterministic split from a hash of the file's MD5 name."""
    position = int(hashlib.sha256(md5.encode()).hexdigest()[:8], 16) / 16**8
    if position < SPLIT_FRACTIONS["train"]:
        return "train"
    return "val" if position < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"] else "test"


def load_items(root: Path) -> list[Item]:
    """One item per `<hex>/<md5>.mid` file, sorted by MD5; other names are skipped with a warning."""
    root = find_root(root)
    items, odd = [], []
    for path in sorted(root.glob("[0-9a-f]/*")):
        if path.suffix.lower() not in {".mid", ".midi"} or not MD5_NAME.match(path.stem):
            odd.append(path.name)
            continue
        items.append(Item(path.stem, path.resolve(), split_of(path.stem), {}))
    if odd:
        warnings.warn(f"Lakh MIDI: skipped {len(odd)} file(s) not named <md5>.mid under {root}, e.g. {odd[:3]}", stacklevel=2)
    return sorted(items, key=lambda item: item.item_id)
