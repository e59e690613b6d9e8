"""Log-mel sequence: audio resampled to `sample_rate`, `n_mels` bands in dB, `pool` frames averaged."""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.audio import load_audio, log_mel, pool_frames


def feature_names(spec: dict) -> list[str]:
    """One column per mel band."""
    return [f"mel_{b}" for b in range(spec["n_mels"])]


def frame_rate(spec: dict) -> float:
    """Steps per second after pooling."""
    return spec["sample_rate"] / spec["hop_length"] / spec["pool"]


def extract(item: Item, spec: dict) -> np.ndarray:
    """Pooled log-mel [steps, n_mels] of one audio file (any rate, channel count or format)."""
    y = load_audio(item.path, spec["sample_rate"])
    mel = log_mel(y, spec["sample_rate"], spec["n_fft"], spec["hop_length"], spec["n_mels"])
    return pool_frames(mel, spec["pool"])
