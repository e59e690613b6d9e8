"""How a feature set is split into shards, one Snakemake job each, and which items a shard takes.

The shard count is a function of the configuration alone (no checkpoint, so `snakemake -n`
plans every job up front): `features.<set>.shards` when it is a number, else (`auto`, the
default) one shard per `ITEMS_PER_SHARD` items of the dataset's expected size: the demo's
`n_items`, the size of the user's copy (`source: root`, counted from its folder listings where the
dataset module can, e.g. Lakh: no file is read), or the published item count of the real dataset,
capped by `datasets.<name>.limit`.
A shard takes a contiguous slice of the item list (sorted by id), so the merged file holds the
items in the same order as a build in one job; splits never depend on the sharding.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TypeVar

from seqpipe.raw.manifest import tree_state
from seqpipe.datasets import get_dataset

T = TypeVar("T")

ITEMS_PER_SHARD = 2000


def expected_items(config: dict, dataset: str) -> int:
    """The number of items a dataset is expected to hold under this configuration."""
    settings = config["datasets"][dataset]
    count = getattr(get_dataset(dataset), "PUBLISHED_ITEMS", ITEMS_PER_SHARD)  # the dataset module's own figure
    if settings.get("source", "demo") == "demo":
        count = config.get("demo", {}).get(dataset, {}).get("n_items", count)
    elif settings.get("source") == "root" and settings.get("root") and not (settings.get("limit") or math.inf) <= ITEMS_PER_SHARD:
        count = copy_items(dataset, str(settings["root"])) or count  # not counted when the limit makes one shard anyway
    if settings.get("limit"):
        count = min(count, settings["limit"])
    return count


def copy_items(dataset: str, root: str) -> int | None:
    """The item count of a user's copy from the module's `count_items` (folder listings only), or
    None where the module cannot count cheaply or the root holds no layout it knows."""
    if not hasattr(get_dataset(dataset), "count_items"):
        return None
    return _counted(dataset, root, tree_state(root, dataset))


@functools.lru_cache(maxsize=64)
def _counted(dataset: str, root: str, state: str) -> int | None:  # keyed by the tree's fingerprint: a changed copy is counted again
    try:
        return get_dataset(dataset).count_items(Path(root).expanduser())
    except FileNotFoundError:  # no layout: the index job says why
        return None


def shard_count(config: dict, feature_set: str) -> int:
    """`features.<set>.shards`, resolving `auto` to ceil(expected items / ITEMS_PER_SHARD)."""
    spec = config["features"][feature_set]
    value = spec.get("shards", "auto")
    if value == "auto":
        return max(1, math.ceil(expected_items(config, spec["dataset"]) / ITEMS_PER_SHARD))
    return int(value)


def shard_slice(items: list[T], index: int, count: int) -> list[T]:
    """Shard `index` (0-based) of `count`: a contiguous slice, the slices together all items in order."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: expected 0 <= shard < shards")
    n = len(items)
    return items[index * n // count : (index + 1) * n // count]


def parse_shard(text: str) -> tuple[int, int]:
    """`"I/N"` -> (I, N)."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/8") from err
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: expected 0 <= I < N")
    return index, count
