"""Test-set metrics for classification, regression and reconstruction tasks.

Pure functions: numpy arrays in, JSON-serialisable dicts out (plain Python floats and ints).
Every result carries `metrics` (name -> float), `primary` (the metric the leaderboard ranks by)
and `higher_is_better`.

Undefined values are never NaN; they are replaced by 0.0:
- Pearson's r and Lin's CCC are 0.0 when either side is constant (zero variance) or has fewer
  than two values;
- R² follows scikit-learn's `force_finite` rule: 1.0 for a perfect prediction of a constant
  target, 0.0 for an imperfect one, and 0.0 for fewer than two samples;
- precision/recall/F1 of a class that is never predicted (or absent) are 0.0.

The scores are scikit-learn's definitions, computed here in numpy with the same operations in the same
order (so the same bits: tests/test_metrics_numpy.py compares them with scikit-learn's), because
importing scikit-learn (and scipy and pandas with it) was a large part of a short evaluation job
(issue 25; benchmarks/overhead.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _finite(value: float) -> float:
    """Plain float, with NaN/inf replaced by 0.0 (see the module docstring)."""
    value = float(value)
    return value if math.isfinite(value) else 0.0


def check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Raise a clear error when two arrays differ in shape or are empty."""
    if a.shape != b.shape:
        raise ValueError(f"{what}: targets have shape {a.shape} but predictions {b.shape}; they must match")
    if a.size == 0:
        raise ValueError(f"{what}: got empty arrays; the split has no samples to evaluate")


def check_finite(a: np.ndarray, what: str) -> None:
    """Raise when an array holds NaN or inf (a diverged model or corrupt targets)."""
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{what}: {bad} non-finite values (NaN/inf); check the model outputs and the targets")


def _constant(x: np.ndarray) -> bool:
    """True when every value equals the first (checked exactly, not through a rounded variance)."""
    return bool(np.all(x == x[0]))


def _paired(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Both sides flattened to float64; None when a correlation is undefined (constant or < 2 values)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"{name}: sizes differ ({x.size} vs {y.size})")
    if x.size < 2 or _constant(x) or _constant(y):
        return None
    return x, y


def pearson_cc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two flattened arrays; 0.0 when either side is constant."""
    pair = _paired(a, b, "pearson_cc")
    if pair is None:
        return 0.0
    x, y = pair
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    return _finite(float(np.dot(dx, dy)) / denom) if denom > 0.0 else 0.0


def concordance_cc(a: np.ndarray, b: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two flattened arrays.

    CCC = 2·cov(a, b) / (var(a) + var(b) + (mean(a) − mean(b))²), with population (1/n) moments as
    in Lin (1989). Returns 0.0 when either side is constant or has fewer than two values.
    """
    pair = _paired(a, b, "concordance_cc")
    if pair is None:
        return 0.0
    x, y = pair
    mx, my = x.mean(), y.mean()
    vx, vy = float(np.mean((x - mx) ** 2)), float(np.mean((y - my) ** 2))
    cov = float(np.mean((x - mx) * (y - my)))
    return _finite(2.0 * cov / (vx + vy + float(mx - my) ** 2))


def confusion_matrix(t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class] of integer ids in [0, n_classes) (int64, as scikit-learn's)."""
    return np.bincount(t.astype(np.int64) * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator in float64, 0.0 where the denominator is 0 (scikit-learn's `zero_division=0`)."""
    mask = denominator == 0
    denominator = np.asarray(denominator, dtype=np.float64).copy()
    denominator[mask] = 1
    result = np.asarray(numerator, dtype=np.float64) / denominator
    result[mask] = 0.0
    return result


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support of a confusion matrix (scikit-learn's
    `precision_recall_fscore_support(..., zero_division=0)`: F1 = 2 tp / (true + predicted))."""
    tp_sum = np.diag(cm)
    pred_sum = cm.sum(axis=0)
    true_sum = cm.sum(axis=1)
    f1 = _divide(2 * tp_sum.astype(np.float64), 1 * true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return _divide(tp_sum, pred_sum), _divide(tp_sum, true_sum), f1, true_sum


def _macro_f1(cm: np.ndarray) -> float:
    """Macro F1 over the classes seen in targets or predictions (sklearn's default label set)."""
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f1 = precision_recall_f1(cm[np.ix_(seen, seen)])[2]
    return _finite(np.nanmean(f1))


def _balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in the targets (scikit-learn's definition)."""
    support = cm.sum(axis=1)
    present = support > 0
    return _finite(np.mean(np.diag(cm)[present] / support[present]))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro F1, per-class scores and the confusion matrix.

    Arrays of any shape are flattened (seq2seq labels `[N, T]` work as they are). Rows and columns
    of the confusion matrix are `range(len(class_names))`, so classes absent from the split still
    get a row. Macro F1 averages over classes present in targets or predictions.
    """
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    check_same_shape(t, p, "classification_metrics")
    n_classes = len(class_names)
    for arr, name in ((t, "targets"), (p, "predictions")):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"classification_metrics: {name} have dtype {arr.dtype}; expected integer class ids")
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(
                f"classification_metrics: {name} hold class ids in [{arr.min()}, {arr.max()}] "
                f"but there are {n_classes} class names; expected ids in [0, {n_classes - 1}]"
            )
    cm = confusion_matrix(t, p, n_classes)
    prec, rec, f1, support = precision_recall_f1(cm)
    per_class = {
        str(name): {
            "precision": _finite(prec[i]),
            "recall": _finite(rec[i]),
            "f1": _finite(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "metrics": {
            "accuracy": _finite(np.average(t == p)),
            "balanced_accuracy": _balanced_accuracy(cm),
            "macro_f1": _macro_f1(cm),
        },
        "primary": "accuracy",
        "higher_is_better": True,
        "per_class": per_class,
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "class_names": [str(n) for n in class_names],
    }


def _as_2d(a: np.ndarray) -> np.ndarray:
    """`[N]` -> `[N, 1]`, `[N, K]` unchanged, `[N, T, K]` -> `[N*T, K]`."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None]
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        return a.reshape(-1, a.shape[-1])
    raise ValueError(f"expected an array of shape [N], [N, K] or [N, T, K]; got {a.shape}")


def r2_score(t: np.ndarray, p: np.ndarray) -> float:
    """R² of one float64 column, `force_finite` (scikit-learn's `r2_score`); 0.0 for fewer than two samples."""
    if t.size < 2:
        return 0.0
    t2, p2 = t.reshape(-1, 1), p.reshape(-1, 1)
    numerator = np.sum(1.0 * (t2 - p2) ** 2, axis=0)
    denominator = np.sum(1.0 * (t2 - np.average(t2, axis=0)) ** 2, axis=0)
    scores = np.ones([1], dtype=numerator.dtype)
    valid = (denominator != 0) & (numerator != 0)
    scores[valid] = 1 - (numerator[valid] / denominator[valid])
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return float(np.average(scores))


def _target_scores(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """rmse, mae, r2, pearson and ccc of one target column (float64)."""
    t2, p2 = t.reshape(-1, 1), p.reshape(-1, 1)  # scikit-learn's shapes and reductions, so its bits
    mse = float(np.average(np.average((t2 - p2) ** 2, axis=0)))
    mae = float(np.average(np.average(np.abs(p2 - t2), axis=0)))
    return {
        "rmse": _finite(math.sqrt(mse)),
        "mae": _finite(mae),
        "r2": _finite(r2_score(t, p)),
        "pearson": pearson_cc(t, p),
        "ccc": concordance_cc(t, p),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, target_names: Sequence[str]) -> dict:
    """Per-target rmse, mae, r2, pearson, ccc and their unweighted means over targets.

    Accepts `[N]` (one target), `[N, K]`, or `[N, T, K]` (time steps pooled with samples).
    """
    t, p = _as_2d(y_true), _as_2d(y_pred)
    check_same_shape(t, p, "regression_metrics")
    check_finite(t, "regression_metrics targets")
    check_finite(p, "regression_metrics predictions")
    if len(target_names) != t.shape[1]:
        raise ValueError(
            f"regression_metrics: {len(target_names)} target names for {t.shape[1]} target columns; "
            "pass one name per column"
        )
    per_target = {str(name): _target_scores(t[:, k], p[:, k]) for k, name in enumerate(target_names)}
    keys = ("rmse", "mae", "r2", "pearson", "ccc")
    means = {key: _finite(np.mean([s[key] for s in per_target.values()])) for key in keys}
    return {
        "metrics": means,
        "primary": "rmse",
        "higher_is_better": False,
        "per_target": per_target,
        "target_names": [str(n) for n in target_names],
    }


def reconstruction_metrics(
    x: np.ndarray, x_hat: np.ndarray, feature_names: Sequence[str] | None = None
) -> dict:
    """Mean squared and absolute reconstruction error, plus MSE per feature (last axis)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(x_hat, dtype=np.float64)
    check_same_shape(a, b, "reconstruction_metrics")
    check_finite(a, "reconstruction_metrics inputs")
    check_finite(b, "reconstruction_metrics reconstructions")
    n_features = a.shape[-1] if a.ndim >= 1 else 1
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise ValueError(
            f"reconstruction_metrics: {len(names)} feature names for {n_features} features (last axis)"
        )
    err = (a - b).reshape(-1, n_features)
    per_feature = np.mean(err**2, axis=0)
    return {
        "metrics": {"mse": _finite(np.mean(err**2)), "mae": _finite(np.mean(np.abs(err)))},
        "per_feature_mse": {str(n): _finite(v) for n, v in zip(names, per_feature, strict=True)},
        "primary": "mse",
        "higher_is_better": False,
    }
