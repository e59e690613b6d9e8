"""Metrics against hand-computed values and their edge cases (constant inputs, absent classes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqpipe.evaluation.metrics import (
    classification_metrics,
    concordance_cc,
    reconstruction_metrics,
    regression_metrics,
)

# 6 samples, 3 classes. Confusion (rows true, cols predicted): [[1,1,0],[0,2,0],[1,0,1]]
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])
NAMES = ["a", "b", "c"]


def _all_plain(obj: object) -> bool:
    """True when every leaf is a plain str/int/float/bool (JSON-serialisable, no numpy types)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _all_plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_all_plain(v) for v in obj)
    return type(obj) in (str, int, float, bool)


def test_classification_hand_computed() -> None:
    out = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert out["primary"] == "accuracy" and out["higher_is_better"] is True
    assert out["metrics"]["accuracy"] == pytest.approx(4 / 6)
    assert out["metrics"]["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    # f1: a = 2·(1/2·1/2)/(1/2+1/2) = 0.5; b = 2·(2/3·1)/(2/3+1) = 0.8; c = 2·(1·1/2)/(1+1/2) = 2/3
    assert out["metrics"]["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert out["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert out["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert out["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert out["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert out["class_names"] == NAMES
    assert _all_plain(out)
    json.dumps(out, allow_nan=False)


def test_classification_unequal_support_is_macro_not_weighted() -> None:
    out = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), ["x", "y"])
    # x: P 1, R 2/3, F1 0.8; y: P 1/2, R 1, F1 2/3 (support-weighted F1 would be 0.7667)
    assert out["metrics"]["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert out["metrics"]["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["metrics"]["accuracy"] == pytest.approx(0.75)


def test_classification_absent_class_gets_a_row() -> None:
    out = classification_metrics(Y_TRUE, Y_PRED, NAMES + ["d"])
    assert len(out["confusion_matrix"]) == 4
    assert all(len(row) == 4 for row in out["confusion_matrix"])
    assert out["confusion_matrix"][3] == [0, 0, 0, 0]
    assert out["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # a class nobody saw or predicted changes neither balanced accuracy nor macro F1
    assert out["metrics"]["balanced_accuracy"] == pytest.approx(2 / 3)
    assert out["metrics"]["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_classification_seq2seq_is_flattened() -> None:
    flat = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    seq = classification_metrics(Y_TRUE.reshape(2, 3), Y_PRED.reshape(2, 3), NAMES)
    assert seq == flat


def test_classification_single_class_predictions_no_nan() -> None:
    out = classification_metrics(np.array([0, 1, 1]), np.array([1, 1, 1]), ["x", "y"])
    assert out["per_class"]["x"]["precision"] == 0.0
    assert out["metrics"]["balanced_accuracy"] == pytest.approx(0.5)
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (np.array([0, 1]), np.array([0, 3]), "class ids"),
        (np.array([0, -1]), np.array([0, 1]), "class ids"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer"),
        (np.array([0, 1, 1]), np.array([0, 1]), "shape"),
        (np.array([], dtype=int), np.array([], dtype=int), "empty"),
    ],
)
def test_classification_rejects_bad_input(y_true: np.ndarray, y_pred: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, ["a", "b"])


def _ccc_by_formula(a: list[float], b: list[float]) -> float:
    """Lin's CCC written out with population moments."""
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a) / n
    vb = sum((y - mb) ** 2 for y in b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b)) / n
    return 2 * cov / (va + vb + (ma - mb) ** 2)


def test_ccc_tiny_example() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 4.0, 5.0]
    # means 2.5 / 3.25, variances 1.25 / 1.6875, covariance 1.375 -> 2.75 / 3.5 = 0.785714...
    assert _ccc_by_formula(a, b) == pytest.approx(2.75 / 3.5)
    assert concordance_cc(np.array(a), np.array(b)) == pytest.approx(2.75 / 3.5)


def test_ccc_identity_shift_and_constant() -> None:
    x = np.array([0.1, 0.5, 0.9, 1.3])
    assert concordance_cc(x, x) == pytest.approx(1.0)
    assert concordance_cc(x - 0.7, 0.7 - x) == pytest.approx(-1.0)  # centred, mirrored
    assert concordance_cc(x, x + 1.0) < 1.0  # a bias lowers CCC but not Pearson
    assert concordance_cc(x, np.full(4, 0.7)) == 0.0
    assert concordance_cc(np.ones(4), np.ones(4)) == 0.0
    assert concordance_cc(np.array([1.0]), np.array([1.0])) == 0.0


def test_regression_perfect_and_mean_predictor() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 2))
    perfect = regression_metrics(y, y.copy(), ["valence", "arousal"])
    assert perfect["primary"] == "rmse" and perfect["higher_is_better"] is False
    for key, value in {"rmse": 0.0, "mae": 0.0, "r2": 1.0, "pearson": 1.0, "ccc": 1.0}.items():
        assert perfect["metrics"][key] == pytest.approx(value)
        assert perfect["per_target"]["valence"][key] == pytest.approx(value)
    mean_pred = regression_metrics(y, np.broadcast_to(y.mean(axis=0), y.shape), ["valence", "arousal"])
    assert mean_pred["metrics"]["r2"] == pytest.approx(0.0, abs=1e-12)
    assert mean_pred["metrics"]["pearson"] == 0.0  # constant prediction: defined as 0
    assert mean_pred["metrics"]["ccc"] == 0.0
    assert mean_pred["metrics"]["rmse"] == pytest.approx(float(np.mean(y.std(axis=0))))


def test_regression_hand_computed_per_target_and_means() -> None:
    t = np.array([[1.0, 0.0], [3.0, 0.0], [5.0, 2.0]])
    p = np.array([[2.0, 0.0], [5.0, 1.0], [5.0, 2.0]])
    out = regression_metrics(t, p, ["x", "y"])
    # x: errors 1, 2, 0 -> rmse sqrt(5/3), mae 1;  y: errors 0, 1, 0 -> rmse sqrt(1/3), mae 1/3
    assert out["per_target"]["x"]["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert out["per_target"]["x"]["mae"] == pytest.approx(1.0)
    assert out["per_target"]["y"]["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert out["per_target"]["y"]["mae"] == pytest.approx(1 / 3)
    # x: SS_res = 5, SS_tot = 8 -> r2 = 3/8
    assert out["per_target"]["x"]["r2"] == pytest.approx(3 / 8)
    assert out["metrics"]["rmse"] == pytest.approx((math.sqrt(5 / 3) + math.sqrt(1 / 3)) / 2)
    assert out["metrics"]["mae"] == pytest.approx((1 + 1 / 3) / 2)
    assert out["per_target"]["x"]["pearson"] == pytest.approx(np.corrcoef(t[:, 0], p[:, 0])[0, 1])
    assert out["per_target"]["x"]["ccc"] == pytest.approx(_ccc_by_formula(list(t[:, 0]), list(p[:, 0])))
    assert _all_plain(out)


def test_regression_shapes() -> None:
    rng = np.random.default_rng(1)
    t, p = rng.normal(size=(4, 5, 2)), rng.normal(size=(4, 5, 2))
    seq = regression_metrics(t, p, ["a", "b"])
    flat = regression_metrics(t.reshape(20, 2), p.reshape(20, 2), ["a", "b"])
    assert seq == flat
    one = regression_metrics(t[:, 0, 0], p[:, 0, 0], ["a"])
    assert list(one["per_target"]) == ["a"]
    assert one["metrics"]["rmse"] == pytest.approx(float(np.sqrt(np.mean((t[:, 0, 0] - p[:, 0, 0]) ** 2))))


def test_regression_constant_and_single_sample_no_nan() -> None:
    const = regression_metrics(np.ones((5, 1)), np.ones((5, 1)), ["c"])
    assert const["metrics"]["pearson"] == 0.0 and const["metrics"]["ccc"] == 0.0
    assert const["metrics"]["rmse"] == 0.0
    single = regression_metrics(np.array([[1.0]]), np.array([[2.0]]), ["c"])
    assert single["metrics"]["r2"] == 0.0 and single["metrics"]["rmse"] == pytest.approx(1.0)
    json.dumps([const, single], allow_nan=False)


def test_regression_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="target names"):
        regression_metrics(np.zeros((3, 2)), np.zeros((3, 2)), ["only_one"])
    with pytest.raises(ValueError, match="non-finite"):
        regression_metrics(np.zeros((3, 1)), np.array([[0.0], [np.nan], [0.0]]), ["a"])
    with pytest.raises(ValueError, match="shape"):
        regression_metrics(np.zeros((3, 1)), np.zeros((4, 1)), ["a"])


def test_reconstruction_hand_computed() -> None:
    x = np.zeros((2, 3, 2))
    x_hat = np.stack([np.ones((2, 3)), np.full((2, 3), 2.0)], axis=-1)
    out = reconstruction_metrics(x, x_hat, None)
    assert out["primary"] == "mse" and out["higher_is_better"] is False
    assert out["per_feature_mse"] == {"f0": pytest.approx(1.0), "f1": pytest.approx(4.0)}
    assert out["metrics"]["mse"] == pytest.approx(2.5)
    assert out["metrics"]["mae"] == pytest.approx(1.5)
    named = reconstruction_metrics(x, x_hat, ["pitch", "velocity"])
    assert list(named["per_feature_mse"]) == ["pitch", "velocity"]
    assert _all_plain(out)
    with pytest.raises(ValueError, match="feature names"):
        reconstruction_metrics(x, x_hat, ["only_one"])
