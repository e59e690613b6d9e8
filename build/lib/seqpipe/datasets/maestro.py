"""MAESTRO v3.0.0 (MIDI and Audio Edited for Synchronous TRacks and Organization), MIDI-only release.

About 200 hours of virtuosic piano performances from ten years of the International Piano-e-Competition,
captured on Yamaha Disklaviers: 1,276 performances with composer, title, year and an official
train/validation/test split of 962/137/177 pieces (no composition crosses splits). The MIDI-only
zip is 58 MB; the audio (WAV) is a separate, much larger download seqpipe does not use.

Licence: Creative Commons Attribution-NonCommercial-ShareAlike 4.0 (CC BY-NC-SA 4.0).
Home page: https://magenta.tensorflow.org/datasets/maestro

Layout after extraction: `maestro-v3.0.0/maestro-v3.0.0.csv`, `maestro-v3.0.0/maestro-v3.0.0.json`
(column-oriented: `{"midi_filename": {"0": ...}, ...}`) and `maestro-v3.0.0/<year>/*.midi`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from seqpipe.datasets import Item, index_items, normalise_split

NAME = "maestro"
HOME = "https://magenta.tensorflow.org/datasets/maestro"
LICENSE_INFO = "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International (CC BY-NC-SA 4.0)"
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
COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration")


def find_root(path: Path) -> Path:
    """Return the folder holding `maestro-v3.0.0.csv` (or the JSON), given that folder or its parent."""
    path = Path(path)
    for name in (CSV_FILE, JSON_FILE):
        for candidate in (path, path / FOLDER):
            if (candidate / name).is_file():
                return candidate
    raise FileNotFoundError(
        f"MAESTRO: no {CSV_FILE} (or {JSON_FILE}) in {path} nor in {path / FOLDER}; "
        f"set datasets.{NAME}.root to the folder holding {CSV_FILE} (the extracted '{FOLDER}' folder "
        f"of {REMOTES['midi']['filename']}), or run the download or demo rule"
    )


def _check_columns(found: list[str], where: Path) -> None:
    """Raise if a metadata file lacks one of `COLUMNS`."""
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; found {found}, expected {list(COLUMNS)}. "
            f"Point datasets.{NAME}.root at an unmodified MAESTRO v3.0.0 folder"
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
    """Parse the column-oriented `maestro-v3.0.0.json` into the same records as the CSV, in row order."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-extract the archive") from err
    if not isinstance(table, dict) or not all(isinstance(col, dict) for col in table.values()):
        raise ValueError(
            f"{path}: expected a column-oriented object {{column: {{row index: value}}}} "
            f"as in MAESTRO v3.0.0; found a {type(table).__name__} of another shape"
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


def load_metadata(root: Path) -> list[dict[str, str]]:
    """The piece records of `root`: from the CSV if present, else from the JSON."""
    root = Path(root)
    if (root / CSV_FILE).is_file():
        return load_metadata_csv(root / CSV_FILE)
    return load_metadata_json(root / JSON_FILE)


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


def load_items(root: Path) -> list[Item]:
    """One `Item` per performance, sorted by id; files listed but missing are skipped with a warning."""
    root = Path(root)
    source = root / CSV_FILE if (root / CSV_FILE).is_file() else root / JSON_FILE

    def entries():
        for row, record in enumerate(load_metadata(root)):
            where = f"{source}, row {row} (midi_filename={record['midi_filename']!r})"
            yield where, _item_from_record(root, record, where)

    return index_items(entries(), dataset="MAESTRO", index=source)


def load_midi(path: Path) -> Any:
    """Load one MAESTRO performance as a `pretty_midi.PrettyMIDI`."""
    import pretty_midi  # imported here: metadata parsing does not need it

    return pretty_midi.PrettyMIDI(str(path))
