"""Run a feature kind's extractor over items in worker processes, yielding results in item order.

Each item runs in a pebble worker with a per-file timeout; a file that cannot be read, hangs its
parser or kills its worker becomes a skipped result with the reason. At most `workers * 2` items
are in flight, and results come back in item order (a small reorder buffer of those in-flight
items), so memory is bounded by the in-flight items and the output does not depend on the worker
count.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from pebble import ProcessExpired, ProcessPool

from seqpipe.datasets import Item
from seqpipe.io import sha256_file


@dataclass
class Extracted:
    """The result of one item: its features (or why it was skipped) and its file's SHA-256."""

    item: Item
    features: np.ndarray | None
    reason: str | None = None
    sha256: str | None = None  # of the bytes read; None when the file could not be read


def kind_module(kind: str) -> ModuleType:
    """The module implementing a feature kind (seqpipe.features.kinds.<kind>)."""
    return importlib.import_module(f"seqpipe.features.kinds.{kind}")


def _digest(path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:  # missing, a folder, unreadable: the extractor's reason says which
        return None


def extract_one(args: tuple[Item, dict]) -> Extracted:
    """Extract and hash one item; any failure becomes a skipped result with its reason."""
    item, spec = args
    try:
        features = np.asarray(kind_module(spec["kind"]).extract(item, spec), dtype=np.float32)
        if features.ndim != 2 or len(features) == 0:
            reason = f"extractor returned shape {features.shape}, expected [steps, features]"
            return Extracted(item, None, reason, _digest(item.path))
        if not np.isfinite(features).all():
            return Extracted(item, None, "features contain NaN or Inf", _digest(item.path))
        return Extracted(item, features, None, _digest(item.path))
    except Exception as err:  # noqa: BLE001 - any failure of one file skips that file only
        return Extracted(item, None, f"{type(err).__name__}: {err}", _digest(item.path))


def _init_worker() -> None:
    """One thread per worker (the workers are the parallelism); torch is not imported for kinds
    that do not use it (MIDI), which saves seconds per worker."""
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _outcome(future, item: Item, spec: dict, timeout: float | None) -> Extracted:
    try:
        return future.result()
    except FuturesTimeout:
        return Extracted(item, None, f"timed out after {timeout:g} s (features.{spec['name']}.timeout_s)")
    except ProcessExpired as err:
        return Extracted(item, None, f"the worker process died ({err})")


def extract_stream(items: Iterable[Item], spec: dict, workers: int, timeout: float | None = None) -> Iterator[Extracted]:
    """Extract items in `workers` processes, each file cut off after `timeout` seconds.

    Yields one `Extracted` per item, in the items' order, while at most `2 * workers` items are in
    flight (so memory stays flat however many items there are).
    """
    workers = max(1, workers)
    in_flight: deque = deque()
    with ProcessPool(max_workers=workers, initializer=_init_worker) as pool:
        for item in items:
            in_flight.append((item, pool.schedule(extract_one, args=((item, spec),), timeout=timeout)))
            if len(in_flight) >= 2 * workers:
                head, future = in_flight.popleft()
                yield _outcome(future, head, spec, timeout)
        while in_flight:
            head, future = in_flight.popleft()
            yield _outcome(future, head, spec, timeout)


def extract_all(items: list[Item], spec: dict, workers: int, timeout: float | None = None) -> list[Extracted]:
    """Every item's result as a list, in the items' order (small sets and tests)."""
    return list(extract_stream(items, spec, workers, timeout))
