"""Figures logged to MLflow runs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_figure(matrix: list[list[int]], class_names: list[str] | None = None) -> plt.Figure:
    """The test confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    cm = np.asarray(matrix)
    names = class_names or [str(i) for i in range(len(cm))]
    size = 1.2 + 0.5 * len(cm)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(len(cm)), yticks=range(len(cm)), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true", title="Test confusion matrix")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > cm.max() / 2 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
