"""Groove summary vector (seed 004): the 32 groove statistics of a drum performance, [1, 32]."""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.midi import GROOVE_NAMES, groove_features, read_notes


def feature_names(spec: dict) -> list[str]:
    """The groove statistics' names."""
    return list(GROOVE_NAMES)


def frame_rate(spec: dict) -> float:
    """One vector per item."""
    return 0.0


def extract(item: Item, spec: dict) -> np.ndarray:
    """[1, 32] groove statistics at the item's annotated tempo."""
    notes = read_notes(item.path)
    return groove_features(notes, float(item.labels["bpm"]), spec["steps_per_beat"])[None].astype(np.float32)
