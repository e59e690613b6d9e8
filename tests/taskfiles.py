"""Helpers only the tests use (moved out of the package: issue 21 item 4). Import as `from taskfiles import ...`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqpipe.data.hdf5 import DEFAULT_FRACTIONS, Split
from seqpipe.data.reader import open_task


def load_splits(
    path: str | Path, fractions: list[float] = DEFAULT_FRACTIONS, seed: int = 0, *, task: dict | None = None
) -> dict[str, Split]:
    """Read all three splits into memory, auto-splitting a root-level file by `fractions` and `seed`.

    A convenience for small files and tests; stages read through `seqpipe.data.reader`. `task`
    (optional) selects how the file is read (`format: rollout`, stratified classes); its
    `split_fractions` and `split_seed` are replaced by `fractions` and `seed`.
    """
    task = {"type": "unknown", **(task or {}), "split_fractions": list(fractions), "split_seed": seed}
    data = open_task(path, task)
    try:
        out = {}
        for name, split in data.splits.items():
            every = np.arange(split.n)
            out[name] = Split(data=split.rows.read("data", every), labels=split.rows.read("labels", every), item_ids=split.item_ids())
        return out
    finally:
        data.close()
