"""One module per dataset (mirdata style), each registered by its own `@register_dataset(NAME)`.

Every dataset module exposes the same small surface:

- `NAME`, `HOME`, `LICENSE_INFO`, `REMOTES` (url, bytes, sha256, archive member layout);
- `find_root(path) -> Path`: the dataset folder inside `path` (an extracted archive, a demo
  folder, or the user's own copy given as `datasets.<name>.root`);
- `index(root) -> Index`, decorated with `@register_dataset(NAME)`: one `Item` per readable source
  file, with its split and labels, and one `skipped` entry (`{"id", "path", "reason"}`, path relative
  to the root) per item the dataset's metadata lists (or, for Lakh, per file found) that cannot
  become an item: missing, a folder, unreadable, or not named as the dataset names its files;
- `load_items(root) -> list[Item]`: `index(root).items`, warning once about the skipped ones.
- optional: `PUBLISHED_ITEMS` (the published release's item count, the shard count's estimate before a
  copy is counted) and `count_items(root)` (a copy's item count from folder listings only).

A dataset module imports what it shares with the others from `seqpipe.datasets.base` (and the
decorator from `seqpipe.datasets.registry`), never from this package. The registry imports a
dataset module when it is first asked for (`get_dataset`, `dataset_names`), so a job loads only
the dataset it reads. Adding a dataset: docs/architecture.md ("To add ...").

Paths are never resolved: a root that is a symbolic link, or a tree of links (git-annex, DVC),
is read through its links, and relative paths are computed on the paths as given.
"""

from __future__ import annotations

from seqpipe.datasets.base import (
    SPLITS,
    DatasetLayoutError,
    Index,
    Item,
    as_root,
    file_problem,
    index_items,
    normalise_split,
    relative_path,
    skipped_entry,
    walk_files,
    warn_skipped,
    where_not_found,
)
from seqpipe.datasets.registry import DATASETS, FOLDER_PREFIX, dataset_names, get_dataset, register_dataset

__all__ = [
    "DATASETS", "FOLDER_PREFIX", "SPLITS", "DatasetLayoutError", "Index", "Item", "as_root", "dataset_names",
    "file_problem", "get_dataset", "index_items", "normalise_split", "register_dataset", "relative_path",
    "skipped_entry", "walk_files", "warn_skipped", "where_not_found",
]
