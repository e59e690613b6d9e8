"""Time-averaged log-mel vector (seed 004): 128 bands averaged over the clip, scaled to [-1, 1]."""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.audio import load_audio, log_mel, mel_vector


def feature_names(spec: dict) -> list[str]:
    """One value per mel band."""
    return [f"mel_{b}" for b in range(spec["n_mels"])]


def frame_rate(spec: dict) -> float:
    """One vector per item."""
    return 0.0


def extract(item: Item, spec: dict) -> np.ndarray:
    """[1, n_mels] time-averaged, min-max scaled log-mel of one clip."""
    y = load_audio(item.path, spec["sample_rate"])
    return mel_vector(log_mel(y, spec["sample_rate"], spec["n_fft"], spec["hop_length"], spec["n_mels"]))[None]
