"""The two tables of a prediction: one row per window (or per window step, seq2seq), one row per input item.

Window table columns: `item_id`, `window`, (`step`,) `start_s`, then
- classification: `predicted` (class name) and one probability column per class name;
- regression: one column per target name, in the targets' units;
- reconstruction: `mse`, the window's mean squared reconstruction error (in the input's units).
Item table columns: `item_id`, `path`, `status` (`ok` or `skipped`), `reason`, `n_windows`, then the
item's aggregate as the leaderboard's piece-level metrics form it (`seqpipe.evaluation.pieces`): the
class with the highest mean probability over the item's windows and those means, or the mean of the
windows' predictions (a seq2seq run: over every step of every window), or the mean `mse`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from seqpipe.tracking import prediction_columns as columns
from seqpipe.predict.featurise import Windows
from seqpipe.predict.run import Predictor



def value_names(p: Predictor) -> list[str]:
    """The value columns of both tables (after `predicted` for classification)."""
    return columns.value_names(p.task, p.names)


def is_per_step(p: Predictor) -> bool:
    """Whether the run predicts per step (one row per window step)."""
    return columns.is_per_step(p.task)


def window_columns(p: Predictor) -> list[str]:
    """The window table's header."""
    return columns.window_columns(p.task, p.names)


def item_columns(p: Predictor) -> list[str]:
    """The item table's header."""
    return columns.item_columns(p.task, p.names)


def window_rows(p: Predictor, w: Windows, outputs: np.ndarray, first: int) -> Iterator[list]:
    """Rows of windows `first`, `first + 1`, ... of `w.source` from their outputs."""
    classes = value_names(p) if p.task.is_classification else None
    for i, (out, start) in enumerate(zip(outputs, w.start_s)):
        steps = out if is_per_step(p) else out[None]
        for step, values in enumerate(np.atleast_2d(steps) if not p.task.is_reconstruction else [np.atleast_1d(out)]):
            head = [w.source.item_id, first + i, *([step] if is_per_step(p) else []), float(start)]
            named = [classes[int(np.argmax(values))]] if classes else []
            yield head + named + [float(v) for v in values]


class ItemSummary:
    """One item's running sums over its windows (flat in its length), and its row."""

    def __init__(self, p: Predictor, item_id: str, path: str):
        self.p, self.item_id, self.path = p, item_id, path
        self.windows, self.count, self.sums = 0, 0, None

    def add(self, outputs: np.ndarray) -> None:
        """Add a batch of the item's window outputs."""
        flat = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1, len(value_names(self.p)))
        total = flat.sum((0, 1))
        self.sums = total if self.sums is None else self.sums + total
        self.windows += len(outputs)
        self.count += flat.shape[0] * flat.shape[1]

    def row(self) -> list:
        """The item's row of the item table."""
        means = self.sums / self.count
        named = [value_names(self.p)[int(np.argmax(means))]] if self.p.task.is_classification else []
        return [self.item_id, self.path, "ok", "", self.windows] + named + [float(v) for v in means]


def skipped_row(p: Predictor, item_id: str, path: str, reason: str) -> list:
    """The item-table row of a file that gave no predictions, with its reason."""
    blanks = [""] * (len(item_columns(p)) - len(columns.ITEM_HEAD))
    return [item_id, path, "skipped", reason, 0] + blanks


def fmt(value) -> str:
    """A cell as text: floats with 9 significant digits (float32 values round-trip), NaN as empty."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.9g}"
    return str(value)
