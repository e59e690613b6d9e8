"""Per-sample test predictions, kept beside metrics.json so the report can compare runs pairwise.

`predictions.h5` holds what the bootstrap needs and nothing more:
- classification: `y_true`, `y_pred` (int64 class ids) and `probabilities` (float32 [N, C]) for
  seq2static tasks (piece-level votes average them);
- regression: `y_true`, `y_pred` (float32, in the targets' units);
- reconstruction: per-sample `squared_error`, `absolute_error` sums and element `count` (the
  inputs themselves would double the test set on disk);
- `item_ids` (str, the source item of each sample) when the file has them.
Root attributes: `task_type`, and `class_names` for classification. Written atomically with h5py
(no timestamps): the same predictions give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from seqpipe.evaluation import stats
from seqpipe.io import atomic_path

ARRAYS = ("y_true", "y_pred", "probabilities", "squared_error", "absolute_error", "count", "item_ids")


@dataclass(frozen=True)
class Predictions:
    """One run's (or the baseline's) test-split outputs, sample by sample."""

    task_type: str
    arrays: dict[str, np.ndarray]
    class_names: tuple[str, ...] = ()

    @property
    def item_ids(self) -> np.ndarray | None:
        """The source item of each sample, or None when the data has no item ids."""
        return self.arrays.get("item_ids")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def from_outputs(
    task_type: str,
    y_true: np.ndarray,
    outputs: np.ndarray,
    item_ids: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
) -> Predictions:
    """Predictions from model outputs: class probabilities [N, (T,) C] for classification,
    values in the targets' units otherwise."""
    return from_arrays(task_type, sample_arrays(task_type, y_true, outputs), item_ids, class_names)


def sample_arrays(task_type: str, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
    """The per-sample arrays `predictions.h5` keeps for a batch (or the whole split) of targets and outputs.

    The values of a sample do not depend on the batch it came in, so the arrays of a split's
    batches, concatenated, equal those of the whole split (a streamed split never holds its inputs).
    """
    if task_type == "classification":
        y_true = np.asarray(y_true, dtype=np.int64)
        arrays = {"y_true": y_true, "y_pred": np.asarray(outputs).argmax(-1).astype(np.int64)}
        if y_true.ndim == 1:
            arrays["probabilities"] = np.asarray(outputs, dtype=np.float32)
        return arrays
    if task_type == "reconstruction":
        return reconstruction_errors(y_true, outputs)
    return {"y_true": np.asarray(y_true, dtype=np.float32), "y_pred": np.asarray(outputs, dtype=np.float32)}


def reconstruction_errors(y_true: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample `squared_error` and `absolute_error` sums (float64) and element `count` of inputs and reconstructions."""
    err = np.asarray(y_true, dtype=np.float64) - np.asarray(outputs, dtype=np.float64)
    flat = err.reshape(len(err), -1)
    return {"squared_error": (flat**2).sum(1), "absolute_error": np.abs(flat).sum(1), "count": np.full(len(err), float(flat.shape[1]))}


def from_arrays(
    task_type: str, arrays: dict[str, np.ndarray], item_ids: np.ndarray | None = None, class_names: tuple[str, ...] = ()
) -> Predictions:
    """Predictions from per-sample arrays (`sample_arrays` of a whole split) and the split's item ids."""
    arrays = dict(arrays)
    if item_ids is not None:
        n = len(next(iter(arrays.values())))
        if len(item_ids) != n:
            raise ValueError(f"predictions: {len(item_ids)} item ids for {n} samples; expected one per sample")
        arrays["item_ids"] = np.asarray(item_ids).astype(str)
    return Predictions(task_type, arrays, tuple(str(c) for c in class_names))


def statistics(pred: Predictions) -> dict[str, stats.Statistic]:
    """The bootstrap statistics of every metric of the task type (see stats.py)."""
    a = pred.arrays
    if pred.task_type == "classification":
        n_classes = len(pred.class_names) or int(max(a["y_true"].max(), a["y_pred"].max())) + 1
        return stats.classification_statistics(a["y_true"], a["y_pred"], n_classes)
    if pred.task_type == "reconstruction":
        return stats.reconstruction_statistics(a["squared_error"], a["absolute_error"], a["count"])
    return stats.regression_statistics(a["y_true"], a["y_pred"])


def save(path: str | Path, pred: Predictions) -> None:
    """Write `predictions.h5` atomically."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest") as fh:
            fh.attrs["task_type"] = pred.task_type
            fh.attrs["class_names"] = json.dumps(list(pred.class_names))
            for key in sorted(pred.arrays):
                value = pred.arrays[key]
                if value.dtype.kind == "U":
                    fh.create_dataset(key, data=value.astype(object), dtype=h5py.string_dtype())
                else:
                    fh.create_dataset(key, data=value)


def load(path: str | Path) -> Predictions:
    """Read a `predictions.h5` written by `save`, naming the file when it is not one."""
    try:
        with h5py.File(path, "r") as fh:
            task_type = str(fh.attrs["task_type"])
            names = tuple(json.loads(fh.attrs.get("class_names", "[]")))
            arrays = {}
            for key in ARRAYS:
                if key in fh:
                    dataset = fh[key]
                    text = h5py.check_string_dtype(dataset.dtype) is not None
                    arrays[key] = dataset.asstr()[()].astype(str) if text else dataset[()]
    except (OSError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a predictions file ({exc}); expected the HDF5 file `seqpipe evaluate` writes "
            "beside metrics.json; rerun the evaluate or baseline rule"
        ) from exc
    return Predictions(task_type, arrays, names)
