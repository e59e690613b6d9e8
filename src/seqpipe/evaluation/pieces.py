"""Piece-level predictions: one prediction per source item from the predictions of its windows.

A classifier's piece prediction is the class with the highest mean probability over the piece's
windows (a soft majority vote); a regressor's is the mean of its windows' predictions, scored
against the mean of their targets. Only seq2static tasks with item ids have pieces; a
classification task whose labels change within an item has no single piece label and gets none.
"""

from __future__ import annotations

import numpy as np

from seqpipe.evaluation.predictions import Predictions


def _item_means(codes: np.ndarray, n_items: int, values: np.ndarray) -> np.ndarray:
    """Mean of `values` [N, ...] over the samples of each item code."""
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    sums = np.zeros((n_items, flat.shape[1]))
    np.add.at(sums, codes, flat)
    counts = np.bincount(codes, minlength=n_items).astype(np.float64)
    return (sums / counts[:, None]).reshape(n_items, *np.shape(values)[1:])


def why_no_pieces(pred: Predictions) -> str | None:
    """The reason `pred` has no piece level, or None when it has one."""
    if pred.item_ids is None:
        return "the test split has no item_ids"
    if pred.task_type == "reconstruction" or pred.arrays["y_true"].ndim > (1 if pred.task_type == "classification" else 2):
        return "piece-level metrics are defined for seq2static classification and regression"
    if pred.task_type == "classification":
        if "probabilities" not in pred.arrays:
            return "the predictions hold no class probabilities"
        _, codes = np.unique(pred.item_ids, return_inverse=True)
        first = np.zeros(codes.max() + 1, dtype=np.int64)
        first[codes] = pred.arrays["y_true"]
        if np.any(first[codes] != pred.arrays["y_true"]):
            return "labels change within an item, so an item has no single label"
    return None


def piece_predictions(pred: Predictions) -> Predictions:
    """One sample per item (sorted by item id); `item_ids` are the items themselves."""
    reason = why_no_pieces(pred)
    if reason is not None:
        raise ValueError(f"piece-level predictions: {reason}")
    items, codes = np.unique(pred.item_ids, return_inverse=True)
    codes = codes.reshape(-1)
    a = pred.arrays
    if pred.task_type == "classification":
        probabilities = _item_means(codes, len(items), a["probabilities"]).astype(np.float32)
        y_true = np.zeros(len(items), dtype=np.int64)
        y_true[codes] = a["y_true"]
        arrays = {"y_true": y_true, "y_pred": probabilities.argmax(-1).astype(np.int64), "probabilities": probabilities}
    else:
        arrays = {"y_true": _item_means(codes, len(items), a["y_true"]).astype(np.float32),
                  "y_pred": _item_means(codes, len(items), a["y_pred"]).astype(np.float32)}
    return Predictions(pred.task_type, arrays | {"item_ids": items}, pred.class_names)
