"""A folder of your own audio or MIDI files, with an optional labels table (seed 004's layouts).

    my_songs/                     my_melodies/               my_drums/
    ├── labels.csv                ├── emotion_labels.json    ├── drum_labels.json   (optional)
    ├── audio_001.wav             ├── melody_001.mid         ├── groove_001.mid
    └── audio_002.mp3             └── melody_002.mid         └── groove_002.mid

Items are the audio (.wav, .mp3, .flac, .ogg) and MIDI (.mid, .midi) files anywhere under the
folder, their id the path relative to it (`sub/take_1.mid`). Labels come from one table beside them:
- `labels.csv`: a `filename` column and any label columns (`filename,valence,arousal`, or DEAM's
  `filename,valence_mean,arousal_mean`); numbers become floats, other cells stay text (classes);
- `labels.json`, `emotion_labels.json` or `drum_labels.json`: `{"file.mid": {"valence": .., ...}}`.
A file name in the table may be the relative path or just the base name. Without a table every file
is an item without labels (self-supervised tasks, or dynamics features). With a table, files it does
not list cannot serve a labelled task: they are skipped and reported (`skipped_entries`), and rows
naming missing files are reported with a warning. An optional `split` column (train/validation/test)
sets the split; otherwise a hash of the item id does (70/15/15), so adding files never moves others.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from pathlib import Path

from seqpipe.datasets.base import Index, Item, normalise_split, walk_files
from seqpipe.datasets.registry import register_dataset

NAME = "folder"
HOME = ""
LICENSE_INFO = "your own files: their licence is yours to know"
REMOTES: dict = {}  # nothing to download: point datasets.<name>.root at the folder
AUDIO = (".wav", ".mp3", ".flac", ".ogg")
MIDI = (".mid", ".midi")
TABLES = ("labels.csv", "labels.json", "emotion_labels.json", "drum_labels.json")
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}


def media_files(root: Path) -> list[Path]:
    """Audio and MIDI files under `root`, sorted by relative path (hidden files left out)."""
    return sorted(p for p in walk_files(root) if p.suffix.lower() in AUDIO + MIDI
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def indexed_files(root: Path) -> list[Path]:
    """The files `index` reads: the audio and MIDI files and the labels tables (what the manifest lists)."""
    tables = [Path(root) / name for name in TABLES if (Path(root) / name).is_file()]
    return sorted(media_files(root) + tables)


def find_root(path: Path) -> Path:
    """The folder itself, once it is known to hold audio or MIDI files."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"folder dataset: {path} is not a folder; set datasets.<name>.root to the folder holding your files")
    if not media_files(path):
        raise FileNotFoundError(f"folder dataset: {path} holds no audio ({', '.join(AUDIO)}) or MIDI ({', '.join(MIDI)}) files; "
                                "put your files there (sub-folders are fine)")
    return path


SEPARATORS = ",;\t|"  # what spreadsheets save a "CSV" with (`;` where the decimal mark is a comma)
DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def _value(cell, where: str, decimal_comma: bool = False):
    """A label cell: a float when it reads as a number (`0,5` too with `decimal_comma`), else the text (a class name)."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return float(cell)
    if isinstance(cell, str):
        text = cell.strip()
        if decimal_comma and DECIMAL_COMMA.match(text):
            text = text.replace(",", ".")
        try:
            return float(text)
        except ValueError:
            return text
    raise ValueError(f"{where}: label value {cell!r} is neither a number nor text")


def _separator(text: str) -> str:
    """The table's separator, sniffed from its first lines among SEPARATORS (`,` when nothing else fits)."""
    try:
        return csv.Sniffer().sniff("\n".join(text.splitlines()[:20]), delimiters=SEPARATORS).delimiter
    except csv.Error:
        return ","


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]], str]:
    """Header, rows and separator of a labels table (UTF-8 with or without BOM, any line ending)."""
    text = path.read_text(encoding="utf-8-sig")
    sep = _separator(text)
    lines = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if any(c.strip() for c in row)]
    if not lines:
        return [], [], sep
    header = [h.strip() for h in lines[0]]
    for line, row in enumerate(lines[1:], start=2):
        if len(row) > len(header):
            shown = "tab" if sep == "\t" else repr(sep)
            raise ValueError(
                f"{path}, line {line}: {len(row)} cells but the header {header} has {len(header)}, read with the separator "
                f"{shown} (detected from the first lines); a decimal comma in a comma-separated file splits a number in two: "
                "re-save the table with another separator (`;` or tab) or with decimal points, or quote the cells")
    return header, lines[1:], sep


def _csv_table(path: Path) -> dict[str, dict]:
    header, rows, sep = _csv_rows(path)
    if not rows:
        return {}
    key = next((h for h in ("filename", "file", "file_name", "path") if h in header), None)
    if key is None:
        raise ValueError(f"{path}: no `filename` column (header {header}, separator {'tab' if sep == chr(9) else repr(sep)}); "
                         "expected filename,<label>,... as in filename,valence,arousal")
    table = {}
    for line, cells in enumerate(rows, start=2):
        row = dict(zip(header, (c.strip() for c in cells)))
        name = row.pop(key, "")
        if name in table:
            raise ValueError(f"{path}, line {line}: {name!r} is listed twice; keep one row per file")
        table[name] = {k: _value(v, f"{path}, line {line}, column {k}", decimal_comma=sep != ",")
                       for k, v in row.items() if v != ""}
    return table


def _json_table(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); expected {{\"file.mid\": {{\"valence\": 0.7, ...}}, ...}}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected an object keyed by file name, each value an object of labels "
                         "({\"file.mid\": {\"valence\": 0.7, \"arousal\": 0.6}}); found another shape")
    return {str(name): {k: _value(v, f"{path}, {name}, {k}") for k, v in labels.items()} for name, labels in data.items()}


def labels_table(root: Path) -> tuple[Path | None, dict[str, dict]]:
    """The folder's labels table (the first of TABLES present) and its rows by file name; (None, {}) without one."""
    found = [Path(root) / name for name in TABLES if (Path(root) / name).is_file()]
    if len(found) > 1:
        raise ValueError(f"folder dataset {root}: several labels tables ({', '.join(p.name for p in found)}); keep one")
    if not found:
        return None, {}
    path = found[0]
    return path, _csv_table(path) if path.suffix == ".csv" else _json_table(path)


def split_of(item_id: str) -> str:
    """Deterministic split from a hash of the item id."""
    position = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 16**8
    if position < SPLIT_FRACTIONS["train"]:
        return "train"
    return "val" if position < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"] else "test"


def _index(root: Path) -> tuple[list[Item], list[dict]]:
    """Items, and the files that cannot become items (interface 3: id, path, reason)."""
    root = find_root(root)
    table_path, table = labels_table(root)
    items, skipped, used = [], [], set()
    for path in media_files(root):
        item_id = path.relative_to(root).as_posix()
        key = item_id if item_id in table else path.name if path.name in table else None
        if table_path is not None and key is None:
            skipped.append({"id": item_id, "path": item_id, "reason": f"not listed in {table_path.name}: no labels"})
            continue
        labels = dict(table.get(key, {})) if key else {}
        used.add(key)
        split = labels.pop("split", None)
        split = normalise_split(str(split), where=f"{table_path}, {key}") if split is not None else split_of(item_id)
        items.append(Item(item_id=item_id, path=path, split=split, labels=labels))
    missing = sorted(set(table) - used)
    if missing:
        warnings.warn(f"folder dataset {root}: {len(missing)} row(s) of {table_path.name} name no file, e.g. {missing[:3]}; "
                      "check the file names", stacklevel=3)
    return items, skipped


@register_dataset(NAME)
def index(root: Path) -> Index:
    """The dataset interface: items sorted by id, and the files that cannot become items (`skipped`)."""
    items, skipped = _index(root)
    return Index(sorted(items, key=lambda item: item.item_id), sorted(skipped, key=lambda e: e["id"]))


def load_items(root: Path) -> list[Item]:
    """One item per audio or MIDI file with its labels (if the folder has a table), sorted by id."""
    items, skipped = _index(root)
    if skipped:
        warnings.warn(f"folder dataset {root}: {len(skipped)} file(s) have no row in the labels table and were skipped, "
                      f"e.g. {[s['id'] for s in skipped[:3]]}", stacklevel=2)
    return items


def skipped_entries(root: Path) -> list[dict]:
    """Files that cannot become items, as the manifest's `skipped` list: {"id", "path", "reason"}."""
    return _index(root)[1]


def label_names(root: Path) -> list[str]:
    """The label columns of the folder's table (empty without one)."""
    _, table = labels_table(find_root(root))
    return sorted({k for labels in table.values() for k in labels} - {"split"})
