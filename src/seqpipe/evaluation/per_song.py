"""MediaEval "Emotion in Music" protocol for per-frame regression: metrics per song, averaged over songs.

The pooled metrics (every frame of every song in one pool) reward getting each song's level right;
the benchmark's dynamic task scores each song's RMSE and Pearson r over its own frames and averages
them over songs, so it rewards following the curve within a song. Windows of one song are joined by
their item id; a frame covered by two overlapping windows counts once, with the mean of their
predictions (`window_start` gives each window's first frame; without it every window's frames count).
A song whose targets are constant has no Pearson r (nan) and is left out of that mean only; a
constant prediction (the baseline's) has r = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from seqpipe.config.types import Task, TaskType


def song_frames(values: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    """One song's windows [W, T, K] -> its frames [F, K] (overlaps averaged; without starts: concatenated)."""
    if starts is None:
        return values.reshape(-1, values.shape[-1])
    length = int(starts.max()) + values.shape[1]
    total = np.zeros((length, values.shape[-1]))
    count = np.zeros((length, 1))
    for window, start in zip(values, starts):
        total[start : start + len(window)] += window
        count[start : start + len(window)] += 1
    covered = count[:, 0] > 0
    return total[covered] / count[covered]


def _pearson(target: np.ndarray, prediction: np.ndarray) -> float:
    """r of one song; nan when the targets are constant (undefined), 0 when only the prediction is (no relation)."""
    if len(target) < 2 or np.std(target) == 0:
        return float("nan")
    if np.std(prediction) == 0:
        return 0.0
    return float(np.corrcoef(target, prediction)[0, 1])


def per_song_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, item_ids: Sequence[str], target_names: Sequence[str],
    window_starts: np.ndarray | None = None,
) -> dict:
    """Per target: RMSE and Pearson r per song, averaged over songs; plus their means over targets.

    `y_true`, `y_pred`: [N, T, K] windows; `item_ids`: the song of each window.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim != 3 or y_true.shape != y_pred.shape:
        raise ValueError(f"per_song_metrics: expected targets and predictions [N, T, K] of one shape; got {y_true.shape} and {y_pred.shape}")
    ids = np.asarray(item_ids)
    if len(ids) != len(y_true):
        raise ValueError(f"per_song_metrics: {len(ids)} item ids for {len(y_true)} windows; expected one per window")
    rmse: dict[str, list[float]] = {str(n): [] for n in target_names}
    pearson: dict[str, list[float]] = {str(n): [] for n in target_names}
    songs = sorted(set(ids.tolist()))
    for song in songs:
        rows = np.flatnonzero(ids == song)
        starts = None if window_starts is None else np.asarray(window_starts)[rows]
        t, p = song_frames(y_true[rows], starts), song_frames(y_pred[rows], starts)
        for k, name in enumerate(target_names):
            rmse[str(name)].append(float(np.sqrt(np.mean((t[:, k] - p[:, k]) ** 2))))
            pearson[str(name)].append(_pearson(t[:, k], p[:, k]))
    per_target = {
        name: {"song_rmse": float(np.mean(rmse[name])), "song_pearson": float(np.nanmean(pearson[name])) if np.isfinite(pearson[name]).any() else float("nan")}
        for name in rmse
    }
    means = {key: float(np.nanmean([v[key] for v in per_target.values()])) for key in ("song_rmse", "song_pearson")}
    return {"metrics": means, "per_target": per_target, "n_songs": len(songs)}


def test_songs(path: str | Path) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The test split's item ids and window starts of a pre-split file (None without item ids)."""
    with h5py.File(path, "r") as fh:
        group = fh.get("test")
        if not isinstance(group, h5py.Group) or "item_ids" not in group:
            return None
        ids = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in group["item_ids"][()]])
        starts = group["window_start"][()] if "window_start" in group else None
    return ids, starts


def song_scores(path: str | Path | None, task: Task, y_true: np.ndarray, y_pred: np.ndarray, names: dict) -> dict:
    """{"per_song": ...} for seq2seq regression on a file with item ids ({} otherwise); means go into `metrics`."""
    if path is None or not task.is_seq2seq or task.type is not TaskType.REGRESSION or np.ndim(y_true) != 3:
        return {}
    songs = test_songs(path)
    if songs is None or len(songs[0]) != len(y_true):
        return {}
    return {"per_song": per_song_metrics(y_true, y_pred, songs[0], names["target_names"], songs[1])}
