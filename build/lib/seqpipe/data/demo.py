"""Offline demo data: small synthetic copies of Groove, MAESTRO and DEAM in their real layouts.

`generate(dataset, out_dir, n_items=..., seed=...)` writes real files (MIDI, MP3, CSV, JSON) laid out
exactly as the real archives extract, quirks included (Groove's empty `audio_filename`, MAESTRO's
`.midi` files and column-oriented JSON, DEAM's header spaces, extra columns, 48 kHz and mono clips),
so every later stage reads demo and real data through the same code. The labels are generated
from the musical content, so models can learn them:

- groove: 5 styles, each with its own kick/snare/hi-hat (or ride) pattern, humanised per take;
- maestro: 4 composers, each with its own keys, scale, texture, register, density and dynamics;
- deam: valence from mode and timbre brightness, arousal from tempo and loudness.

Same arguments give byte-identical files: every random draw comes from a
`numpy.random.default_rng` seeded from (seed, dataset, item index), never from global state.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqpipe.io import atomic_path, write_text

log = logging.getLogger(__name__)

DATASETS = ("groove", "maestro", "deam", "lakh")
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}  # how Groove and MAESTRO spell splits

Note = tuple[int, float, float, int]  # (pitch, start s, end s, velocity)


# ----------------------------------------------------------------------------- shared helpers


def item_rng(seed: int, dataset: str, *keys: int) -> np.random.Generator:
    """The generator of one (seed, dataset[, item index]) cell, independent of every other cell."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(dataset.encode()), *keys]))


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """CSV text with `\\n` line ends and minimal quoting (as the real metadata files)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _assign_splits(rng: np.random.Generator, classes: Sequence[str], fractions: Sequence[float]) -> list[str]:
    """Split per item (train/val/test) at random in `fractions`; a class with >= 3 items is in every split."""
    splits = [""] * len(classes)
    for cls in sorted(set(classes)):
        members = [i for i, c in enumerate(classes) if c == cls]
        rng.shuffle(members)
        forced = ["train", "val", "test"] if len(members) >= 3 else []
        for i, split in zip(members, forced):
            splits[i] = split
        for i in members[len(forced) :]:
            splits[i] = str(rng.choice(["train", "val", "test"], p=list(fractions)))
    return splits


def _balanced(rng: np.random.Generator, values: Sequence[str], n: int) -> list[str]:
    """`n` values cycling through `values` (balanced classes), shuffled."""
    out = [values[i % len(values)] for i in range(n)]
    rng.shuffle(out)
    return out


def _write_midi(
    path: Path,
    notes: Sequence[Note],
    *,
    tempo: float,
    resolution: int,
    is_drum: bool,
    pedal: Sequence[tuple[float, int]] = (),
) -> None:
    """Write one single-instrument MIDI file atomically (program 0)."""
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
    with atomic_path(path) as tmp:
        pm.write(str(tmp))


def _velocity(rng: np.random.Generator, mean: float, sd: float, lo: int = 1, hi: int = 127) -> int:
    """One humanised MIDI velocity."""
    return int(np.clip(round(rng.normal(mean, sd)), lo, hi))


# ----------------------------------------------------------------------------- groove

DRUM_PITCH = {
    "kick": 36, "snare": 38, "side": 37, "hh_closed": 42, "hh_pedal": 44, "hh_open": 46,
    "ride": 51, "crash": 49, "tom_high": 50, "tom_mid": 48, "tom_low": 45,
}  # fmt: skip


@dataclass(frozen=True)
class DrumStyle:
    """A primary style: a one-bar pattern per drum (16 steps, digit = loudness 0-9, '.' = rest)."""

    tempo: tuple[int, int]  # bpm range
    kicks: tuple[str, ...]  # kick variants, one per secondary style (groove1, groove2, ...)
    lines: tuple[tuple[str, str], ...]  # (drum, pattern) for the other drums
    swing: float = 0.0  # delay of the off-beat 8th notes, in 16th steps


GROOVE_STYLES = {
    "rock": DrumStyle((100, 140), ("9.......9.......", "9.......9.7.....", "9.....7.9......."),
                      (("snare", "....9.......9..."), ("hh_closed", "8.5.8.5.8.5.8..."), ("hh_open", "..............7."))),
    "funk": DrumStyle((88, 116), ("9..7......8..7..", "9.7.......9..7..", "9..7..7...9....."),
                      (("snare", "....9..3.3..9..3"), ("hh_closed", "7464746474647464"))),
    "jazz": DrumStyle((96, 140), ("3...3...3...3...", "3...3...3..63...", "3.......3......."),
                      (("ride", "8...8..68...8..6"), ("hh_pedal", "....7.......7..."), ("snare", "......4.....5..."))),
    "latin": DrumStyle((90, 130), ("8..68..68..68..6", "8..6....8..6....", "8..68...8..68..."),
                       (("side", "6..6..6...6..6.."), ("hh_closed", "5.5.5.5.5.5.5.5."))),
    "hiphop": DrumStyle((80, 100), ("9......79.9.....", "9.9....7..9.....", "9......9.99...7."),
                        (("snare", "....9.......9..."), ("hh_closed", "6.4.6.4.6.4.6.4.")), swing=0.35),
}  # fmt: skip
GROOVE_BARS = 8
GROOVE_DRUMMERS = 10
GROOVE_SESSIONS = ("session1", "session2", "session3", "eval_session")
GROOVE_FILL_P = 0.15
GROOVE_DROP_P = 0.08
GROOVE_EXTRA_PER_BAR = 1.2  # Poisson mean of extra (ghost) hits per bar, ~10% of the hits


def _hit(rng: np.random.Generator, drum: str, step: int, level: int, step_s: float, swing: float, push: float) -> Note:
    """One humanised drum hit on 16th step `step` at loudness `level` (0-9)."""
    late = swing * step_s if step % 4 == 2 else 0.0  # swung 8ths: the off-beat 8th comes late
    start = max(0.0, step * step_s + late + push + rng.normal(0.0, 0.006))
    return DRUM_PITCH[drum], start, start + 0.09, _velocity(rng, 20 + 11 * level, 7)


def _fill(rng: np.random.Generator, bar: int, step_s: float) -> list[Note]:
    """A two-beat tom/snare fill in the second half of `bar`."""
    drums = ("snare", "snare", "tom_high", "tom_high", "tom_mid", "tom_mid", "tom_low", "tom_low")
    steps = [bar * 16 + j for j in range(8, 16) if rng.random() > 0.1]
    return [_hit(rng, drums[(s % 16) - 8], s, 7, step_s, 0.0, 0.0) for s in steps]


def groove_notes(rng: np.random.Generator, style: str, variant: int, bpm: int, fill: bool) -> list[Note]:
    """The drum hits of one 8-bar take in `style` (kick `variant`), humanised; fills end bars 4 and 8."""
    spec = GROOVE_STYLES[style]
    step_s = 60.0 / bpm / 4
    lines = (("kick", spec.kicks[variant % len(spec.kicks)]), *spec.lines)
    push = {drum: rng.normal(0.0, 0.004) for drum, _ in lines}
    loudness = rng.normal(0.0, 0.5)
    notes: list[Note] = []
    for bar in range(GROOVE_BARS):
        fill_bar = fill and bar in (3, 7)
        for drum, line in lines:
            for j, cell in enumerate(line):
                if cell == "." or (fill_bar and j >= 8) or rng.random() < GROOVE_DROP_P:
                    continue
                level = int(np.clip(round(int(cell) + loudness), 1, 9))
                notes.append(_hit(rng, drum, bar * 16 + j, level, step_s, spec.swing, push[drum]))
        for _ in range(rng.poisson(GROOVE_EXTRA_PER_BAR)):
            drum = lines[int(rng.integers(len(lines)))][0]
            step, level = bar * 16 + int(rng.integers(16)), int(rng.integers(2, 5))
            notes.append(_hit(rng, drum, step, level, step_s, spec.swing, push[drum]))
        if fill_bar:
            notes.extend(_fill(rng, bar, step_s))
        if (bar == 0 and rng.random() < 0.5) or (fill and bar == 4):
            notes.append(_hit(rng, "crash", bar * 16, 8, step_s, 0.0, 0.0))
    return notes


def _generate_groove(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """Groove layout: `groove/info.csv` and `groove/drummerN/<session>/<n>_<style>_<bpm>_<beat_type>_4-4.mid`."""
    from seqpipe.datasets import groove

    root = out_dir / groove.FOLDER
    plan = item_rng(seed, "groove")
    styles = _balanced(plan, list(GROOVE_STYLES), n_items)
    splits = _assign_splits(plan, styles, (0.8, 0.1, 0.1))
    drummers = plan.integers(1, GROOVE_DRUMMERS + 1, size=n_items)
    sessions = plan.integers(0, len(GROOVE_SESSIONS), size=n_items)
    fills = plan.random(n_items) < GROOVE_FILL_P
    counters: dict[tuple[int, int], int] = {}
    rows = []
    for i in range(n_items):
        rng = item_rng(seed, "groove", i)
        spec = GROOVE_STYLES[styles[i]]
        variant = int(rng.integers(len(spec.kicks)))
        bpm = int(rng.integers(spec.tempo[0], spec.tempo[1] + 1))
        beat_type = "fill" if fills[i] else "beat"
        key = (int(drummers[i]), int(sessions[i]))
        counters[key] = number = counters.get(key, 0) + 1
        drummer = f"drummer{key[0]}"
        session = f"{drummer}/{GROOVE_SESSIONS[key[1]]}"
        style = f"{styles[i]}/groove{variant + 1}"
        midi_filename = f"{session}/{number}_{style.replace('/', '-')}_{bpm}_{beat_type}_4-4.mid"
        _write_midi(
            root / midi_filename,
            groove_notes(rng, styles[i], variant, bpm, bool(fills[i])),
            tempo=bpm,
            resolution=480,
            is_drum=True,
        )
        duration = GROOVE_BARS * 4 * 60.0 / bpm
        row = [
            drummer,
            session,
            f"{session}/{number}",
            style,
            bpm,
            beat_type,
            "4-4",
            midi_filename,
            "",
            duration,
            SPLIT_NAMES[splits[i]],
        ]
        rows.append(((key[0], GROOVE_SESSIONS[key[1]], number), row))
    rows.sort(key=lambda pair: pair[0])
    write_text(root / groove.INDEX_FILE, _csv_text(groove.COLUMNS, [row for _, row in rows]))
    return root


# ----------------------------------------------------------------------------- maestro

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor
WHOLE_TONE = (0, 2, 4, 6, 8, 10)
PENTATONIC = (0, 2, 4, 7, 9)
KEY_NAMES = ("C", "D-flat", "D", "E-flat", "E", "F", "F-sharp", "G", "A-flat", "A", "B-flat", "B")
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


def _pitches(root: int, scale: Sequence[int], lo: int, hi: int) -> np.ndarray:
    """All MIDI pitches of `scale` on `root` (pitch class) between lo and hi inclusive."""
    return np.array([p for p in range(lo, hi + 1) if (p - root) % 12 in scale])


def _nearest(pitches: np.ndarray, target: float) -> int:
    """Index of the pitch nearest to `target`."""
    return int(np.argmin(np.abs(pitches - target)))


def _move(rng: np.random.Generator, pitches: np.ndarray, current: float, moves: Sequence[int]) -> int:
    """Index of the pitch a random step in `moves` away from the one nearest `current`, kept in range."""
    return int(np.clip(_nearest(pitches, current) + rng.choice(moves), 0, len(pitches) - 1))


def _triad(root: int, scale: Sequence[int], degree: int, base: int) -> list[int]:
    """Triad on scale `degree` (0-based), its root the first such pitch at or above `base`."""
    tones = []
    for k in (0, 2, 4):
        d = degree + k
        tones.append(root + scale[d % len(scale)] + 12 * (d // len(scale)))
    shift = 12 * int(np.ceil((base - tones[0]) / 12))
    return [t + shift for t in tones]


def _walk(
    rng: np.random.Generator, pitches: np.ndarray, start: float, n: int, steps: Sequence[int], p: Sequence[float]
) -> list[int]:
    """A random walk of `n` pitches over `pitches`, moving by `steps` (probabilities `p`), kept in range."""
    idx = _nearest(pitches, start)
    out = []
    for _ in range(n):
        idx += int(rng.choice(steps, p=p))
        if idx < 0 or idx >= len(pitches):  # bounce off the ends of the range
            idx = int(np.clip(-idx if idx < 0 else 2 * (len(pitches) - 1) - idx, 0, len(pitches) - 1))
        out.append(int(pitches[idx]))
    return out


def _bach(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Two-voice counterpoint: steady 16ths in the right hand over a stepwise 8th-note bass."""
    scale = MINOR if minor else MAJOR
    notes = []
    rh = _walk(rng, _pitches(root, scale, 60, 84), 72, n_beats * 4, (-2, -1, 1, 2), (0.15, 0.35, 0.35, 0.15))
    for k, pitch in enumerate(rh):
        notes.append((pitch, k / 4, k / 4 + 0.22, _velocity(rng, 70 + 6 * (k % 4 == 0), 4)))
    lh = _walk(rng, _pitches(root, scale, 38, 58), 48, n_beats * 2, (-2, -1, 1, 2, 4), (0.2, 0.3, 0.3, 0.1, 0.1))
    for k, pitch in enumerate(lh):
        notes.append((pitch, k / 2, k / 2 + 0.45, _velocity(rng, 64, 4)))
    return notes


def _mozart(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Alberti bass in 8ths under a singing right-hand melody of 8ths and quarters, I-IV-V-I harmony."""
    scale = MINOR if minor else MAJOR
    progression = (0, 3, 4, 0, 0, 5, 3, 4)
    notes = []
    melody_pitches = _pitches(root, scale, 67, 88)
    current = 76.0
    for bar in range(n_beats // 4 + 1):
        low, third, fifth = _triad(root, scale, progression[bar % len(progression)], 48)
        for k, pitch in enumerate((low, fifth, third, fifth) * 2):
            notes.append((pitch, bar * 4 + k / 2, bar * 4 + k / 2 + 0.45, _velocity(rng, 52, 5)))
        beat = 0.0
        while beat < 4:
            length = float(rng.choice([0.5, 1.0, 0.25], p=[0.5, 0.35, 0.15]))
            chord_tone = rng.random() < 0.6 and beat in (0.0, 2.0)
            if chord_tone:
                target = third + 24 if rng.random() < 0.5 else fifth + 24
                idx = _nearest(melody_pitches, target)
            else:
                idx = _move(rng, melody_pitches, current, (-1, 1, -2, 2))
            current = float(melody_pitches[idx])
            start = bar * 4 + beat
            notes.append((int(current), start, start + 0.9 * length, _velocity(rng, 74, 7)))
            beat += length
    return notes


def _chopin(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Wide left-hand arpeggios from a deep bass, chromatic right-hand melody, swelling dynamics."""
    scale = MINOR if minor else MAJOR
    progression = (0, 5, 3, 4, 0, 3, 4, 0)
    notes = []
    melody_pitches = _pitches(root, scale, 64, 92)
    current = 76.0
    for bar in range(n_beats // 3 + 1):  # 3/4 bars
        swell = 70 + 28 * np.sin(2 * np.pi * bar / 8)
        bass, third, fifth = _triad(root, scale, progression[bar % len(progression)], 29)
        arpeggio = (bass, fifth + 12, third + 24, fifth + 24, third + 24, fifth + 12)
        for k, pitch in enumerate(arpeggio):
            start = bar * 3 + k / 2
            notes.append((pitch, start, bar * 3 + 3, _velocity(rng, swell - 18, 8)))  # held as if pedalled
        beat = 0.0
        while beat < 3:
            length = float(rng.choice([1.0, 0.5, 1.5, 0.25], p=[0.35, 0.3, 0.2, 0.15]))
            idx = _move(rng, melody_pitches, current, (-2, -1, 1, 2, 3))
            current = float(melody_pitches[idx])
            pitch = int(current) + (int(rng.choice([-1, 1])) if rng.random() < 0.25 else 0)  # chromatic neighbour
            start = bar * 3 + beat
            notes.append((pitch, start, start + length * 0.95, _velocity(rng, swell + 8, 10)))
            beat += length
    return notes


def _debussy(rng: np.random.Generator, root: int, minor: bool, n_beats: int) -> list[Note]:
    """Soft parallel chords on whole-tone or pentatonic scales, long and sparse, over deep pedal notes."""
    scale = WHOLE_TONE if rng.random() < 0.5 else PENTATONIC
    chord_pitches = _pitches(root, scale, 62, 96)
    notes = []
    beat, idx = 0.0, len(chord_pitches) // 2
    while beat < n_beats:
        length = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        idx = int(np.clip(idx + rng.choice([-2, -1, 1, 2]), 0, len(chord_pitches) - 4))
        velocity = _velocity(rng, 38, 8, 12, 70)
        for offset in (0, 2, 3):  # a chord of stacked scale steps, moved in parallel
            notes.append((int(chord_pitches[idx + offset]), beat, beat + length * 1.1, velocity))
        if rng.random() < 0.35:
            pedal = root + 24 + 12 * int(rng.integers(0, 2))
            notes.append((pedal, beat, beat + 4.0, _velocity(rng, 30, 6, 10, 60)))
        beat += length
    return notes


TEXTURES: dict[str, Callable[[np.random.Generator, int, bool, int], list[Note]]] = {
    "bach": _bach, "mozart": _mozart, "chopin": _chopin, "debussy": _debussy,
}  # fmt: skip


def piano_notes(rng: np.random.Generator, composer: str, duration_s: float) -> tuple[list[Note], int, bool]:
    """The notes of one `duration_s` piece by `composer` (seconds, rubato applied), its key root and mode."""
    spec = COMPOSERS[composer]
    root = int(rng.integers(12))
    minor = bool(rng.random() < spec.minor_p)
    bpm = float(rng.uniform(*spec.tempo))
    n_beats = int(duration_s * bpm / 60 * 1.5) + 8
    wobble = 1.0 + spec.rubato * np.sin(np.arange(n_beats + 1) * 2 * np.pi / 8 + rng.uniform(0, 2 * np.pi))
    wobble *= 1.0 + rng.normal(0.0, spec.rubato / 3, size=n_beats + 1)
    beat_times = np.concatenate([[0.0], np.cumsum(60.0 / bpm / np.clip(wobble, 0.5, 1.5))])
    notes = []
    for pitch, start, end, velocity in TEXTURES[composer](rng, root, minor, n_beats):
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


def _generate_maestro(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """MAESTRO layout: `maestro-v3.0.0/{maestro-v3.0.0.csv, maestro-v3.0.0.json, <year>/*.midi}`."""
    from seqpipe.datasets import maestro

    root = out_dir / maestro.FOLDER
    plan = item_rng(seed, "maestro")
    composers = _balanced(plan, list(COMPOSERS), n_items)
    splits = _assign_splits(plan, composers, (0.7, 0.15, 0.15))
    years = plan.choice(MAESTRO_YEARS, size=n_items)
    tracks: dict[int, int] = {}
    records = []
    for i in range(n_items):
        rng = item_rng(seed, "maestro", i)
        spec = COMPOSERS[composers[i]]
        length = float(rng.uniform(30.0, 50.0))
        notes, key_root, minor = piano_notes(rng, composers[i], length)
        year = int(years[i])
        tracks[year] = track = tracks.get(year, 0) + 1
        midi_filename = _maestro_filename(year, 1 + track // 5, 1 + track % 3, track)
        pedal = [(t, v) for t0 in np.arange(0.0, length, 2.0) for t, v in ((t0 + 0.02, 127), (t0 + 1.95, 0))]
        _write_midi(
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
        root / maestro.CSV_FILE, _csv_text(maestro.COLUMNS, [[rec[c] for c in maestro.COLUMNS] for rec in records])
    )
    return root


# ----------------------------------------------------------------------------- deam

DEAM_RATE = 44_100
# libsndfile's LAME encoder at VBR level 0.9 (~50 kbit/s): ~30% faster than its default, clean below 11 kHz
MP3_OPTIONS = {"bitrate_mode": "VARIABLE", "compression_level": 0.9}
DEAM_TABLE = 2048  # wavetable length (power of two)
STATIC_HEADER_1 = "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
STATIC_HEADER_2 = ("song_id, valence_mean, valence_std, valence_max_mean, valence_max_std, valence_min_mean, "
                   "valence_min_std, arousal_mean, arousal_std, arousal_max_ mean, arousal_max_std, arousal_min_mean, "
                   "arousal_min_std")  # fmt: skip
MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4))
MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4))
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class SongFactors:
    """The generating factors of one DEAM demo song, and the static labels derived from them."""

    major: bool
    brightness: float  # 0 (dull) .. 1 (bright)
    tempo: float  # bpm, 60-160
    loudness: float  # 0 (quiet) .. 1 (loud)
    root: int  # pitch class
    valence_mean: float
    valence_std: float
    arousal_mean: float
    arousal_std: float


def song_factors(rng: np.random.Generator) -> SongFactors:
    """Draw one song's factors; valence from mode and brightness, arousal from tempo and loudness (1-9 scale)."""
    major = bool(rng.random() < 0.5)
    brightness, tempo, loudness = float(rng.random()), float(rng.uniform(60, 160)), float(rng.random())
    valence = 5.0 + 0.8 * (1 if major else -1) + 2.0 * (2 * brightness - 1) + rng.normal(0, 0.25)
    arousal = 5.0 + 1.7 * (2 * (tempo - 60) / 100 - 1) + 1.6 * (2 * loudness - 1) + rng.normal(0, 0.25)
    return SongFactors(
        major=major, brightness=brightness, tempo=tempo, loudness=loudness, root=int(rng.integers(12)),
        valence_mean=round(float(np.clip(valence, 1.2, 8.8)), 2), valence_std=round(float(rng.uniform(0.5, 1.5)), 2),
        arousal_mean=round(float(np.clip(arousal, 1.2, 8.8)), 2), arousal_std=round(float(rng.uniform(0.5, 1.5)), 2),
    )  # fmt: skip


def _wavetable(brightness: float) -> np.ndarray:
    """One period of a harmonic tone; brighter means slower harmonic roll-off."""
    phase = np.arange(DEAM_TABLE) / DEAM_TABLE
    slope = 2.6 - 1.9 * brightness
    table = sum(k**-slope * np.sin(2 * np.pi * k * phase) for k in range(1, 13))
    return (table / np.max(np.abs(table))).astype(np.float32)


def _add_tone(
    out: np.ndarray, table: np.ndarray, envelope: np.ndarray, start: int, pitch: int, amp: float, rate: int
) -> None:
    """Add one decaying wavetable tone at sample `start` into `out` (in place)."""
    length = min(len(envelope), len(out) - start)
    if length <= 0:
        return
    increment = 440.0 * 2 ** ((pitch - 69) / 12) * DEAM_TABLE / rate
    index = (np.arange(length) * increment).astype(np.int64) & (DEAM_TABLE - 1)
    out[start : start + length] += amp * table[index] * envelope[:length]


def render_song(rng: np.random.Generator, f: SongFactors, duration_s: float, rate: int) -> np.ndarray:
    """Mono float32 audio of one song: chords, bass, melody and hi-hat on a tempo grid."""
    n = int(round(duration_s * rate))
    out = np.zeros(n, dtype=np.float32)
    table = _wavetable(f.brightness)
    scale = MAJOR if f.major else NATURAL_MINOR
    progression = (MAJOR_PROGRESSIONS if f.major else MINOR_PROGRESSIONS)[int(rng.integers(3))]
    beat = 60.0 / f.tempo
    decay = {
        tau: np.exp(-np.arange(int(min(4 * tau, 2.0) * rate)) / (tau * rate)).astype(np.float32)
        for tau in (0.2, 0.35, 0.8)
    }
    for env in decay.values():
        env[: int(0.004 * rate)] *= np.linspace(0, 1, int(0.004 * rate), dtype=np.float32)
    melody = _pitches(f.root, scale, 67, 86)
    current = len(melody) // 2
    for k in range(int(duration_s / beat) + 1):
        at = int(k * beat * rate)
        chord = _triad(f.root, scale, progression[(k // 4) % 4], 55)
        if k % 4 == 0:
            for pitch in chord:
                _add_tone(out, table, decay[0.8], at, pitch, 0.22, rate)
        _add_tone(out, table, decay[0.35], at, chord[0] - 12, 0.3, rate)
        for half in (0, 1):
            if rng.random() < 0.75:
                current = int(np.clip(current + rng.choice([-2, -1, 1, 2]), 0, len(melody) - 1))
                _add_tone(out, table, decay[0.2], at + int(half * beat * rate / 2), int(melody[current]), 0.3, rate)
    hat = (rng.standard_normal(int(0.05 * rate)) * np.exp(-np.arange(int(0.05 * rate)) / (0.012 * rate))).astype(
        np.float32
    )
    hat = np.diff(hat, prepend=np.float32(0))  # crude high-pass
    for k in range(int(2 * duration_s / beat) + 1):
        at = int(k * beat * rate / 2)
        length = min(len(hat), n - at)
        if length > 0:
            out[at : at + length] += 0.12 * hat[:length]
    out /= np.max(np.abs(out)) + 1e-9
    out *= np.float32(10 ** ((-20 + 17 * f.loudness) / 20))
    return out


def _dynamic_series(rng: np.random.Generator, mean_1_9: float, duration_s: float) -> np.ndarray:
    """Per-0.5 s annotations on [-1, 1] from 15 s to the end: the static value plus a slow drift."""
    from seqpipe.datasets import deam

    n = max(0, int(np.ceil((duration_s - deam.DYNAMIC_START_S) * deam.DYNAMIC_RATE_HZ - 1e-9)))
    drift = np.zeros(n)
    for k in range(1, n):
        drift[k] = 0.9 * drift[k - 1] + rng.normal(0, 0.03)
    return np.clip((mean_1_9 - 5.0) / 4.0 + drift + rng.normal(0, 0.01, size=n), -1.0, 1.0)


def _deam_ids(rng: np.random.Generator, n_items: int) -> list[int]:
    """Song ids from 2 upward with small gaps; the last ~5% above 2000 (the second static file)."""
    n_high = max(1, round(0.05 * n_items)) if n_items >= 2 else 0
    n_low = n_items - n_high
    if n_low > 1999 or n_high > 999:
        raise ValueError(f"deam demo: n_items={n_items} is too many; use at most 2000")
    gaps = rng.random(n_low) < 0.25 if n_low * 1.3 < 1999 else np.zeros(n_low, dtype=bool)
    low = 2 + np.arange(n_low) + np.cumsum(gaps) - gaps
    if n_low and low[-1] > 2000:  # too many gaps for this many songs: use consecutive ids
        low = 2 + np.arange(n_low)
    return [int(v) for v in low] + [2001 + k for k in range(n_high)]


def _fmt(value: float) -> str:
    """A label as DEAM writes it: up to 2 decimals, no trailing zeros (`3.1`, `0.94`, `3`)."""
    return f"{round(value, 2):g}"


def _static_rows(rng: np.random.Generator, song: int, f: SongFactors, wide: bool) -> list[str]:
    """One static-annotation row; `wide` adds the max/min columns of the second file."""
    if not wide:
        return [str(song), _fmt(f.valence_mean), _fmt(f.valence_std), _fmt(f.arousal_mean), _fmt(f.arousal_std)]
    cells = [str(song)]
    for mean, std in ((f.valence_mean, f.valence_std), (f.arousal_mean, f.arousal_std)):
        hi, lo = min(9.0, mean + rng.uniform(0.5, 1.5)), max(1.0, mean - rng.uniform(0.5, 1.5))
        cells += [_fmt(mean), _fmt(std), _fmt(hi), _fmt(rng.uniform(0.3, 1.0)), _fmt(lo), _fmt(rng.uniform(0.3, 1.0))]
    return cells


def _dynamic_text(series: dict[int, np.ndarray]) -> str:
    """A dynamic CSV: header up to the longest row, shorter rows padded with empty cells."""
    width = max((len(v) for v in series.values()), default=0)
    header = ["song_id"] + [f"sample_{15000 + 500 * k}ms" for k in range(width)]
    rows = [
        [str(song)] + [f"{x:.3f}" for x in values] + [""] * (width - len(values)) for song, values in series.items()
    ]
    return _csv_text(header, rows)


def _deam_song(job: tuple) -> tuple[int, list[str], np.ndarray, np.ndarray]:
    """Render and encode one DEAM clip (its own RNG: the bytes do not depend on the worker count)."""
    import soundfile as sf  # imported here: only DEAM needs audio

    from seqpipe.datasets import deam

    out_dir, seed, i, song, duration_s, is_48k, is_mono = job
    rng = item_rng(seed, "deam", i)
    f = song_factors(rng)
    length = duration_s * (1.5 if song > 2000 else 1.0)  # ids above 2000 are the longer "full songs"
    rate = 48_000 if is_48k else DEAM_RATE
    audio = render_song(rng, f, length, rate)
    noise = rng.standard_normal((len(audio), 2)).astype(np.float32) * np.float32(0.002)
    data = audio[:, None] + noise[:, :1] if is_mono else np.stack([audio, 0.85 * audio], axis=1) + noise
    with atomic_path(out_dir / deam.AUDIO_DIR / f"{song}.mp3") as tmp:
        sf.write(str(tmp), np.clip(data, -1.0, 1.0), rate, format="MP3", subtype="MPEG_LAYER_III", **MP3_OPTIONS)
    row = _static_rows(rng, song, f, wide=song > 2000)
    return song, row, _dynamic_series(rng, f.valence_mean, length), _dynamic_series(rng, f.arousal_mean, length)


def _generate_deam(out_dir: Path, n_items: int, seed: int, duration_s: float, workers: int = 1) -> Path:
    """DEAM layout: `MEMD_audio/<id>.mp3` and `annotations/annotations averaged per song/...` CSVs."""
    from seqpipe.datasets import deam

    plan = item_rng(seed, "deam")
    songs = _deam_ids(plan, n_items)
    order = plan.permutation(n_items)
    n_odd = max(1, round(0.025 * n_items)) if n_items >= 4 else 0
    n_mono = max(1, round(0.015 * n_items)) if n_items >= 4 else 0
    rate_48k, mono = set(order[:n_odd].tolist()), set(order[n_odd : n_odd + n_mono].tolist())
    static: tuple[list[list[str]], list[list[str]]] = ([], [])
    dynamic: dict[str, dict[int, np.ndarray]] = {"valence": {}, "arousal": {}}
    jobs = [(out_dir, seed, i, song, duration_s, i in rate_48k, i in mono) for i, song in enumerate(songs)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rendered = list(pool.map(_deam_song, jobs))
    else:
        rendered = [_deam_song(job) for job in jobs]
    for song, row, valence, arousal in rendered:  # in song order, whatever the workers' order
        static[song > 2000].append(row)
        dynamic["valence"][song] = valence
        dynamic["arousal"][song] = arousal
    for relative, header, rows in zip(deam.STATIC_FILES, (STATIC_HEADER_1, STATIC_HEADER_2), static):
        write_text(out_dir / relative, header + "\n" + "".join(",".join(row) + "\n" for row in rows))
    for dim, relative in deam.DYNAMIC_FILES.items():
        write_text(out_dir / relative, _dynamic_text(dynamic[dim]))
    return out_dir


def _generate_lakh(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """Lakh layout: `lmd_full/<first hex digit>/<md5 of the bytes>.mid`, a few files corrupt as in LMD."""
    import hashlib

    from seqpipe.datasets import lakh

    root = out_dir / lakh.FOLDER
    composers = list(COMPOSERS)
    for i in range(n_items):
        rng = item_rng(seed, "lakh", i)
        notes, _, _ = piano_notes(rng, composers[i % len(composers)], float(rng.uniform(20.0, 40.0)))
        scratch = out_dir / f".lakh-{i}.mid"
        _write_midi(scratch, notes, tempo=120.0, resolution=480, is_drum=False)
        data = scratch.read_bytes()
        scratch.unlink()
        if i % 25 == 24:  # "a few thousand files likely corrupt": cut every 25th file short
            data = data[: len(data) // 3]
        md5 = hashlib.md5(data).hexdigest()
        with atomic_path(root / md5[0] / f"{md5}.mid") as tmp:
            tmp.write_bytes(data)
    return root


# ----------------------------------------------------------------------------- entry points

GENERATORS: dict[str, Callable[..., Path]] = {
    "groove": _generate_groove, "maestro": _generate_maestro, "deam": _generate_deam, "lakh": _generate_lakh,
}  # fmt: skip


def _readme(dataset: str, n_items: int, seed: int, duration_s: float) -> str:
    """The README.txt written beside the demo data."""
    return (
        f"Synthetic demo data for the '{dataset}' dataset, generated offline by seqpipe (seqpipe.data.demo)\n"
        f"with seed {seed}, {n_items} items, duration_s {duration_s:g} (used by deam only).\n\n"
        "The files mirror the layout of the real archive so the pipeline reads them unchanged, but every\n"
        "file is synthetic: this is NOT the real dataset, and results on it say nothing about real data.\n"
        f"Regenerate (byte-identical): seqpipe demo --dataset {dataset} --out <dir> "
        f"--n-items {n_items} --seed {seed} --duration {duration_s:g}\n"
    )


def generate(dataset: str, out_dir: Path, *, n_items: int, seed: int, duration_s: float = 20.0, workers: int = 1) -> Path:
    """Write `n_items` synthetic items of `dataset` in its real layout under `out_dir`; return the dataset root.

    `duration_s` is the length of each DEAM clip (songs above id 2000 get 1.5x, as DEAM's full songs are
    longer; MIDI datasets have their own lengths: 8 bars per Groove take, 30-50 s per piece). Same arguments
    give byte-identical files. Existing files are overwritten, other files in `out_dir` are left alone.
    """
    from seqpipe.datasets import get_dataset

    if dataset not in GENERATORS:
        raise ValueError(f"demo: unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if n_items < 1:
        raise ValueError(f"demo: n_items must be at least 1, got {n_items}")
    if seed < 0:
        raise ValueError(f"demo: seed must be a non-negative integer, got {seed}")
    if not duration_s > 0:
        raise ValueError(f"demo: duration_s must be positive, got {duration_s}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"workers": workers} if dataset == "deam" else {}  # only audio encoding is slow enough to split
    root = GENERATORS[dataset](out_dir, n_items, seed, float(duration_s), **extra)
    write_text(out_dir / "README.txt", _readme(dataset, n_items, seed, float(duration_s)))
    found = get_dataset(dataset).find_root(out_dir)
    if found != root:
        raise RuntimeError(f"demo: wrote {dataset} into {root} but find_root({out_dir}) gives {found}; this is a bug")
    log.info("demo: wrote %d synthetic %s items (seed %d) to %s", n_items, dataset, seed, root)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    """`seqpipe demo --dataset NAME --out DIR --n-items N --seed S [--duration D] [--manifest FILE]`."""
    parser = argparse.ArgumentParser(prog="seqpipe demo", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--out", required=True, type=Path, help="folder to write into (created)")
    parser.add_argument("--n-items", required=True, type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per DEAM clip")
    parser.add_argument("--workers", type=int, default=1, help="processes for DEAM audio encoding")
    parser.add_argument("--manifest", type=Path, help="also write the raw-file manifest here (the demo rule's output)")
    args = parser.parse_args(argv)
    root = generate(args.dataset, args.out, n_items=args.n_items, seed=args.seed, duration_s=args.duration, workers=args.workers)
    if args.manifest is not None:
        from seqpipe.data.manifest import build_manifest, write_manifest

        write_manifest(build_manifest(args.dataset, root, "demo"), args.manifest)


if __name__ == "__main__":
    main()
