"""How the report writes metrics for people: readable names and numbers with a few significant digits."""

from __future__ import annotations

import math
from collections.abc import Sequence

METRIC_NAMES = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro-F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "mse": "MSE",
    "r2": "R²",
    "pearson": "Pearson r",
    "ccc": "CCC",
    "loss": "Loss",
    "song_rmse": "RMSE per song",
    "song_pearson": "Pearson r per song",
    "domain_accuracy": "Domain accuracy (adversary)",
    "domain_majority": "Domain majority rate",
}
TASK_TYPES = {"classification": "Classification", "regression": "Regression", "reconstruction": "Reconstruction"}
DIGITS = 4


def metric_name(key: str) -> str:
    """`macro_f1` -> `Macro-F1`; unknown keys get their underscores turned into spaces."""
    return METRIC_NAMES.get(key, key.replace("_", " ").capitalize())


def arrow(higher_is_better: bool) -> str:
    """↑ when higher is better, ↓ otherwise."""
    return "↑" if higher_is_better else "↓"


def number(value: float | None, digits: int = DIGITS) -> str:
    """`value` with `digits` significant digits (no exponent between 1e-4 and 1e6); '–' for NaN/None."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    value = float(value)
    if value == 0.0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < 6:
        decimals = max(digits - 1 - magnitude, 0)
        return f"{value:.{decimals}f}"
    return f"{value:.{digits - 1}e}"


def mean_std(mean: float, std: float, n_seeds: int) -> str:
    """`0.8500 ± 0.07071` over several seeds; `0.8500 (n=1)` for one seed, whose spread is unknown."""
    if n_seeds < 2 or not math.isfinite(std):
        return f"{number(mean)} (n={n_seeds})"
    return f"{number(mean)} ± {number(std)}"


def interval(bounds: Sequence[float] | None) -> str:
    """`[0.8012, 0.9003]`, or '–' when there is no interval."""
    if bounds is None or any(b is None or not math.isfinite(float(b)) for b in bounds):
        return "–"
    return f"[{number(bounds[0])}, {number(bounds[1])}]"


def signed(value: float) -> str:
    """A difference with its sign: `+0.1234`, `−0.0500`."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    text = number(abs(value))
    return ("+" if value >= 0 else "−") + text
