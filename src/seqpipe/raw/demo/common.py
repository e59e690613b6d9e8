"""Helpers every demo generator shares: per-item random generators, CSV text, splits, MIDI writing, scales.

Every random draw of the demo comes from `item_rng(seed, dataset, *keys)`, never from global state, so the
same arguments give byte-identical files whatever the order or the number of worker processes.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqpipe.io import atomic_path

SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}  # how Groove and MAESTRO spell splits

Note = tuple[int, float, float, int]  # (pitch, start s, end s, velocity)

def item_rng(seed: int, dataset: str, *keys: int) -> np.random.Generator:
    """The generator of one (seed, dataset[, item index]) cell, independent of every other cell."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(dataset.encode()), *keys]))


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """CSV text with `\\n` line ends and minimal quoting (as the real metadata files)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def stratified_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """(train, val, test) item counts of one class of `n` items: val and test rounded from their fractions,
    at least one each when n >= 3, the rest train."""
    total = float(sum(fractions))
    if n < 3:
        return n, 0, 0
    val = max(1, int(round(n * fractions[1] / total)))
    test = max(1, int(round(n * fractions[2] / total)))
    return n - val - test, val, test


def assign_splits(rng: np.random.Generator, classes: Sequence[str], fractions: Sequence[float]) -> list[str]:
    """Split items (each wholly in one split) stratified by class: every class gets `stratified_counts` of
    train/val/test items, drawn at random, so the splits keep the class proportions."""
    splits = [""] * len(classes)
    for cls in sorted(set(classes)):
        members = [i for i, c in enumerate(classes) if c == cls]
        rng.shuffle(members)
        n_train, n_val, _ = stratified_counts(len(members), fractions)
        for k, i in enumerate(members):
            splits[i] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return splits


def balanced(rng: np.random.Generator, values: Sequence[str], n: int) -> list[str]:
    """`n` values cycling through `values` (balanced classes), shuffled."""
    out = [values[i % len(values)] for i in range(n)]
    rng.shuffle(out)
    return out


def write_midi(
    path: Path,
    notes: Sequence[Note],
    *,
    tempo: float,
    resolution: int,
    is_drum: bool,
    pedal: Sequence[tuple[float, int]] = (),
    drums: Sequence[Note] = (),
) -> None:
    """Write a MIDI file atomically: one instrument (program 0), plus a drum track when `drums` are given."""
    import pretty_midi  # imported here: only the MIDI datasets need it

    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo), resolution=resolution)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    instrument = pretty_midi.Instrument(program=0, is_drum=is_drum, name="Drums" if is_drum else "Piano")
    for pitch, start, end, velocity in sorted(notes, key=lambda n: (n[1], n[0])):
        instrument.notes.append(
            pretty_midi.Note(velocity=int(velocity), pitch=int(pitch), start=float(start), end=float(end))
        )
    for time, value in pedal:
        instrument.control_changes.append(pretty_midi.ControlChange(number=64, value=int(value), time=float(time)))
    pm.instruments.append(instrument)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True, name="Drums")
        for pitch, start, end, velocity in sorted(drums, key=lambda n: (n[1], n[0])):
            kit.notes.append(pretty_midi.Note(velocity=int(velocity), pitch=int(pitch), start=float(start), end=float(end)))
        pm.instruments.append(kit)
    with atomic_path(path) as tmp:
        pm.write(str(tmp))


def humanised_velocity(rng: np.random.Generator, mean: float, sd: float, lo: int = 1, hi: int = 127) -> int:
    """One humanised MIDI velocity."""
    return int(np.clip(round(rng.normal(mean, sd)), lo, hi))


# ----------------------------------------------------------------------------- scales and pitch helpers

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor
WHOLE_TONE = (0, 2, 4, 6, 8, 10)
PENTATONIC = (0, 2, 4, 7, 9)


def scale_pitches(root: int, scale: Sequence[int], lo: int, hi: int) -> np.ndarray:
    """All MIDI pitches of `scale` on `root` (pitch class) between lo and hi inclusive."""
    return np.array([p for p in range(lo, hi + 1) if (p - root) % 12 in scale])


def nearest(pitches: np.ndarray, target: float) -> int:
    """Index of the pitch nearest to `target`."""
    return int(np.argmin(np.abs(pitches - target)))


def move(rng: np.random.Generator, pitches: np.ndarray, current: float, moves: Sequence[int]) -> int:
    """Index of the pitch a random step in `moves` away from the one nearest `current`, kept in range."""
    return int(np.clip(nearest(pitches, current) + rng.choice(moves), 0, len(pitches) - 1))


def triad(root: int, scale: Sequence[int], degree: int, base: int) -> list[int]:
    """Triad on scale `degree` (0-based), its root the first such pitch at or above `base`."""
    tones = []
    for k in (0, 2, 4):
        d = degree + k
        tones.append(root + scale[d % len(scale)] + 12 * (d // len(scale)))
    shift = 12 * int(np.ceil((base - tones[0]) / 12))
    return [t + shift for t in tones]


def walk(
    rng: np.random.Generator, pitches: np.ndarray, start: float, n: int, steps: Sequence[int], p: Sequence[float]
) -> list[int]:
    """A random walk of `n` pitches over `pitches`, moving by `steps` (probabilities `p`), kept in range."""
    idx = nearest(pitches, start)
    out = []
    for _ in range(n):
        idx += int(rng.choice(steps, p=p))
        if idx < 0 or idx >= len(pitches):  # bounce off the ends of the range
            idx = int(np.clip(-idx if idx < 0 else 2 * (len(pitches) - 1) - idx, 0, len(pitches) - 1))
        out.append(int(pitches[idx]))
    return out

