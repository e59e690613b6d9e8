"""DEAM: the MediaEval Database for Emotional Analysis in Music.

1,802 songs (`MEMD_audio/<song_id>.mp3`): 1,744 excerpts of about 45 s and 58 full songs of
49-629 s, from freely licensed music, with valence and arousal annotated on a 1-9 scale per song
(static, averaged over annotators) and continuously at 2 Hz from 15 s on (dynamic, on [-1, 1]).
Audio 1.3 GB, annotations 4.7 MB. Real quirks: 24 files are not 44.1 kHz and 13 are mono; the
static CSV headers have leading spaces, and the second static file (songs 2000-2058) has extra
columns and a stray space inside one header. DEAM has no official split: seqpipe derives one
from a hash of the song id (70/15/15), so a song's split never depends on the other songs.

Licence: the audio excerpts are under Creative Commons licences; see the home page for the terms.
Home page: https://cvml.unige.ch/databases/DEAM/
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from seqpipe.datasets.base import DatasetLayoutError, Index, Item, as_root, file_problem, skipped_entry, walk_files, warn_skipped
from seqpipe.datasets.registry import register_dataset

NAME = "deam"
HOME = "https://cvml.unige.ch/databases/DEAM/"
LICENSE_INFO = "Audio excerpts under Creative Commons licences; see the home page for the terms"
PUBLISHED_ITEMS = 1802  # items in the published release: the shard count's estimate before a copy is counted
REMOTES = {
    "audio": dict(
        url="https://cvml.unige.ch/databases/DEAM/DEAM_audio.zip",
        bytes=1_343_203_527,
        sha256="e2814325f573ade8caebc697f0efcfdf7207142b737d72558a416117ca591353",
        filename="DEAM_audio.zip",
    ),
    "annotations": dict(
        url="https://cvml.unige.ch/databases/DEAM/DEAM_Annotations.zip",
        bytes=4_735_283,
        sha256="809b0feb4ba6196c1eda9b2b7b33b892b11fa71457cfceb0d47e832ed1a5f15f",
        filename="DEAM_Annotations.zip",
    ),
    "metadata": dict(
        url="https://cvml.unige.ch/databases/DEAM/metadata.zip",
        bytes=344_760,
        sha256="3d1d5ab42e852803a770f2cfbd685c6b464e1ebe76f26b0e10954597902b90f8",
        filename="metadata.zip",
    ),
}

FOLDER = "DEAM"
AUDIO_DIR = "MEMD_audio"
ANNOTATIONS_DIR = "annotations"
AVERAGED = Path(ANNOTATIONS_DIR) / "annotations averaged per song"
STATIC_FILES = (
    AVERAGED / "song_level" / "static_annotations_averaged_songs_1_2000.csv",
    AVERAGED / "song_level" / "static_annotations_averaged_songs_2000_2058.csv",
)
DYNAMIC_DIR = AVERAGED / "dynamic (per second annotations)"
DYNAMIC_FILES = {"valence": DYNAMIC_DIR / "valence.csv", "arousal": DYNAMIC_DIR / "arousal.csv"}
STATIC_COLUMNS = ("song_id", "valence_mean", "valence_std", "arousal_mean", "arousal_std")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac")
DYNAMIC_START_S = 15.0  # the first dynamic annotation is at 15 s
DYNAMIC_RATE_HZ = 2.0
SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
AUDIO_PARENTS = (".", "DEAM_audio")
"""Where `MEMD_audio/` sits below the root: extracted in place, or into a `DEAM_audio/` folder."""
ANNOTATION_PARENTS = (".", "DEAM_Annotations")
"""Where `annotations/` sits below the root: in place, or in a `DEAM_Annotations/` folder (mirrors)."""


def layout(root: Path) -> tuple[Path, Path] | None:
    """(audio folder, folder holding `annotations/`) of a DEAM root in any known layout, or None."""
    root = Path(root)
    audio = next((root / p / AUDIO_DIR for p in AUDIO_PARENTS if (root / p / AUDIO_DIR).is_dir()), None)
    base = next((root / p for p in ANNOTATION_PARENTS if (root / p / ANNOTATIONS_DIR).is_dir()), None)
    if audio is None or base is None:
        return None
    return Path(os.path.normpath(audio)), Path(os.path.normpath(base))


def indexed_files(root: Path) -> list[Path]:
    """The files DEAM is read from: the audio folder's and the annotations folder's (what the manifest
    lists); not the features (DEAM_features.zip) or anything else extracted beside them."""
    audio, base = _layout_or_raise(root)
    return sorted(walk_files(audio) + walk_files(base / ANNOTATIONS_DIR))


def _layout_or_raise(root: Path) -> tuple[Path, Path]:
    """`layout` of the DEAM root in `root` (or its `DEAM/` folder); DatasetLayoutError if there is none."""
    found = layout(find_root(root))
    assert found is not None  # find_root only returns folders with a layout
    return found


def find_root(path: Path) -> Path:
    """Return the folder holding `MEMD_audio/` and `annotations/` (in a known layout), given it or its parent."""
    path = Path(path)
    for candidate in (path, path / FOLDER):
        if layout(candidate) is not None:
            return candidate
    audio = " or ".join(f"{Path(p) / AUDIO_DIR}/" for p in AUDIO_PARENTS)
    notes = " or ".join(f"{Path(p) / ANNOTATIONS_DIR}/" for p in ANNOTATION_PARENTS)
    raise DatasetLayoutError(
        f"DEAM: looked for {audio} together with {notes} in {path} and in {path / FOLDER}, and found "
        f"{'no such folder' if not path.is_dir() else 'not both'}. Set datasets.{NAME}.root to the folder "
        f"into which DEAM_audio.zip ({AUDIO_DIR}/) and DEAM_Annotations.zip ({ANNOTATIONS_DIR}/) were "
        "extracted, or use source: download or source: demo"
    )


def normalise_header(name: str) -> str:
    """DEAM header cell without any whitespace: ` valence_mean` and `arousal_max_ mean` become clean names."""
    return re.sub(r"\s+", "", name or "")


def split_of(song_id: str) -> str:
    """Deterministic split of one song from the SHA-256 of its id: 70% train, 15% val, 15% test."""
    digest = hashlib.sha256(f"{song_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for split, fraction in SPLIT_FRACTIONS:
        edge += fraction
        if u < edge:
            return split
    return SPLIT_FRACTIONS[-1][0]


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header (whitespace removed) and data rows (cells stripped, blank lines dropped) of a CSV file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"DEAM: {path} is missing; extract DEAM_Annotations.zip into the folder that datasets.{NAME}.root names"
        )
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [[cell.strip() for cell in row] for row in csv.reader(fh)]
    rows = [row for row in rows if any(row)]
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header row starting with 'song_id'; re-extract the archive")
    return [normalise_header(cell) for cell in rows[0]], rows[1:]


def _song_id(cell: str, where: str) -> str:
    """Canonical song id string (`'10'` for `'10'` or `'10.0'`)."""
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{where}: song_id {cell!r} is not a number; fix or remove the row") from None
    if not value.is_integer():
        raise ValueError(f"{where}: song_id {cell!r} is not an integer; fix or remove the row")
    return str(int(value))


def _static_file(path: Path) -> dict[str, dict[str, float]]:
    """Static labels of one song-level CSV: {song_id: {column: value}} for `STATIC_COLUMNS`."""
    header, rows = _read_table(path)
    missing = [c for c in STATIC_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} (after removing whitespace from the header); "
            f"found {header}. Use the unmodified DEAM_Annotations.zip"
        )
    position = {c: header.index(c) for c in STATIC_COLUMNS}
    labels: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        if len(row) < len(header):
            raise ValueError(f"{where}: {len(row)} cells, expected {len(header)} as in the header; fix the row")
        song = _song_id(row[position["song_id"]], where)
        values = {}
        for column in STATIC_COLUMNS[1:]:
            try:
                values[column] = float(row[position[column]])
            except ValueError:
                raise ValueError(
                    f"{where} (song {song}): column {column!r} = {row[position[column]]!r} is not a number"
                ) from None
        if song in labels:
            raise ValueError(f"{where}: song {song} appears twice in this file; remove one row")
        labels[song] = values
    return labels


def load_static(root: Path) -> dict[str, dict[str, float]]:
    """Static labels of both song-level files, merged: {song_id: {valence_mean, valence_std, arousal_*}}."""
    base = _layout_or_raise(Path(root))[1]
    merged: dict[str, dict[str, float]] = {}
    for relative in STATIC_FILES:
        for song, values in _static_file(base / relative).items():
            if song in merged:
                if merged[song] != values:
                    warnings.warn(
                        f"DEAM: song {song} has different static labels in {relative.name}; keeping the first file's",
                        stacklevel=2,
                    )
                continue
            merged[song] = values
    return merged


def audio_path(root: Path, song_id: str) -> Path | None:
    """The audio file of a song (`.mp3`, else `.wav` or `.flac`), or None when there is none.

    A readable file wins over an unusable one (a folder, a dangling link) of another extension.
    """
    audio_dir = _layout_or_raise(Path(root))[0]
    present = [p for p in (audio_dir / f"{song_id}{ext}" for ext in AUDIO_EXTENSIONS) if p.exists() or p.is_symlink()]
    return next((p for p in present if file_problem(p) is None), present[0] if present else None)


@register_dataset(NAME)
def index(root: Path) -> Index:
    """One `Item` per labelled song with readable audio, sorted by id, and every song or file skipped.

    Skipped: labelled songs whose audio is missing, a folder or unreadable, and files in the
    audio folder that are not named `<song_id>.mp3` (or .wav, .flac) or have no static labels.
    Hidden files (`.DS_Store`, ...) are ignored.
    """
    root = find_root(Path(root))
    audio_dir = _layout_or_raise(root)[0]
    labels = load_static(root)
    items: dict[str, Item] = {}
    skipped: list[dict[str, str]] = []
    for song, values in labels.items():
        path = audio_path(root, song)
        reason = (
            f"has static labels but no audio file {AUDIO_DIR}/{song}.mp3 (nor .wav, .flac); re-extract DEAM_audio.zip"
            if path is None else file_problem(path)
        )
        if reason is not None:
            skipped.append(skipped_entry(song, path or audio_dir / f"{song}.mp3", root, reason))
            continue
        items[song] = Item(item_id=song, path=path, split=split_of(song), labels=dict(values))
    song_files = {item.item_id: item.path.name for item in items.values()}
    used = set(song_files.values()) | {Path(e["path"]).name for e in skipped}
    for path in sorted(audio_dir.iterdir()):
        if path.name.startswith(".") or path.name in used:
            continue
        stem, ext = path.stem, path.suffix.lower()
        if ext not in AUDIO_EXTENSIONS or not stem.isdigit():
            reason = f"not named as DEAM names its audio (<song_id>{' or '.join(AUDIO_EXTENSIONS)})"
        elif stem in labels:
            reason = f"song {stem} has another audio file ({song_files.get(stem, 'skipped above')}); remove the duplicate"
        else:
            reason = f"song {stem} has no static labels in {STATIC_FILES[0].parent.as_posix()}/"
        skipped.append(skipped_entry(path.name, path, root, reason))
    return Index([items[key] for key in sorted(items)], sorted(skipped, key=lambda e: e["id"]))


def load_items(root: Path) -> list[Item]:
    """The items of `index(root)`; skipped songs and files are named in one warning."""
    return warn_skipped(index(root), "DEAM")


def _dynamic_file(path: Path) -> dict[str, np.ndarray]:
    """One dynamic CSV: {song_id: float array at 2 Hz from 15 s}, trailing empty or NaN cells dropped."""
    header, rows = _read_table(path)
    if not header or header[0] != "song_id":
        raise ValueError(
            f"{path}: first header cell is {header[:1]}, expected 'song_id'; use the unmodified DEAM_Annotations.zip"
        )
    series: dict[str, np.ndarray] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        song = _song_id(row[0], where)
        try:
            values = np.array([float(cell) if cell else np.nan for cell in row[1:]], dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{where} (song {song}): a cell is not a number ({err}); fix the row") from None
        finite = np.flatnonzero(~np.isnan(values))
        series[song] = values[: finite[-1] + 1] if finite.size else values[:0]
    return series


def load_dynamic(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Dynamic labels {song_id: {"valence": array, "arousal": array}} at 2 Hz from 15 s.

    A song missing from one of the two files gets an empty array for that dimension.
    """
    base = _layout_or_raise(Path(root))[1]
    per_dim = {dim: _dynamic_file(base / relative) for dim, relative in DYNAMIC_FILES.items()}
    songs = sorted(set().union(*per_dim.values()), key=int)
    empty = np.zeros(0, dtype=np.float64)
    return {song: {dim: per_dim[dim].get(song, empty) for dim in DYNAMIC_FILES} for song in songs}


def annotations_root(audio: Path) -> Path:
    """The DEAM folder above an audio file that holds the dynamic annotation CSVs.

    The folders above the path as given: a symbolic link (git-annex, DVC) is never resolved into its store.
    """
    for parent in as_root(audio).parents:
        if all((parent / relative).is_file() for relative in DYNAMIC_FILES.values()):
            return parent
    raise FileNotFoundError(
        f"{audio}: no folder above it holds {DYNAMIC_FILES['valence']} and {DYNAMIC_FILES['arousal']}; "
        "extract DEAM_Annotations.zip next to MEMD_audio/ (dynamic features need the per-second annotations)"
    )


@functools.lru_cache(maxsize=4)
def _cached_dynamic(root: str) -> dict[str, dict[str, np.ndarray]]:
    return load_dynamic(Path(root))


def dynamic_labels(audio: Path, song_id: str) -> dict[str, np.ndarray]:
    """{"valence": [n], "arousal": [n]} of one song at 2 Hz from 15 s (the files are parsed once per process)."""
    series = _cached_dynamic(str(annotations_root(audio)))
    if song_id not in series:
        raise KeyError(f"song {song_id}: no row in {DYNAMIC_FILES['valence']} / {DYNAMIC_FILES['arousal']}; it has no dynamic annotations")
    return series[song_id]


def label_names() -> list[str]:
    """Names of the static regression targets, in order."""
    return list(STATIC_COLUMNS[1:])
