"""Bootstrap confidence intervals for test metrics, resampling whole source items.

A metric here is a `Statistic`: per-sample sums `stats` [N, k] and a function `finish` that turns
their column sums into the metric value. A bootstrap resample is a weight per sample (how often it
was drawn), so B resamples are one matrix product W [B, N] @ stats [N, k], done in blocks of
`BLOCK` resamples so memory stays at BLOCK × N whatever B is.

Windows cut from one piece are not independent. When item ids exist, a resample draws whole items
with replacement and every window of a drawn item gets the item's count as its weight (a cluster
bootstrap); otherwise it draws samples.

`bootstrap` evaluates several statistics on the same resamples. A paired comparison (model against
baseline, or the mean over seeds) is a function of those rows, so the items both systems find easy
or hard cancel out of the difference. The resamples depend only on `seed` and the item ids, never
on the predictions: every run of a task is resampled alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is imported only by the classification statistics that use it (an evaluation job's start)
    from scipy import sparse

N_RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0
BLOCK = 100
_EPS = 1e-12

Finish = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Statistic:
    """A metric as per-sample sums [N, k] (dense or scipy.sparse) and sums [B, k] -> values [B]."""

    stats: np.ndarray | sparse.csr_matrix
    finish: Finish

    def value(self) -> float:
        """The metric on the full sample (all weights 1)."""
        return float(self.values(np.ones((1, self.stats.shape[0])))[0])

    def values(self, weights: np.ndarray) -> np.ndarray:
        """The metric under each row of `weights` [B, N]."""
        if isinstance(self.stats, np.ndarray):
            sums = weights @ self.stats
        else:  # scipy.sparse
            sums = np.asarray((self.stats.T @ weights.T).T)
        return self.finish(np.atleast_2d(sums))


def group_codes(n: int, groups: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Integer code per sample (its item, or itself) and the number of resampling units."""
    if groups is None:
        return np.arange(n), n
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"bootstrap: {len(groups)} item ids for {n} samples; expected one id per sample")
    unique, codes = np.unique(groups, return_inverse=True)
    return codes.reshape(-1), len(unique)


def resample_weights(
    n: int, groups: np.ndarray | None = None, n_resamples: int = N_RESAMPLES, seed: int = SEED, block: int = BLOCK
) -> Iterator[np.ndarray]:
    """Blocks of bootstrap weights [b, N]: whole items (or samples) drawn with replacement."""
    if n == 0:
        raise ValueError("bootstrap: no samples to resample; the test split is empty")
    codes, n_units = group_codes(n, groups)
    rng = np.random.default_rng(seed)
    probabilities = np.full(n_units, 1.0 / n_units)
    for start in range(0, n_resamples, block):
        counts = rng.multinomial(n_units, probabilities, size=min(block, n_resamples - start))
        yield counts[:, codes].astype(np.float64)


def bootstrap(
    statistics: Sequence[Statistic],
    groups: np.ndarray | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> np.ndarray:
    """Values [len(statistics), n_resamples] of each statistic on the same resamples."""
    if not statistics:
        return np.zeros((0, n_resamples))
    n = statistics[0].stats.shape[0]
    for stat in statistics:
        if stat.stats.shape[0] != n:
            raise ValueError(f"bootstrap: statistics cover {stat.stats.shape[0]} and {n} samples; pair equal test splits")
    blocks = [np.stack([s.values(w) for s in statistics]) for w in resample_weights(n, groups, n_resamples, seed)]
    return np.concatenate(blocks, axis=1)


def interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """The percentile interval [lo, hi] holding `confidence` of the bootstrap values."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds; std is NaN for a single seed."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else float("nan")


# ---------------------------------------------------------------------------------------------
# Statistics of each task type (the same definitions as metrics.py)
# ---------------------------------------------------------------------------------------------


def classification_statistics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Statistic]:
    """accuracy, balanced_accuracy and macro_f1 from per-sample confusion counts.

    `y_true`/`y_pred` are class ids [N] or [N, T]; a sample's counts sum over its steps.
    """
    t = np.asarray(y_true).reshape(len(y_true), -1)
    p = np.asarray(y_pred).reshape(len(y_pred), -1)
    if t.shape != p.shape:
        raise ValueError(f"classification statistics: targets {t.shape} but predictions {p.shape}; they must match")
    from scipy import sparse

    rows = np.repeat(np.arange(len(t)), t.shape[1])
    cells = (t * n_classes + p).reshape(-1)
    counts = sparse.csr_matrix((np.ones(len(cells)), (rows, cells)), shape=(len(t), n_classes * n_classes))

    def confusion(sums: np.ndarray) -> np.ndarray:
        return sums.reshape(len(sums), n_classes, n_classes)

    def accuracy(sums: np.ndarray) -> np.ndarray:
        cm = confusion(sums)
        return np.trace(cm, axis1=1, axis2=2) / np.maximum(cm.sum(axis=(1, 2)), _EPS)

    def balanced_accuracy(sums: np.ndarray) -> np.ndarray:
        cm = confusion(sums)
        support = cm.sum(axis=2)
        recall = np.diagonal(cm, axis1=1, axis2=2) / np.maximum(support, _EPS)
        present = support > 0
        return (recall * present).sum(1) / np.maximum(present.sum(1), 1)

    def macro_f1(sums: np.ndarray) -> np.ndarray:
        cm = confusion(sums)
        support, predicted = cm.sum(axis=2), cm.sum(axis=1)
        f1 = 2.0 * np.diagonal(cm, axis1=1, axis2=2) / np.maximum(support + predicted, _EPS)
        present = (support + predicted) > 0
        return (f1 * present).sum(1) / np.maximum(present.sum(1), 1)

    return {
        "accuracy": Statistic(counts, accuracy),
        "balanced_accuracy": Statistic(counts, balanced_accuracy),
        "macro_f1": Statistic(counts, macro_f1),
    }


def regression_statistics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Statistic]:
    """rmse, mae, r2, pearson and ccc, each the unweighted mean over target columns.

    `y_true`/`y_pred` are [N], [N, K] or [N, T, K]; steps pool with samples as in metrics.py.
    Moments are taken around the full-sample means (exact sums, no cancellation).
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"regression statistics: targets {t.shape} but predictions {p.shape}; they must match")
    t = t.reshape(len(t), -1, 1 if t.ndim == 1 else t.shape[-1])
    p = p.reshape(t.shape)
    n_steps, k = t.shape[1], t.shape[2]
    mt, mp = t.reshape(-1, k).mean(0), p.reshape(-1, k).mean(0)
    dt, dp = t - mt, p - mp
    err = t - p
    parts = [err**2, np.abs(err), dt, dp, dt**2, dp**2, dt * dp]  # each [N, T, K]
    stats = np.concatenate([part.sum(1) for part in parts] + [np.full((len(t), 1), float(n_steps))], axis=1)
    scale_t = np.maximum(np.mean(dt.reshape(-1, k) ** 2, 0), 1.0)
    scale_p = np.maximum(np.mean(dp.reshape(-1, k) ** 2, 0), 1.0)

    def moments(sums: np.ndarray) -> dict[str, np.ndarray]:
        n = sums[:, -1:]
        se, ae, st, sp, stt, spp, stp = (sums[:, i * k : (i + 1) * k] / n for i in range(7))
        var_t, var_p = stt - st**2, spp - sp**2
        return {"n": n, "mse": se, "mae": ae, "var_t": var_t, "var_p": var_p, "cov": stp - st * sp,
                "diff": (mt + st) - (mp + sp), "const_t": var_t <= _EPS * scale_t, "const_p": var_p <= _EPS * scale_p}

    def rmse(sums: np.ndarray) -> np.ndarray:
        return np.sqrt(moments(sums)["mse"]).mean(1)

    def mae(sums: np.ndarray) -> np.ndarray:
        return moments(sums)["mae"].mean(1)

    def r2(sums: np.ndarray) -> np.ndarray:
        m = moments(sums)
        value = 1.0 - m["mse"] / np.where(m["const_t"], 1.0, m["var_t"])
        constant = np.where(m["mse"] <= _EPS * scale_t, 1.0, 0.0)  # scikit-learn's force_finite rule
        value = np.where(m["const_t"], constant, value)
        return np.where(m["n"] < 2, 0.0, value).mean(1)

    def pearson(sums: np.ndarray) -> np.ndarray:
        m = moments(sums)
        undefined = m["const_t"] | m["const_p"] | (m["n"] < 2)
        value = m["cov"] / np.sqrt(np.where(undefined, 1.0, m["var_t"] * m["var_p"]))
        return np.where(undefined, 0.0, value).mean(1)

    def ccc(sums: np.ndarray) -> np.ndarray:
        m = moments(sums)
        undefined = m["const_t"] | m["const_p"] | (m["n"] < 2)
        denom = m["var_t"] + m["var_p"] + m["diff"] ** 2
        value = 2.0 * m["cov"] / np.where(undefined, 1.0, denom)
        return np.where(undefined, 0.0, value).mean(1)

    return {name: Statistic(stats, fn) for name, fn in
            (("rmse", rmse), ("mae", mae), ("r2", r2), ("pearson", pearson), ("ccc", ccc))}


def reconstruction_statistics(squared_error: np.ndarray, absolute_error: np.ndarray, count: np.ndarray) -> dict[str, Statistic]:
    """mse and mae from each sample's summed squared and absolute errors and its element count."""
    stats = np.stack([squared_error, absolute_error, count], axis=1).astype(np.float64)
    return {
        "mse": Statistic(stats, lambda s: s[:, 0] / np.maximum(s[:, 2], _EPS)),
        "mae": Statistic(stats, lambda s: s[:, 1] / np.maximum(s[:, 2], _EPS)),
    }
