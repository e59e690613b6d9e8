"""Figures of a training run: `figures/loss.png`, train and val loss and metric per epoch.

Drawn on a matplotlib `Figure` with the Agg canvas: no pyplot, no global state, no display.
"""

from __future__ import annotations

from pathlib import Path

from seqpipe.io import atomic_path


def plot_history(rows: list[dict], path: str | Path, metric_name: str = "metric") -> Path:
    """Plot loss and metric per epoch for each split from scalars rows; write the PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    for ax, key, label in zip(fig.subplots(1, 2), ("loss", "metric"), ("loss", metric_name)):
        for split, style in (("train", "-"), ("val", "--")):
            points = [(int(r["epoch"]), float(r[key])) for r in rows if r["split"] == split and r.get(key) not in (None, "")]
            if points:
                ax.plot(*zip(*points), style, marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return path
