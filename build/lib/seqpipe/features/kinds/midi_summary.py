"""MIDI summary vector (seed 004): 128-bin pitch distribution followed by the 16 dynamics features.

One step per item ([1, 144]): a static feature vector in the [N, T, D] layout, with T = 1.
"""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.midi import DYNAMICS_NAMES, dynamics_features, pitch_distribution, read_notes


def feature_names(spec: dict) -> list[str]:
    """pitch_0 ... pitch_127, then the dynamics names."""
    return [f"pitch_{p}" for p in range(128)] + list(DYNAMICS_NAMES)


def frame_rate(spec: dict) -> float:
    """One vector per item: no time axis to speak of."""
    return 0.0


def extract(item: Item, spec: dict) -> np.ndarray:
    """[1, 144] summary of one performance."""
    notes = read_notes(item.path)
    return np.concatenate([pitch_distribution(notes), dynamics_features(notes)])[None].astype(np.float32)
