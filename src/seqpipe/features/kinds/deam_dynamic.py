"""DEAM dynamic: log-mel at 2 Hz aligned with DEAM's per-second valence/arousal annotations (from 15 s).

Step k stands for the annotation at t_k = 15 s + k / 2 Hz and pools the log-mel frames whose centres
lie in [t_k - 0.25 s, t_k + 0.25 s). A song gives as many steps as both its annotations and its audio
cover; its per-step targets (valence, arousal on DEAM's [-1, 1] scale) are the last two columns of
`extract`'s output, which the feature builder stores as `labels` [N, T, 2] (seq2seq regression), cut
into windows within each song (a window never spans two songs).
"""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item, deam
from seqpipe.features.audio import load_audio, log_mel

TARGETS = ["valence", "arousal"]


def feature_names(spec: dict) -> list[str]:
    """One column per mel band."""
    return [f"mel_{b}" for b in range(spec["n_mels"])]


def frame_rate(spec: dict) -> float:
    """DEAM's annotation rate."""
    return deam.DYNAMIC_RATE_HZ


def step_targets(spec: dict) -> list[str]:
    """Names of the per-step targets that follow the features in `extract`'s columns."""
    return list(TARGETS)


def aligned_steps(mel: np.ndarray, sample_rate: int, hop_length: int, n_steps: int) -> np.ndarray:
    """Mean log-mel [n, n_mels] around each annotation time, for the first n <= n_steps times the audio covers."""
    centres = np.arange(len(mel)) * hop_length / sample_rate
    times = deam.DYNAMIC_START_S + np.arange(n_steps) / deam.DYNAMIC_RATE_HZ
    half = 0.5 / deam.DYNAMIC_RATE_HZ
    lo, hi = np.searchsorted(centres, times - half), np.searchsorted(centres, times + half)
    covered = int(np.sum((hi - lo > 0) & (times + half <= centres[-1] + hop_length / sample_rate)))
    sums = np.concatenate([np.zeros((1, mel.shape[1])), np.cumsum(mel, axis=0, dtype=np.float64)])
    lo, hi = lo[:covered], hi[:covered]
    return ((sums[hi] - sums[lo]) / (hi - lo)[:, None]).astype(np.float32)


def extract(item: Item, spec: dict) -> np.ndarray:
    """[steps, n_mels + 2]: the aligned log-mel, then valence and arousal, of one annotated song."""
    series = deam.dynamic_labels(item.path, item.item_id)
    n = min(len(series["valence"]), len(series["arousal"]))
    if n == 0:
        raise ValueError(f"song {item.item_id}: no dynamic annotations (empty rows in the valence/arousal CSVs)")
    y = load_audio(item.path, spec["sample_rate"])
    mel = log_mel(y, spec["sample_rate"], spec["n_fft"], spec["hop_length"], spec["n_mels"])
    steps = aligned_steps(mel, spec["sample_rate"], spec["hop_length"], n)
    if len(steps) == 0:
        raise ValueError(f"song {item.item_id}: the audio ends before {deam.DYNAMIC_START_S:g} s, where the annotations start")
    labels = np.stack([series[t][: len(steps)] for t in TARGETS], axis=1)
    if not np.isfinite(labels).all():
        raise ValueError(f"song {item.item_id}: a dynamic annotation inside the song is empty or not a number")
    return np.concatenate([steps, labels.astype(np.float32)], axis=1)
