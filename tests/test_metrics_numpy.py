"""seqpipe.evaluation.metrics computes scikit-learn's scores in numpy (an evaluation job does not import
scikit-learn): the same values to the last bit, so metrics.json stays byte-identical."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from seqpipe.evaluation.metrics import classification_metrics, regression_metrics


@pytest.mark.parametrize("seed", range(40))
def test_classification_scores_equal_scikit_learns_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 9))
    shape = (int(rng.integers(1, 300)),) if seed % 3 else (int(rng.integers(1, 40)), int(rng.integers(1, 16)))
    t = rng.integers(0, n_classes, shape)
    p = np.where(rng.random(shape) < 0.6, t, rng.integers(0, max(1, n_classes - 2), shape))  # some classes never predicted
    if seed % 5 == 0:
        t = np.minimum(t, n_classes - 2)  # a class absent from the targets
    got = classification_metrics(t, p, [f"c{i}" for i in range(n_classes)])
    tf, pf, labels = t.ravel(), p.ravel(), list(range(n_classes))
    prec, rec, f1, support = precision_recall_fscore_support(tf, pf, labels=labels, zero_division=0)
    assert got["confusion_matrix"] == confusion_matrix(tf, pf, labels=labels).tolist()
    assert got["metrics"]["accuracy"] == accuracy_score(tf, pf)
    assert got["metrics"]["macro_f1"] == f1_score(tf, pf, average="macro", zero_division=0)
    for i in range(n_classes):
        scores = got["per_class"][f"c{i}"]
        assert (scores["precision"], scores["recall"], scores["f1"], scores["support"]) == (prec[i], rec[i], f1[i], support[i])


@pytest.mark.parametrize("seed", range(40))
def test_regression_scores_equal_scikit_learns_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 4))
    shape = [(int(rng.integers(2, 500)), k), (int(rng.integers(1, 20)), int(rng.integers(1, 30)), k), (int(rng.integers(2, 50)),)][seed % 3]
    t = rng.normal(size=shape).astype(np.float32 if seed % 2 else np.float64)
    p = (t + rng.normal(scale=0.5, size=shape)).astype(t.dtype)
    if seed % 7 == 0:
        t[...] = 0.25  # a constant target: scikit-learn's force_finite rule
    if seed % 11 == 0:
        p = t.copy()  # perfect
    got = regression_metrics(t, p, [f"y{i}" for i in range(1 if len(shape) == 1 else k)])
    t2 = np.asarray(t, dtype=np.float64).reshape(-1, 1 if len(shape) == 1 else k)
    p2 = np.asarray(p, dtype=np.float64).reshape(t2.shape)
    for i, scores in enumerate(got["per_target"].values()):
        a, b = t2[:, i], p2[:, i]  # strided columns, as regression_metrics passes them
        assert scores["rmse"] == math.sqrt(mean_squared_error(a, b))
        assert scores["mae"] == mean_absolute_error(a, b)
        assert scores["r2"] == r2_score(a, b)


def test_a_single_sample_has_r2_zero():
    got = regression_metrics(np.array([[1.0]]), np.array([[0.5]]), ["y"])
    assert got["per_target"]["y"]["r2"] == 0.0 and got["per_target"]["y"]["rmse"] == 0.5
