"""Which files a prediction reads: INPUT paths (files or folders) expanded into sources of one kind each.

A folder contributes its audio, MIDI and HDF5 files (sorted, hidden files left out; other files such
as `info.csv` or `labels.json` are not inputs); a file named on the command line is always a source,
and one of an unknown kind is reported, never dropped. A folder in the layout of the run's own
dataset (its metadata index reads it: Groove's `info.csv`, DEAM's annotations) is read through the
dataset module instead: its items keep the dataset's ids and the labels the feature kind uses
(Groove's annotated tempo, as in training), their split is ignored, its skipped entries keep their
reasons, and media files its metadata does not list follow as plain files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seqpipe.datasets import FOLDER_PREFIX, Index, get_dataset, walk_files
from seqpipe.datasets.folder import AUDIO, MIDI

HDF5 = (".h5", ".hdf5")
AUDIO_KINDS = frozenset({"logmel", "mel_vector", "deam_dynamic"})  # every other feature kind reads MIDI


@dataclass(frozen=True)
class Source:
    """One input file: its id in the tables (path relative to the folder named, or the file's name) and its kind."""

    path: Path
    item_id: str
    kind: str  # "audio", "midi", "hdf5" or "unknown"
    labels: dict = field(default_factory=dict, hash=False, compare=False)  # from the dataset's metadata (e.g. bpm)
    reason: str | None = None  # why it cannot be read, known before extraction (a dataset's skipped entry)


def file_kind(path: Path) -> str:
    """The kind of a file from its extension."""
    suffix = path.suffix.lower()
    if suffix in AUDIO:
        return "audio"
    if suffix in MIDI:
        return "midi"
    return "hdf5" if suffix in HDF5 else "unknown"


def feature_medium(feature_kind: str) -> str:
    """What a feature kind reads: "audio" or "midi"."""
    return "audio" if feature_kind in AUDIO_KINDS else "midi"


def folder_files(path: Path) -> list[Path]:
    """A folder's audio, MIDI and HDF5 files, sorted, hidden ones left out."""
    return sorted(p for p in walk_files(path) if file_kind(p) != "unknown"
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def dataset_index(path: Path, dataset: str | None) -> tuple[Path, Index] | None:
    """The root and index of `path` read as a copy of `dataset`, or None when it is not one."""
    if not dataset or dataset.startswith(FOLDER_PREFIX) or dataset == "folder":
        return None
    try:
        module = get_dataset(dataset)
        root = module.find_root(path)
        index = module.index(root)
    except (OSError, ValueError, KeyError):
        return None
    return (root, index) if index.items else None


def dataset_sources(path: Path, root: Path, index: Index) -> Iterator[Source]:
    """A dataset copy's items, its skipped entries, then media files its metadata does not list."""
    listed = set()
    for item in index.items:
        listed.add(Path(item.path))
        yield Source(Path(item.path), item.item_id, file_kind(Path(item.path)), dict(item.labels))
    for entry in index.skipped:
        listed.add(root / entry["path"])
        yield Source(root / entry["path"], entry["id"], file_kind(Path(entry["path"])), reason=entry["reason"])
    for file in folder_files(path):
        if file not in listed:
            yield Source(file, file.relative_to(path).as_posix(), file_kind(file))


def expand(inputs: Iterable[str | Path], dataset: str | None = None) -> Iterator[Source]:
    """The sources of INPUT paths, in the order given (a folder's files sorted by relative path; a copy of
    `dataset`, the run's own dataset, by the dataset's item ids)."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = dataset_index(path, dataset)
            if found is not None:
                yield from dataset_sources(path, *found)
                continue
            for file in folder_files(path):
                yield Source(file, file.relative_to(path).as_posix(), file_kind(file))
        else:
            yield Source(path, path.name, file_kind(path))


def wrong_kind(source: Source, feature_kind: str) -> str | None:
    """Why `source` cannot go through a run on `feature_kind` (one line), or None when it can."""
    if source.kind == "hdf5":
        return None
    medium = feature_medium(feature_kind)
    if source.kind == "unknown":
        return (f"not an audio ({', '.join(AUDIO)}), MIDI ({', '.join(MIDI)}) or HDF5 ({', '.join(HDF5)}) file; "
                f"this run reads {medium} files")
    if source.kind != medium:
        return f"{'an' if source.kind == 'audio' else 'a'} {source.kind} file, but this run's features ({feature_kind}) are computed from {medium} files"
    return None
