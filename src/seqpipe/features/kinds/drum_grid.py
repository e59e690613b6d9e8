"""Drum grid: 9 drum classes x (hit, velocity, micro-timing offset) per 16th note."""

from __future__ import annotations

import numpy as np

from seqpipe.datasets import Item
from seqpipe.features.midi import DRUM_CLASSES, drum_grid, read_notes


def feature_names(spec: dict) -> list[str]:
    """Column names of the grid: hits, then velocities, then offsets, per drum class."""
    return [f"{c}_{part}" for part in ("hit", "velocity", "offset") for c in DRUM_CLASSES]


def frame_rate(spec: dict) -> float:
    """Steps are tempo-relative (16th notes), so no fixed rate in Hz: 0 by convention."""
    return 0.0


def extract(item: Item, spec: dict) -> np.ndarray:
    """Grid [steps, 27] of one drum performance at its annotated tempo (else the file's first tempo: Lakh, folders)."""
    bpm = item.labels.get("bpm") or first_tempo(item.path)
    return drum_grid(read_notes(item.path), float(bpm), spec["steps_per_beat"])


def first_tempo(path) -> float:
    """The first tempo (quarter notes per minute) of a MIDI file, 120 when it sets none (the MIDI default)."""
    import symusic

    tempos = symusic.Score(str(path)).tempos
    return float(tempos[0].qpm) if len(tempos) else 120.0
