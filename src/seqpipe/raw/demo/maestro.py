"""MAESTRO demo: 4 composers, each with its own keys, scale, texture, register, density and dynamics.

One piece in five is written in another composer's texture (keys, tempo and rubato stay the composer's own),
so composers overlap as real ones do and the composer task stays off its ceiling.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqpipe.raw.demo.common import (
    MAJOR, MINOR, PENTATONIC, SPLIT_NAMES, WHOLE_TONE, Note, assign_splits, balanced, csv_text, item_rng, move, nearest,
    scale_pitches, triad, humanised_velocity, walk, write_midi,
)  # fmt: skip
from seqpipe.io import write_text

KEY_NAMES = ("C", "D-flat", "D", "E-flat", "E", "F", "F-sharp", "G", "A-flat", "A", "B-flat", "B")
MAESTRO_BORROW_P = 0.2  # probability that a piece is written in another composer's texture (keys and tempo stay)
MAESTRO_YEARS = (2004, 2006, 2008, 2009, 2011, 2013, 2014, 2015, 2017, 2018)


@dataclass(frozen=True)
class Composer:
    """How one demo composer writes: key preference, title forms, catalogue prefix, tempo and rubato."""

    name: str
    minor_p: float  # probability of a minor key
    forms: tuple[str, ...]
    catalogue: str
    tempo: tuple[float, float]  # bpm range
    rubato: float  # relative tempo wobble per beat


COMPOSERS = {
    "bach": Composer("Johann Sebastian Bach", 0.5, ("Prelude and Fugue", "Invention", "Partita"), "BWV", (84, 100), 0.01),
    "mozart": Composer("Wolfgang Amadeus Mozart", 0.15, ("Piano Sonata", "Rondo", "Variations"), "K.", (108, 132), 0.02),
    "chopin": Composer("Frédéric Chopin", 0.8, ("Nocturne", "Ballade", "Étude"), "Op.", (56, 76), 0.12),
    "debussy": Composer("Claude Debussy", 0.0, ("Prélude", "Arabesque", "Estampe"), "L.", (48, 66), 0.06),
}  # fmt: skip



def _bach(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Two-voice counterpoint: steady 16ths in the right hand over a stepwise 8th-note bass."""
    scale = MINOR if minor else MAJOR
    notes = []
    rh = walk(rng, scale_pitches(root, scale, 60, 84), 72, n_beats * 4, (-2, -1, 1, 2), (0.15, 0.35, 0.35, 0.15))
    for k, pitch in enumerate(rh):
        notes.append((pitch, k / 4, k / 4 + 0.22, humanised_velocity(rng, 70 + 6 * (k % 4 == 0), 4)))
    lh = walk(rng, scale_pitches(root, scale, 38, 58), 48, n_beats * 2, (-2, -1, 1, 2, 4), (0.2, 0.3, 0.3, 0.1, 0.1))
    for k, pitch in enumerate(lh):
        notes.append((pitch, k / 2, k / 2 + 0.45, humanised_velocity(rng, 64, 4)))
    return notes


def _mozart(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Alberti bass in 8ths under a singing right-hand melody of 8ths and quarters, I-IV-V-I harmony."""
    scale = MINOR if minor else MAJOR
    progression = (0, 3, 4, 0, 0, 5, 3, 4)
    notes = []
    melody_pitches = scale_pitches(root, scale, 67, 88)
    current = 76.0
    for bar in range(n_beats // 4 + 1):
        low, third, fifth = triad(root, scale, progression[bar % len(progression)], 48)
        for k, pitch in enumerate((low, fifth, third, fifth) * 2):
            notes.append((pitch, bar * 4 + k / 2, bar * 4 + k / 2 + 0.45, humanised_velocity(rng, 52, 5)))
        beat = 0.0
        while beat < 4:
            length = float(rng.choice([0.5, 1.0, 0.25], p=[0.5, 0.35, 0.15]))
            chord_tone = rng.random() < 0.6 and beat in (0.0, 2.0)
            if chord_tone:
                target = third + 24 if rng.random() < 0.5 else fifth + 24
                idx = nearest(melody_pitches, target)
            else:
                idx = move(rng, melody_pitches, current, (-1, 1, -2, 2))
            current = float(melody_pitches[idx])
            start = bar * 4 + beat
            notes.append((int(current), start, start + 0.9 * length, humanised_velocity(rng, 74, 7)))
            beat += length
    return notes


def _chopin(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Wide left-hand arpeggios from a deep bass, chromatic right-hand melody, swelling dynamics."""
    scale = MINOR if minor else MAJOR
    progression = (0, 5, 3, 4, 0, 3, 4, 0)
    notes = []
    melody_pitches = scale_pitches(root, scale, 64, 92)
    current = 76.0
    for bar in range(n_beats // 3 + 1):  # 3/4 bars
        swell = 70 + 28 * np.sin(2 * np.pi * bar / 8)
        bass, third, fifth = triad(root, scale, progression[bar % len(progression)], 29)
        arpeggio = (bass, fifth + 12, third + 24, fifth + 24, third + 24, fifth + 12)
        for k, pitch in enumerate(arpeggio):
            start = bar * 3 + k / 2
            notes.append((pitch, start, bar * 3 + 3, humanised_velocity(rng, swell - 18, 8)))  # held as if pedalled
        beat = 0.0
        while beat < 3:
            length = float(rng.choice([1.0, 0.5, 1.5, 0.25], p=[0.35, 0.3, 0.2, 0.15]))
            idx = move(rng, melody_pitches, current, (-2, -1, 1, 2, 3))
            current = float(melody_pitches[idx])
            pitch = int(current) + (int(rng.choice([-1, 1])) if rng.random() < 0.25 else 0)  # chromatic neighbour
            start = bar * 3 + beat
            notes.append((pitch, start, start + length * 0.95, humanised_velocity(rng, swell + 8, 10)))
            beat += length
    return notes


def _debussy(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Soft parallel chords on whole-tone or pentatonic scales, long and sparse, over deep pedal notes."""
    scale = WHOLE_TONE if rng.random() < 0.5 else PENTATONIC
    chord_pitches = scale_pitches(root, scale, 62, 96)
    notes = []
    beat, idx = 0.0, len(chord_pitches) // 2
    while beat < n_beats:
        length = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        idx = int(np.clip(idx + rng.choice([-2, -1, 1, 2]), 0, len(chord_pitches) - 4))
        velocity = humanised_velocity(rng, 38, 8, 12, 70)
        for offset in (0, 2, 3):  # a chord of stacked scale steps, moved in parallel
            notes.append((int(chord_pitches[idx + offset]), beat, beat + length * 1.1, velocity))
        if rng.random() < 0.35:
            pedal = root + 24 + 12 * int(rng.integers(0, 2))
            notes.append((pedal, beat, beat + 4.0, humanised_velocity(rng, 30, 6, 10, 60)))
        beat += length
    return notes


TEXTURES: dict[str, Callable[[np.random.Generator, int, bool, int], list[Note]]] = {
    "bach": _bach, "mozart": _mozart, "chopin": _chopin, "debussy": _debussy,
}  # fmt: skip


def piano_notes(
    rng: np.random.Generator, composer: str, duration_s: float, texture: str | None = None
) -> tuple[list[Note], int, bool]:
    """The notes of one `duration_s` piece by `composer` (seconds, rubato applied), its key root and mode.

    `texture` (default: the composer's own) writes the piece in another composer's texture, keeping the
    composer's keys, tempo and rubato.
    """
    spec = COMPOSERS[composer]
    root = int(rng.integers(12))
    minor = bool(rng.random() < spec.minor_p)
    bpm = float(rng.uniform(*spec.tempo))
    n_beats = int(duration_s * bpm / 60 * 1.5) + 8
    wobble = 1.0 + spec.rubato * np.sin(np.arange(n_beats + 1) * 2 * np.pi / 8 + rng.uniform(0, 2 * np.pi))
    wobble *= 1.0 + rng.normal(0.0, spec.rubato / 3, size=n_beats + 1)
    beat_times = np.concatenate([[0.0], np.cumsum(60.0 / bpm / np.clip(wobble, 0.5, 1.5))])
    notes = []
    for pitch, start, end, velocity in TEXTURES[texture or composer](rng, root, minor, n_beats):
        t0, t1 = np.interp([start, end], np.arange(n_beats + 2), beat_times, right=beat_times[-1])
        if t0 < duration_s and 21 <= pitch <= 108:
            notes.append((int(pitch), float(t0), float(min(max(t1, t0 + 0.05), duration_s)), int(velocity)))
    return notes, root, minor


def _maestro_filename(year: int, session: int, take: int, track: int) -> str:
    """A MAESTRO-like `<year>/MIDI-Unprocessed_...wav.midi` file name."""
    return (
        f"{year}/MIDI-Unprocessed_{session:02d}_R{take}_{year}_01-05_ORIG_MID--AUDIO_{session:02d}_R{take}_{year}"
        f"_{track:02d}_Track{track:02d}_wav.midi"
    )


def generate(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """MAESTRO layout: `maestro-v3.0.0/{maestro-v3.0.0.csv, maestro-v3.0.0.json, <year>/*.midi}`."""
    from seqpipe.datasets import maestro

    root = out_dir / maestro.FOLDER
    plan = item_rng(seed, "maestro")
    composers = balanced(plan, list(COMPOSERS), n_items)
    splits = assign_splits(plan, composers, (0.7, 0.15, 0.15))
    years = plan.choice(MAESTRO_YEARS, size=n_items)
    tracks: dict[int, int] = {}
    records = []
    for i in range(n_items):
        rng = item_rng(seed, "maestro", i)
        spec = COMPOSERS[composers[i]]
        length = float(rng.uniform(30.0, 50.0))
        texture = composers[i]
        if rng.random() < MAESTRO_BORROW_P:  # a piece in another composer's manner
            others = [c for c in COMPOSERS if c != composers[i]]
            texture = others[int(rng.integers(len(others)))]
        notes, key_root, minor = piano_notes(rng, composers[i], length, texture)
        year = int(years[i])
        tracks[year] = track = tracks.get(year, 0) + 1
        midi_filename = _maestro_filename(year, 1 + track // 5, 1 + track % 3, track)
        pedal = [(t, v) for t0 in np.arange(0.0, length, 2.0) for t, v in ((t0 + 0.02, 127), (t0 + 1.95, 0))]
        write_midi(
            root / midi_filename,
            notes,
            tempo=120.0,
            resolution=384,
            is_drum=False,
            pedal=pedal if composers[i] in ("chopin", "debussy") else (),
        )
        key = f"{KEY_NAMES[key_root]} {'Minor' if minor else 'Major'}"
        title = f"{spec.forms[i % len(spec.forms)]} in {key}, {spec.catalogue} {100 + i}"
        records.append({
            "canonical_composer": spec.name, "canonical_title": title, "split": SPLIT_NAMES[splits[i]], "year": year,
            "midi_filename": midi_filename, "audio_filename": midi_filename[: -len(".midi")] + ".wav",
            "duration": max(end for _, _, end, _ in notes),
        })  # fmt: skip
    write_text(
        root / maestro.JSON_FILE,
        json.dumps({col: {str(i): rec[col] for i, rec in enumerate(records)} for col in maestro.COLUMNS}) + "\n",
    )
    write_text(
        root / maestro.CSV_FILE, csv_text(maestro.COLUMNS, [[rec[c] for c in maestro.COLUMNS] for rec in records])
    )
    return root

