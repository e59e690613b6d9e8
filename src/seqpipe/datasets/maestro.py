"""MAESTRO v3.0.0 (MIDI and Audio Edited for Synchronous TRacks and Organization), MIDI-only release.

About 200 hours of virtuosic piano performances from ten years of the International Piano-e-Competition,
captured on Yamaha Disklaviers: 1,276 performances with composer, title, year and an official
train/validation/test split of 962/137/177 pieces (no composition crosses splits). The MIDI-only
zip is 58 MB; the audio (WAV) is a separate, much larger download seqpipe does not use.

Licence: Creative Commons Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0).
Home page: https://magenta.tensorflow.org/datasets/maestro

Layout after extraction: `maestro-v3.0.0/maestro-v3.0.0.csv`, `maestro-v3.0.0/maestro-v3.0.0.json`
(column-oriented: `{"midi_filename": {"0": ...}, ...}`) and `maestro-v3.0.0/<year>/*.midi`.
Earlier releases are read too: v2.0.0 and v1.0.0 have the same CSV columns, a row-oriented JSON
(`[{"midi_filename": ..., ...}, ...]`) and `maestro-v2.0.0.*` / `maestro-v1.0.0.*` names. When a
folder holds several releases, the newest one is read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from seqpipe.datasets.base import (
    DatasetLayoutError, Index, Item, index_items, normalise_split, warn_skipped, where_not_found,
)
from seqpipe.datasets.registry import register_dataset

NAME = "maestro"
HOME = "https://magenta.tensorflow.org/datasets/maestro"
LICENSE_INFO = "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International (CC BY-NC-SA 4.0)"
PUBLISHED_ITEMS = 1276  # items in the published release: the shard count's estimate before a copy is counted
REMOTES = {
    "midi": dict(
        url="https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0-midi.zip",
        bytes=58_416_533,
        sha256="70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c",
        filename="maestro-v3.0.0-midi.zip",
    ),
}

FOLDER = "maestro-v3.0.0"
CSV_FILE = "maestro-v3.0.0.csv"
JSON_FILE = "maestro-v3.0.0.json"
VERSIONS = ("v3.0.0", "v2.0.0", "v1.0.0")
"""Releases read, newest first; each names its folder and metadata files `maestro-<version>`."""
COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration")


def metadata_files(root: Path) -> tuple[Path, Path] | None:
    """The (CSV, JSON) metadata paths of the newest release found in `root`, or None."""
    root = Path(root)
    for version in VERSIONS:
        csv_path, json_path = root / f"maestro-{version}.csv", root / f"maestro-{version}.json"
        if csv_path.is_file() or json_path.is_file():
            return csv_path, json_path
    return None


def find_root(path: Path) -> Path:
    """Return the folder holding `maestro-v<version>.csv` (or its JSON), given that folder or its parent."""
    path = Path(path)
    for candidate in (path, *(path / f"maestro-{version}" for version in VERSIONS)):
        if metadata_files(candidate) is not None:
            return candidate
    looked = ", ".join(f"maestro-{v}.csv/.json" for v in VERSIONS)
    raise DatasetLayoutError(
        f"MAESTRO: no metadata file ({looked}) in {path} nor in its maestro-<version>/ sub-folders"
        f"{where_not_found(path)}. Set datasets.{NAME}.root to the folder "
        f"holding {CSV_FILE} and the <year>/ folders (the '{FOLDER}' folder extracted from "
        f"{REMOTES['midi']['filename']}; v2.0.0 and v1.0.0 folders work too), or use source: download or source: demo"
    )


def _check_columns(found: list[str], where: Path) -> None:
    """Raise if a metadata file lacks one of `COLUMNS`."""
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; found {found}, expected {list(COLUMNS)}. "
            f"Point datasets.{NAME}.root at an unmodified MAESTRO folder (v1.0.0, v2.0.0 or v3.0.0)"
        )


def load_metadata_csv(path: Path) -> list[dict[str, str]]:
    """Parse `maestro-v3.0.0.csv` into one dict per piece (values as strings)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [name.strip() for name in (reader.fieldnames or [])]
        _check_columns(header, Path(path))
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def load_metadata_json(path: Path) -> list[dict[str, str]]:
    """Parse a MAESTRO JSON into the same records as the CSV, in row order.

    v3.0.0 is column-oriented (`{column: {"0": value, ...}}`); v1.0.0 and v2.0.0 are row-oriented
    (`[{column: value, ...}, ...]`).
    """
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-extract the archive") from err
    if isinstance(table, list) and all(isinstance(row, dict) for row in table):
        return _row_records(table, path)
    if not isinstance(table, dict) or not all(isinstance(col, dict) for col in table.values()):
        raise ValueError(
            f"{path}: expected a column-oriented object {{column: {{row index: value}}}} (MAESTRO v3.0.0) "
            f"or a list of row objects (v1.0.0, v2.0.0); found a {type(table).__name__} of another shape. "
            "Re-extract the archive"
        )
    _check_columns(list(table), path)
    index = table["midi_filename"]
    try:
        rows = sorted(index, key=int)
    except ValueError:
        raise ValueError(f"{path}: row keys of 'midi_filename' must be integers as strings ('0', '1', ...)") from None
    records = []
    for key in rows:
        missing = [c for c in COLUMNS if key not in table[c]]
        if missing:
            raise ValueError(f"{path}: row {key!r} has no value in column(s) {missing}; re-extract the archive")
        records.append({c: "" if table[c][key] is None else str(table[c][key]).strip() for c in COLUMNS})
    return records


def _row_records(rows: list[dict], path: Path) -> list[dict[str, str]]:
    """Records of a row-oriented JSON (v1.0.0, v2.0.0), each checked for every column."""
    records = []
    for number, row in enumerate(rows):
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(
                f"{path}: row {number} lacks column(s) {missing}; found {sorted(row)}, expected {list(COLUMNS)}. "
                "Re-extract the archive"
            )
        records.append({c: "" if row[c] is None else str(row[c]).strip() for c in COLUMNS})
    return records


def metadata_source(root: Path) -> Path:
    """The metadata file `load_metadata` reads: the newest release's CSV if present, else its JSON."""
    found = metadata_files(find_root(root))  # find_root raises DatasetLayoutError when there is none
    assert found is not None
    csv_path, json_path = found
    return csv_path if csv_path.is_file() else json_path


def load_metadata(root: Path) -> list[dict[str, str]]:
    """The piece records of `root`: from the newest release's CSV if present, else from its JSON."""
    source = metadata_source(root)
    return load_metadata_csv(source) if source.suffix == ".csv" else load_metadata_json(source)


def item_id_of(midi_filename: str) -> str:
    """The item id of a piece: its `midi_filename` without extension (`2004/MIDI-Unprocessed_...`)."""
    name = midi_filename.strip()
    stem, dot, ext = name.rpartition(".")
    return stem if dot and "/" not in ext else name


def _item_from_record(root: Path, record: dict[str, str], where: str) -> Item:
    """Build one `Item` from one metadata record."""
    if not record["midi_filename"]:
        raise ValueError(f"{where}: column 'midi_filename' is empty; fill it in or remove the row")
    try:
        year = int(float(record["year"]))
    except ValueError:
        raise ValueError(f"{where}: column 'year' = {record['year']!r} is not a year; fix or remove the row") from None
    labels: dict[str, Any] = {
        "composer": record["canonical_composer"],
        "title": record["canonical_title"],
        "year": year,
    }
    split = normalise_split(record["split"], where=where)
    return Item(
        item_id=item_id_of(record["midi_filename"]), path=root / record["midi_filename"], split=split, labels=labels
    )


@register_dataset(NAME)
def index(root: Path) -> Index:
    """One `Item` per readable performance, sorted by id, and the listed files skipped with their reason."""
    root = find_root(Path(root))
    source = metadata_source(root)

    def entries():
        for row, record in enumerate(load_metadata(root)):
            where = f"{source}, row {row} (midi_filename={record['midi_filename']!r})"
            yield where, _item_from_record(root, record, where)

    return index_items(entries(), dataset="MAESTRO", index=source, root=root, suffixes=(".midi", ".mid"))


def load_items(root: Path) -> list[Item]:
    """The items of `index(root)`; skipped files are named in one warning."""
    return warn_skipped(index(root), "MAESTRO")
