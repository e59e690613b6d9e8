"""Log-mel sequence: audio resampled to `sample_rate`, `n_mels` bands in dB, `pool` frames averaged."""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.audio import AudioReadError, load_audio, log_mel, pool_frames


def feature_names(spec: dict) -> list[str]:
    """One column per mel band."""
    return [f"mel_{b}" for b in range(spec["n_mels"])]


def frame_rate(spec: dict) -> float:
    """Steps per second after pooling."""
    return spec["sample_rate"] / spec["hop_length"] / spec["pool"]


def extract(item: Item, spec: dict) -> np.ndarray:
    """Pooled log-mel [steps, n_mels] of one audio file (any rate, channel count or format).

    A clip shorter than one pooled step (`pool` frames of `hop_length` samples) raises
    AudioReadError saying so, rather than giving zero steps.
    """
    sr, hop, pool = spec["sample_rate"], spec["hop_length"], spec["pool"]
    y = load_audio(item.path, sr)
    mel = log_mel(y, sr, spec["n_fft"], hop, spec["n_mels"])
    if len(mel) < pool:
        raise AudioReadError(
            f"{item.path}: the clip is {y.size / sr:.2f} s long, shorter than one pooled step "
            f"({pool * hop / sr:.2f} s: features.<set>.pool={pool} frames of {hop} samples); "
            "lower pool for clips this short"
        )
    return pool_frames(mel, pool)
