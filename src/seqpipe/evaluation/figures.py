"""The report's figures as PNG bytes: models against the baseline, learning curves, confusion matrices.

matplotlib's object API on the Agg canvas (no pyplot, no global backend state); PNGs carry no
software or date stamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seqpipe.evaluation.formatting import arrow, metric_name

DPI = 100
BASELINE = "baseline"
DECADES = 1.5  # log axis when the positive values span more than this many powers of ten
TICK_CHARS = 24  # longer model names (sweep cells) are shortened in the middle on an axis


def tick_label(name: str, limit: int = TICK_CHARS) -> str:
    """`name`, or its start and end around an ellipsis when longer than `limit` (the tables keep it whole)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[-(limit - 1 - head):]


def _new_figure(width: float, height: float) -> Any:
    """A Figure attached to an Agg canvas (headless; nothing registered with pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """Render a figure to PNG bytes without the software/date metadata (reproducible bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()


def wrap(title: str, width: int = 60) -> str:
    """A title broken into lines of at most `width` characters (long sweep names included)."""
    return "\n".join(line for part in title.split("\n") for line in textwrap.wrap(part, width) or [""])


def spans_decades(values: Sequence[float], decades: float = DECADES) -> bool:
    """True when all values are positive and the largest is over 10**decades times the smallest."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    return bool(arr.size >= 2 and np.all(arr > 0) and math.log10(arr.max() / arr.min()) > decades)


def plot_leaderboard(task_df: pd.DataFrame) -> bytes:
    """One task's models as bars (mean over seeds) with their 95% intervals, the baseline in grey;
    a log axis when the means span decades."""
    fig = _new_figure(max(4.5, 0.9 * len(task_df) + 2.5), 3.8)
    ax = fig.add_subplot()
    models = task_df["model"].tolist()
    means = task_df["mean"].to_numpy(dtype=np.float64)
    low = task_df["ci_low"].to_numpy(dtype=np.float64)
    high = task_df["ci_high"].to_numpy(dtype=np.float64)
    errors = np.vstack([np.where(np.isfinite(low), means - low, 0.0), np.where(np.isfinite(high), high - means, 0.0)])
    colors = ["#9e9e9e" if m == BASELINE else "#1f77b4" for m in models]
    log_axis = spans_decades([*means, *low, *high])
    if log_axis:
        ax.set_yscale("log")
    ax.bar(range(len(models)), means, yerr=np.maximum(errors, 0.0), color=colors, capsize=4)
    base = task_df.loc[task_df["model"] == BASELINE, "mean"]
    if len(base):
        ax.axhline(float(base.iloc[0]), color="#616161", linestyle="--", linewidth=1, label="baseline")
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(range(len(models)), [tick_label(m) for m in models], rotation=30, ha="right")
    first = task_df.iloc[0]
    name = metric_name(str(first["primary"]))
    ax.set_ylabel(f"{name} {arrow(bool(first['higher_is_better']))}" + (" (log scale)" if log_axis else ""))
    direction = "higher" if first["higher_is_better"] else "lower"
    ax.set_title(wrap(f"{first['task']}: test {name} ({direction} is better), bars: 95% interval"), fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


def best_epoch(table: pd.DataFrame, run: dict | None) -> int | None:
    """The epoch of the kept checkpoint: run.json's `best_epoch`, else the lowest validation loss."""
    if run and run.get("best_epoch") is not None:
        return int(run["best_epoch"])
    val = table[table["split"] == "val"]
    return int(val.loc[val["loss"].idxmin(), "epoch"]) if len(val) else None


def plot_curves(curves: dict[str, pd.DataFrame], title: str, best: dict[str, int | None]) -> bytes:
    """Train/val loss per epoch, one line pair per seed, each seed's best epoch marked with a dot;
    a log axis when the losses span decades."""
    fig = _new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    styles = {"train": "-", "val": "--"}
    losses = []
    for index, (seed, table) in enumerate(curves.items()):
        color = f"C{index % 10}"
        for split, part in table.groupby("split", sort=True):
            part = part.sort_values("epoch")
            losses += part["loss"].tolist()
            ax.plot(part["epoch"], part["loss"], styles.get(str(split), ":"), color=color, label=f"{split} (seed {seed})")
        epoch = best.get(seed)
        val = table[(table["split"] == "val") & (table["epoch"] == epoch)]
        if epoch is not None and len(val):
            ax.plot([epoch], [float(val["loss"].iloc[0])], "o", color=color, markersize=7,
                    markerfacecolor="none", label=f"best epoch {epoch} (seed {seed})")
    from matplotlib.ticker import MaxNLocator

    if spans_decades(losses):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    marks = ", ".join(f"seed {s}: {e}" for s, e in best.items() if e is not None)
    ax.set_title(wrap(f"{title}\nbest epoch ({marks})" if marks else title), fontsize=9)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], title: str) -> bytes:
    """Confusion matrix (rows = true class, columns = predicted), counts annotated, row-normalised colour."""
    n = len(class_names)
    size = min(12.0, 3.0 + 0.45 * n)
    fig = _new_figure(size, size)
    ax = fig.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(n), list(class_names), rotation=90, fontsize=7)
    ax.set_yticks(range(n), list(class_names), fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(wrap(title), fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
