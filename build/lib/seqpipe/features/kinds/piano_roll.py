"""Piano roll: velocity/127 of the sounding notes for each of 128 pitches, `fps` frames per second."""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.midi import piano_roll, read_notes


def feature_names(spec: dict) -> list[str]:
    """One column per MIDI pitch."""
    return [f"pitch_{p}" for p in range(128)]


def frame_rate(spec: dict) -> float:
    """Frames per second."""
    return float(spec["fps"])


def extract(item: Item, spec: dict) -> np.ndarray:
    """Piano roll [frames, 128] of one performance."""
    return piano_roll(read_notes(item.path), spec["fps"])
