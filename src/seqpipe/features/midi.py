"""MIDI features: notes, drum grids, piano rolls and fixed-size summary vectors.

Files are parsed with symusic (about 1 ms per MAESTRO file, against 0.25 s for pretty_midi).
Everything after `read_notes` is a pure function of a `Notes` value, so it can be tested
without files. The per-note loops run compiled (`midi_kernels`, numba) with numpy's arithmetic,
so the results are bit for bit those of the plain numpy formulation. A file that cannot be
parsed, holds no notes, or would need an absurd amount of memory (a note at tick 2**30) raises
`MidiReadError` with the path or the reason, so the feature stage can skip it and list it in
its report.

Conventions: times in seconds; velocities scaled to [0, 1] by /127; the drum grid has one row
per 16th note (`steps_per_beat` steps per quarter note) at the dataset's `bpm`; sustain pedal
is ignored (notes sound from note-on to note-off).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import symusic

from seqpipe.features import midi_kernels as kernels

MAX_SECONDS = 3600.0
"""Longest piece the grid and roll builders accept; beyond it they raise MidiReadError."""


class MidiReadError(ValueError):
    """A MIDI file could not be parsed, holds no usable notes, or is implausibly long."""


@dataclass(frozen=True, eq=False)
class Notes:
    """All notes of a file, sorted by (start, pitch); one array entry per note."""

    start: np.ndarray  # float64 seconds
    end: np.ndarray  # float64 seconds
    pitch: np.ndarray  # int16, 0..127
    velocity: np.ndarray  # int16, 1..127
    is_drum: np.ndarray  # bool, the note's track is a drum track (MIDI channel 10)

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def select(self, mask: np.ndarray) -> Notes:
        """The notes where `mask` is true, order kept."""
        m = mask
        return Notes(self.start[m], self.end[m], self.pitch[m], self.velocity[m], self.is_drum[m])


DRUM_CLASSES: tuple[str, ...] = (
    "kick", "snare", "hh_closed", "hh_open", "tom_low", "tom_mid", "tom_high", "crash", "ride",
)
"""The 9 drum classes of the Groove MIDI paper (Gillick et al. 2019), in grid column order."""

_CLASS_PITCHES: dict[str, tuple[int, ...]] = {
    # The Groove MIDI paper's table (Gillick et al. 2019, Table 2): the 22 Roland TD-11 pitches.
    "kick": (36,),
    "snare": (38, 40, 37),  # head, rim, cross-stick
    "hh_closed": (42, 22, 44),  # bow, edge, pedal
    "hh_open": (46, 26),  # bow, edge
    "tom_low": (43, 58),  # tom 3 (floor) head, rim
    "tom_mid": (45, 47),  # tom 2 head, rim
    "tom_high": (48, 50),  # tom 1 head, rim
    "crash": (49, 55, 57, 52),  # crash 1 bow, edge; crash 2 bow, edge
    "ride": (51, 59, 53),  # bow, edge, bell
}
_GM_EXTRAS: dict[int, str] = {35: "kick", 41: "tom_low"}
"""General MIDI drums the TD-11 never sends: acoustic bass drum and low floor tom."""

DRUM_PITCH_TO_CLASS: dict[int, int] = {
    pitch: DRUM_CLASSES.index(name) for name, pitches in _CLASS_PITCHES.items() for pitch in pitches
} | {pitch: DRUM_CLASSES.index(name) for pitch, name in _GM_EXTRAS.items()}
"""General MIDI / Roland TD-11 drum pitch -> index into DRUM_CLASSES; other pitches are ignored."""

_PITCH_CLASS_LUT = np.full(128, -1, dtype=np.int64)
_PITCH_CLASS_LUT[list(DRUM_PITCH_TO_CLASS)] = list(DRUM_PITCH_TO_CLASS.values())
_PITCH_CLASS_LUT.setflags(write=False)

DYNAMICS_NAMES: tuple[str, ...] = (
    "velocity_mean",  # 0: mean velocity / 127
    "velocity_std",  # 1: population std of velocity / 127
    "velocity_range",  # 2: (max - min) velocity / 127
    "velocity_median",  # 3: median velocity / 127
    "velocity_hist_0_31",  # 4: fraction of notes with velocity in [0, 32)
    "velocity_hist_32_63",  # 5: ... [32, 64)
    "velocity_hist_64_95",  # 6: ... [64, 96)
    "velocity_hist_96_127",  # 7: ... [96, 128)
    "note_length_mean",  # 8: seconds
    "note_length_std",  # 9: seconds
    "note_length_median",  # 10: seconds
    "ioi_mean",  # 11: mean interval between consecutive distinct onsets, seconds (0 if < 2 onsets)
    "ioi_std",  # 12: std of those intervals, seconds
    "accent_ratio",  # 13: fraction of notes with velocity > mean + 1 std (0 if std == 0)
    "note_density",  # 14: notes per second of duration (0 if duration == 0)
    "duration",  # 15: end of the last note, seconds
)
"""Meaning of each entry of `dynamics_features` (all notes, drums included)."""

_GROOVE_CLASSES: tuple[str, ...] = ("kick", "snare", "hh_closed")
GROOVE_NAMES: tuple[str, ...] = (
    "offset_abs_mean",  # 0: mean |micro-timing offset| of all mapped hits, in steps, [0, 0.5]
    "offset_abs_std",  # 1: std of |offset|: timing regularity
    "offset_mean",  # 2: mean signed offset (< 0 ahead of the grid, > 0 laid back)
    "offset_std",  # 3: std of the signed offset
    *(f"{c}_{stat}" for c in _GROOVE_CLASSES for stat in (
        "hits_per_bar",  # hits of the class per bar
        "velocity_mean",  # mean velocity / 127 (0 if the class never plays)
        "velocity_std",  # std of velocity / 127
        "syncopation",  # fraction of the class's hits that are not on a beat
    )),  # 4..15
    *(f"{c}_fraction" for c in DRUM_CLASSES),  # 16..24: share of all mapped hits per class
    "syncopation",  # 25: fraction of all hits not on a beat (step % steps_per_beat != 0)
    "hits_per_bar",  # 26: all mapped hits per bar
    "velocity_mean",  # 27: mean velocity / 127 of all mapped hits
    "velocity_std",  # 28: std of velocity / 127 of all mapped hits
    "grid_occupancy",  # 29: fraction of grid steps holding at least one hit
    "swing_offset",  # 30: mean signed offset of hits on the off-beat 8th (0 if none)
    "ghost_ratio",  # 31: fraction of hits with velocity < 32
)
"""Meaning of each entry of `groove_features` (mapped drum hits only; bars of `beats_per_bar`)."""


def _tempo_map(
    tempo_ticks: np.ndarray, mspq: np.ndarray, tpq: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pretty_midi's tempo map as (segment start ticks, segment start seconds, seconds per tick).

    As pretty_midi: 120 bpm until the first tempo event unless one sits at tick 0, a repeated tempo
    is ignored, and a segment's start time is the previous one's + its seconds per tick * its ticks.
    A tick's time is then `segment start time + seconds per tick * (tick - segment start)` (float64).
    """
    starts, scales = [0], [60.0 / (120.0 * tpq)]
    for tick, value in zip(tempo_ticks.tolist(), mspq.tolist(), strict=True):
        if value <= 0:
            continue
        scale = 60.0 / ((6e7 / value) * tpq)
        if tick == 0:
            starts, scales = [0], [scale]
        elif scale != scales[-1]:
            starts.append(tick)
            scales.append(scale)
    base = [0.0]
    for k in range(1, len(starts)):
        base.append(base[-1] + scales[k - 1] * float(starts[k] - starts[k - 1]))
    return np.array(starts, dtype=np.int64), np.array(base), np.array(scales)


def _seconds(ticks: np.ndarray, tempo_map: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Tick -> seconds in float64 with `_tempo_map`'s map and pretty_midi's arithmetic (bit for bit)."""
    starts, base, scales = tempo_map
    if starts.size == 1:
        return scales[0] * ticks.astype(np.float64)
    segment = np.searchsorted(starts, ticks, side="right") - 1
    return base[segment] + scales[segment] * (ticks - starts[segment])


def _pretty_midi_ends(key: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Note-off ticks as pretty_midi pairs them, from symusic's first-in-first-out pairs.

    pretty_midi ends every open note of a (track, channel, pitch) at the next note-off at a later
    tick; symusic pairs note-offs first in, first out. Both see the same note-offs, so a note's
    pretty_midi end is the first symusic end of its key strictly after its start. Notes must come
    sorted by start within each key (symusic's order); ticks must fit in 32 bits. Without an
    overlap of two notes of one key (the usual case) the ends are returned as they are.
    """
    order = np.argsort(key, kind="stable")  # radix sort on small ints: groups keys, keeps start order
    k, s, e = key[order], start[order], end[order]
    overlapped = np.flatnonzero((k[1:] == k[:-1]) & (e[:-1] > s[1:])) + 1
    if not overlapped.size:
        return end  # FIFO ends rise with the starts, so no overlap means nothing to re-pair
    k = k.astype(np.int64)
    composite = (k << 32) | e
    if np.any(composite[1:] < composite[:-1]):  # notes on one tick may come in either order
        composite = np.sort(composite, kind="stable")
    # Only a note that starts before the previous note of its key ends can end earlier than it does.
    at = np.searchsorted(composite, (k[overlapped] << 32) | s[overlapped], side="right")
    paired = end.copy()
    paired[order[overlapped]] = composite[at] & 0xFFFFFFFF
    return paired


def _notes_of_tracks(
    path: str | os.PathLike[str], tracks: list[tuple[dict[str, np.ndarray], bool]], tempo_map: tuple[np.ndarray, ...]
) -> Notes:
    """`read_notes` for any non-empty symusic tracks, with numpy (several tracks, or an unusual one)."""
    if len(tracks) == 1:
        ((arrays, drum),) = tracks
        on, pitch, velocity = arrays["time"].astype(np.int64), arrays["pitch"], arrays["velocity"]
        off, is_drum, key = on + arrays["duration"], np.full(on.size, drum), pitch.astype(np.int16)
    else:
        on = np.concatenate([a["time"] for a, _ in tracks]).astype(np.int64)
        off = on + np.concatenate([a["duration"] for a, _ in tracks])
        pitch = np.concatenate([a["pitch"] for a, _ in tracks])
        velocity = np.concatenate([a["velocity"] for a, _ in tracks])
        is_drum = np.concatenate([np.full(a["time"].size, drum) for a, drum in tracks])
        track = np.concatenate([np.full(a["time"].size, i, dtype=np.int32) for i, (a, _) in enumerate(tracks)])
        key = track * 128 + pitch
        key = key.astype(np.int16) if len(tracks) < 256 else key
    if on.min() < 0 or off.max() >= 2**32:
        raise MidiReadError(f"{path}: note ticks outside [0, 2**32); the file is corrupt")
    if any((a["time"][1:] < a["time"][:-1]).any() for a, _ in tracks):  # symusic sorts; never trust it blindly
        order = np.lexsort((on, key))
        on, off, pitch, velocity, is_drum, key = on[order], off[order], pitch[order], velocity[order], is_drum[order], key[order]
    keep = off > on  # symusic's zero-length pairs: pretty_midi drops them
    off = _pretty_midi_ends(key, on, off)
    if not keep.all():
        on, off, pitch, velocity, is_drum = on[keep], off[keep], pitch[keep], velocity[keep], is_drum[keep]
        if not on.size:
            raise MidiReadError(f"{path}: the file holds no notes of non-zero length")
    rank = (on << 7) | pitch
    if (rank[1:] < rank[:-1]).any():  # into (start, pitch) order: a merge of sorted runs
        order = np.argsort(rank, kind="stable")
        on, off, pitch, velocity, is_drum = on[order], off[order], pitch[order], velocity[order], is_drum[order]
    start, end = _seconds(on, tempo_map), _seconds(off, tempo_map)
    return Notes(start, end, pitch.astype(np.int16), velocity.astype(np.int16), is_drum)


def read_notes(path: str | os.PathLike[str]) -> Notes:
    """Parse a MIDI file into `Notes` as pretty_midi reads it; raise MidiReadError if unreadable or empty.

    symusic parses the file in ticks; note-offs are then re-paired as pretty_midi pairs them (a
    re-struck pitch ends at the first note-off after it) and ticks become float64 seconds with
    pretty_midi's tempo map, so a quantised take sits exactly on its grid. Zero-length notes
    (note-on and note-off on one tick) are dropped as pretty_midi drops them. A note-on that
    symusic leaves unpaired (never followed by a note-off of its own) is lost; see docs/features.md.
    A file of one usual track (a piano performance) takes one compiled pass
    (`midi_kernels.read_one_track`); any other goes through `_notes_of_tracks`, with the same results.
    """
    try:
        score = symusic.Score(os.fspath(path), ttype="tick")
        tempos = score.tempos.numpy()
        tracks = [(track.notes.numpy(), bool(track.is_drum)) for track in score.tracks]
        tpq = int(score.ticks_per_quarter)
    except Exception as exc:  # symusic raises RuntimeError/ValueError with a parser message
        raise MidiReadError(f"{path}: cannot parse MIDI ({type(exc).__name__}: {exc})") from exc
    tracks = [(arrays, drum) for arrays, drum in tracks if arrays["time"].size]
    if not tracks or tpq <= 0:
        raise MidiReadError(f"{path}: the file holds no notes")
    tempo_map = _tempo_map(tempos["time"], tempos["mspq"], tpq)
    if len(tracks) == 1:
        ((arrays, drum),) = tracks
        ok, *columns = kernels.read_one_track(
            arrays["time"], arrays["duration"], arrays["pitch"], arrays["velocity"], drum, *tempo_map
        )
        if ok and columns[0].size:
            return Notes(*columns)
    return _notes_of_tracks(path, tracks, tempo_map)


def _check_length(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise MidiReadError(
            f"notes reach {seconds:.1f} s, beyond max_seconds={max_seconds:g}; "
            "the file is probably corrupt (raise max_seconds if it is not)"
        )


def _drum_hits(
    notes: Notes, bpm: float, steps_per_beat: int, max_seconds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Mapped drum hits as (step, class, offset in steps, velocity / 127) and the grid length."""
    if not (math.isfinite(bpm) and bpm > 0) or steps_per_beat < 1:
        raise ValueError(
            f"need bpm > 0 and steps_per_beat >= 1, got bpm={bpm}, steps_per_beat={steps_per_beat}"
        )
    drums = notes.select(notes.is_drum) if notes.is_drum.any() else notes
    classes = _PITCH_CLASS_LUT[np.clip(drums.pitch, 0, 127)]
    mapped = classes >= 0
    if not mapped.any():
        raise MidiReadError("no drum hits on a mapped drum pitch (see DRUM_PITCH_TO_CLASS)")
    _check_length(float(drums.start.max()), max_seconds)
    step_seconds = 60.0 / bpm / steps_per_beat
    # Rounded to 1e-9 steps (sub-nanosecond): a quantised take's float64 tick times sit exactly
    # on the grid, so its micro-timing is exactly 0 instead of rounding noise of ~1e-16.
    position = np.round(drums.start[mapped] / step_seconds, 9)
    step = np.floor(position + 0.5).astype(np.int64)
    offset = np.clip(position - step, -0.5, 0.5 - 1e-6)  # [-0.5, 0.5), also in float32
    n_steps = int(np.floor(drums.start.max() / step_seconds + 0.5)) + 1
    return step, classes[mapped], offset, drums.velocity[mapped] / 127.0, n_steps


def drum_grid(
    notes: Notes, bpm: float, steps_per_beat: int = 4, max_seconds: float = MAX_SECONDS
) -> np.ndarray:
    """Drum grid float32 [n_steps, 27]: per step and class hit (0/1), velocity / 127, offset.

    Columns are hits(9) | velocities(9) | offsets(9) in DRUM_CLASSES order; the offset is
    (onset - step time) / step duration in [-0.5, 0.5). A hit belongs to its nearest step;
    of two hits of one class on one step the louder one is kept (the earlier one on a tie).
    n_steps is the step of the last drum onset + 1. Drum-track notes only, or all notes if
    no track is flagged as drums.
    """
    step, cls, offset, velocity, n_steps = _drum_hits(notes, bpm, steps_per_beat, max_seconds)
    n_classes = len(DRUM_CLASSES)
    cell = step * n_classes + cls
    order = np.lexsort((np.arange(cell.size), -velocity, cell))  # per cell: loudest, then earliest
    _, first = np.unique(cell[order], return_index=True)
    keep = order[first]
    grid = np.zeros((n_steps, 3 * n_classes), dtype=np.float32)
    grid[step[keep], cls[keep]] = 1.0
    grid[step[keep], n_classes + cls[keep]] = velocity[keep]
    grid[step[keep], 2 * n_classes + cls[keep]] = offset[keep]
    return grid


def piano_roll(notes: Notes, fps: float, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Piano roll float32 [n_frames, 128]: max velocity / 127 of the non-drum notes sounding.

    Frame i covers [i / fps, (i + 1) / fps); a note fills frames floor(start * fps) up to
    floor(end * fps) exclusive, and at least its onset frame. n_frames reaches the last note-off.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"need fps > 0, got {fps}")
    fps = float(fps)
    n_tonal, n_frames, too_long = kernels.roll_extent(
        notes.start, notes.end, notes.pitch, notes.is_drum, fps, float(max_seconds)
    )
    if n_tonal < 0:
        raise ValueError("notes need pitches in 0..127 and start times >= 0 for a piano roll")
    if n_tonal == 0:
        raise MidiReadError("no non-drum notes for a piano roll")
    if too_long:
        _check_length(float(notes.end[~notes.is_drum].max()), max_seconds)
    roll = np.empty((n_frames, 128), dtype=np.float32)  # fill_roll writes every cell, zeros included
    kernels.fill_roll(roll, notes.start, notes.end, notes.pitch, notes.velocity, notes.is_drum, fps)
    return roll


def pitch_distribution(notes: Notes) -> np.ndarray:
    """Share of non-drum notes per MIDI pitch, float32 [128] summing to 1."""
    shares, total, negative = kernels.pitch_shares(notes.pitch, notes.is_drum)
    if negative:
        raise ValueError("notes need pitches >= 0 for a pitch distribution")
    if total == 0:
        raise MidiReadError("no non-drum notes for a pitch distribution")
    return shares


def _std(x: np.ndarray) -> float:
    return float(x.std()) if x.size else 0.0


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else 0.0


def _velocity_histogram(velocity: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(counts of the velocities clipped to 0..127 in float64 [128], their mean, their population std).

    The variance is numpy's dot of the counts with the squared deviations (BLAS ddot, as `@` was
    before the kernels), so it rounds as it did; a compiled sum could round differently.
    """
    counts, mean, squares = kernels.velocity_histogram(velocity)
    return counts, mean, math.sqrt(max(np.dot(counts, squares) / velocity.size, 0.0))


def dynamics_features(notes: Notes) -> np.ndarray:
    """Velocity, note-length and timing statistics, float32 [16]; see DYNAMICS_NAMES.

    The velocity statistics come from one histogram of the 128 velocities, so they cost the
    same for any number of notes; the rest is one compiled pass (`midi_kernels.dynamics_kernel`).
    """
    n = len(notes)
    if n == 0:
        raise MidiReadError("no notes for dynamics features")
    counts, mean, std = _velocity_histogram(notes.velocity)
    return kernels.dynamics_kernel(counts, mean, std, notes.start, notes.end)


def groove_features(
    notes: Notes,
    bpm: float,
    steps_per_beat: int = 4,
    beats_per_bar: int = 4,
    max_seconds: float = MAX_SECONDS,
) -> np.ndarray:
    """Timing, per-drum and syncopation statistics of the mapped drum hits, float32 [32].

    See GROOVE_NAMES. Offsets are in steps (as in `drum_grid`); a hit is "on the beat" when
    its step is a multiple of `steps_per_beat`; bars are n_steps / (steps_per_beat * beats_per_bar).
    """
    step, cls, offset, velocity, n_steps = _drum_hits(notes, bpm, steps_per_beat, max_seconds)
    n_bars = n_steps / (steps_per_beat * beats_per_bar)
    off_beat = step % steps_per_beat != 0
    values: list[float] = [_mean(np.abs(offset)), _std(np.abs(offset)), _mean(offset), _std(offset)]
    for name in _GROOVE_CLASSES:
        mine = cls == DRUM_CLASSES.index(name)
        values += [
            mine.sum() / n_bars, _mean(velocity[mine]), _std(velocity[mine]), _mean(off_beat[mine]),
        ]
    values += list(np.bincount(cls, minlength=len(DRUM_CLASSES)) / cls.size)
    swing = (step % steps_per_beat == steps_per_beat // 2) & (steps_per_beat % 2 == 0)
    values += [
        _mean(off_beat), cls.size / n_bars, _mean(velocity), _std(velocity),
        np.unique(step).size / n_steps, _mean(offset[swing]), _mean(velocity * 127.0 < 32),
    ]
    return np.asarray(values, dtype=np.float32)
