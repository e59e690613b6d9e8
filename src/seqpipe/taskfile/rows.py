"""Row sources: where a split's rows come from (an HDF5 group, a root-level file's subset, or arrays)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from seqpipe.taskfile.hdf5 import decode_strings, open_h5


def _runs(positions: np.ndarray) -> list[np.ndarray]:
    """Runs of consecutive values in `positions`."""
    return np.split(positions, np.flatnonzero(np.diff(positions) != 1) + 1)


class H5Rows:
    """The rows of one split in an HDF5 file: a group's rows, or the `rows` of a root-level file.

    Holds no open handle when pickled (each DataLoader worker opens its own, lazily).
    """

    def __init__(self, path: str | Path, group: str, rows: np.ndarray | None, n: int):
        self.path, self.group, self.rows, self.n = str(path), group, rows, n
        self._fh: h5py.File | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fh": None}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def dataset(self, key: str) -> h5py.Dataset | None:
        """The split's dataset `key` (None when absent)."""
        if self._fh is None:
            self._fh = open_h5(self.path)
        node = self._fh[self.group] if self.group else self._fh
        value = node.get(key)
        return value if isinstance(value, h5py.Dataset) else None

    def has(self, key: str) -> bool:
        return self.dataset(key) is not None

    def shape(self, key: str) -> tuple[int, ...] | None:
        ds = self.dataset(key)
        return None if ds is None else (self.n, *ds.shape[1:])

    def dtype(self, key: str) -> np.dtype | None:
        ds = self.dataset(key)
        return None if ds is None else ds.dtype

    def file_length(self, key: str) -> int | None:
        ds = self.dataset(key)
        return None if ds is None else (len(ds) if ds.shape else 0)

    def read(self, key: str, positions: np.ndarray) -> np.ndarray | None:
        """Values of `key` at split `positions`, in that order; runs of consecutive positions are one read each."""
        ds = self.dataset(key)
        if ds is None:
            return None
        if not len(positions):
            return np.zeros((0, *ds.shape[1:]), ds.dtype)
        parts = []
        for run in _runs(np.asarray(positions, dtype=np.int64)):
            if self.rows is None:
                parts.append(ds[int(run[0]) : int(run[-1]) + 1])
            else:
                rows = self.rows[run]  # increasing: read their span once and keep the split's rows
                lo, hi = int(rows[0]), int(rows[-1])
                span = ds[lo : hi + 1]
                parts.append(span if hi - lo + 1 == len(rows) else span[rows - lo])
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return decode_strings(out) if out.dtype.kind in "OS" else out

    def read_all(self, key: str) -> np.ndarray | None:
        """Every value of `key` in the split (for small per-sample arrays: labels, item ids, domains)."""
        return self.read(key, np.arange(self.n))


class ArrayRows:
    """The rows of one split held as arrays (rollout files: a few thousand rows of a few numbers)."""

    def __init__(self, arrays: dict[str, np.ndarray | None]):
        self.arrays = {k: v for k, v in arrays.items() if v is not None}
        self.n = len(self.arrays["data"])

    def close(self) -> None:
        pass

    def has(self, key: str) -> bool:
        return key in self.arrays

    def shape(self, key: str) -> tuple[int, ...] | None:
        return self.arrays[key].shape if key in self.arrays else None

    def dtype(self, key: str) -> np.dtype | None:
        return self.arrays[key].dtype if key in self.arrays else None

    def file_length(self, key: str) -> int | None:
        return len(self.arrays[key]) if key in self.arrays else None

    def read(self, key: str, positions: np.ndarray) -> np.ndarray | None:
        return self.arrays[key][np.asarray(positions, dtype=np.int64)] if key in self.arrays else None

    def read_all(self, key: str) -> np.ndarray | None:
        return self.arrays.get(key)
