"""Folder demo: a plain folder of melodies with `emotion_labels.json`, as seed 004 lays out its own MIDI data.

Each melody's valence follows its mode and register (major and high: positive) and its arousal its
tempo and loudness (fast and loud: aroused), both on [-1, 1] with a little annotator noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqpipe.raw.demo.common import MAJOR, MINOR, Note, humanised_velocity, item_rng, scale_pitches, write_midi
from seqpipe.io import write_text

LABELS_FILE = "emotion_labels.json"


def melody(rng: np.random.Generator, major: bool, register: float, bpm: float, loudness: float, n_beats: int = 32) -> list[Note]:
    """A random-walk melody of 8th and quarter notes over a scale, with an accompanying bass note per bar."""
    root = int(rng.integers(12))
    pitches = scale_pitches(root, MAJOR if major else MINOR, 48 + int(24 * register), 72 + int(24 * register))
    beat_s, notes, beat, idx = 60.0 / bpm, [], 0.0, len(pitches) // 2
    while beat < n_beats:
        length = float(rng.choice([0.5, 1.0], p=[0.6, 0.4]))
        idx = int(np.clip(idx + rng.choice([-2, -1, 1, 2]), 0, len(pitches) - 1))
        notes.append((int(pitches[idx]), beat * beat_s, (beat + 0.9 * length) * beat_s, humanised_velocity(rng, 40 + 70 * loudness, 6)))
        beat += length
    for bar in range(n_beats // 4):
        notes.append((36 + root, bar * 4 * beat_s, (bar * 4 + 3.5) * beat_s, humanised_velocity(rng, 30 + 60 * loudness, 5)))
    return notes


def generate(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """`melody_<n>.mid` files and `emotion_labels.json` ({file: {valence, arousal}}) directly in `out_dir`."""
    labels = {}
    for i in range(n_items):
        rng = item_rng(seed, "folder", i)
        major, register = bool(rng.random() < 0.5), float(rng.random())
        bpm, loudness = float(rng.uniform(60, 160)), float(rng.random())
        name = f"melody_{i + 1:03d}.mid"
        write_midi(out_dir / name, melody(rng, major, register, bpm, loudness), tempo=bpm, resolution=480, is_drum=False)
        valence = 0.5 * (1 if major else -1) + 0.4 * (2 * register - 1) + rng.normal(0, 0.08)
        arousal = 0.5 * (2 * (bpm - 60) / 100 - 1) + 0.4 * (2 * loudness - 1) + rng.normal(0, 0.08)
        labels[name] = {"valence": round(float(np.clip(valence, -1, 1)), 3), "arousal": round(float(np.clip(arousal, -1, 1)), 3)}
    write_text(out_dir / LABELS_FILE, json.dumps(labels, indent=1) + "\n")
    return out_dir
