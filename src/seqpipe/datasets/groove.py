"""Groove MIDI Dataset (GMD) v1.0.0, MIDI-only release.

1,150 MIDI files (about 13.6 hours, 22,000 measures) of expressive drumming recorded by
10 drummers on a Roland TD-11 electronic kit, with the tempo, the style (18 primary styles,
written `primary/secondary`, e.g. `funk/groove1`), the beat type (`beat` or `fill`) and an
official train/validation/test split of 897/124/129 files. The MIDI-only zip is 3.3 MB.

Licence: Creative Commons Attribution 4.0 International (CC BY 4.0).
Home page: https://magenta.tensorflow.org/datasets/groove

Layout after extraction: `groove/info.csv` and `groove/drummerN/<session>/*.mid`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from seqpipe.datasets.base import (
    DatasetLayoutError, Index, Item, index_items, normalise_split, warn_skipped, where_not_found,
)
from seqpipe.datasets.registry import register_dataset

NAME = "groove"
HOME = "https://magenta.tensorflow.org/datasets/groove"
LICENSE_INFO = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
PUBLISHED_ITEMS = 1150  # items in the published release: the shard count's estimate before a copy is counted
REMOTES = {
    "midi": dict(
        url="https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip",
        bytes=3_260_318,
        sha256="651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e",
        filename="groove-v1.0.0-midionly.zip",
    ),
}

FOLDER = "groove"  # the folder the archive extracts to
INDEX_FILE = "info.csv"
COLUMNS = (
    "drummer",
    "session",
    "id",
    "style",
    "bpm",
    "beat_type",
    "time_signature",
    "midi_filename",
    "audio_filename",
    "duration",
    "split",
)


def find_root(path: Path) -> Path:
    """Return the folder holding `info.csv`, given that folder or its parent (links not resolved)."""
    path = Path(path)
    for candidate in (path, path / FOLDER):
        if (candidate / INDEX_FILE).is_file():
            return candidate
    raise DatasetLayoutError(
        f"Groove MIDI: no {INDEX_FILE} at {path / INDEX_FILE} nor at {path / FOLDER / INDEX_FILE}"
        f"{where_not_found(path)}. Set datasets.{NAME}.root to the folder "
        f"holding {INDEX_FILE} and drummer1/ ... drummer10/ (the '{FOLDER}' folder extracted from "
        f"{REMOTES['midi']['filename']}), or use source: download or source: demo"
    )


def load_metadata(root: Path) -> list[dict[str, str]]:
    """Parse `info.csv` into one dict per row (raw strings), checking its header."""
    csv_path = Path(root) / INDEX_FILE
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {missing}; found {header}, expected {list(COLUMNS)}. "
                f"Point datasets.{NAME}.root at an unmodified Groove MIDI v1.0.0 'groove' folder"
            )
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def primary_style(style: str) -> str:
    """The primary style of a Groove style string: `funk` for `funk/groove1`."""
    return style.split("/", 1)[0].strip()


def _item_from_row(root: Path, row: dict[str, str], where: str) -> Item:
    """Build one `Item` from one `info.csv` row (raw strings)."""
    for column in ("id", "style", "midi_filename", "split"):
        if not row[column]:
            raise ValueError(f"{where}: column {column!r} is empty; fill it in or remove the row")
    try:
        bpm = float(row["bpm"])
    except ValueError:
        raise ValueError(f"{where}: column 'bpm' = {row['bpm']!r} is not a number; fix or remove the row") from None
    labels: dict[str, Any] = {
        "style": primary_style(row["style"]),
        "bpm": bpm,
        "beat_type": row["beat_type"],
        "drummer": row["drummer"],
        "time_signature": row["time_signature"],
    }
    split = normalise_split(row["split"], where=where)
    return Item(item_id=row["id"], path=Path(root) / row["midi_filename"], split=split, labels=labels)


@register_dataset(NAME)
def index(root: Path) -> Index:
    """One `Item` per readable MIDI file listed in `info.csv`, sorted by id, and the listed files skipped."""
    root = Path(root)

    def entries():
        for line, row in enumerate(load_metadata(root), start=2):
            where = f"{root / INDEX_FILE}, line {line} (id={row.get('id')!r})"
            yield where, _item_from_row(root, row, where)

    return index_items(entries(), dataset="Groove MIDI", index=root / INDEX_FILE, root=root, suffixes=(".mid", ".midi"))


def load_items(root: Path) -> list[Item]:
    """The items of `index(root)`; skipped files are named in one warning."""
    return warn_skipped(index(root), "Groove MIDI")
