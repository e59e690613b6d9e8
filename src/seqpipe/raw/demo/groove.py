"""Groove MIDI demo: 5 drum styles, each with its own kick/snare/hi-hat (or ride) pattern, humanised per take.

Styles overlap as real playing does: 40% of the takes play their snare and cymbal lines from another
style (only the kick stays their own), and 8% are annotated with another style than the one played,
so a model separates the styles well but not perfectly. Splits are stratified by annotated style.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqpipe.raw.demo.common import SPLIT_NAMES, Note, assign_splits, balanced, csv_text, item_rng, humanised_velocity, write_midi
from seqpipe.io import write_text

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
# What keeps the style task off its ceiling, as in real playing and annotation: a take may play its
# snare and cymbal lines from another style (only its kick stays its own), and a few takes are
# annotated with another style than the one played.
GROOVE_BORROW_P = 0.4  # probability that a take's non-kick lines come from another style
GROOVE_MISLABEL_P = 0.08  # probability that a take's annotated style is another one


def _hit(rng: np.random.Generator, drum: str, step: int, level: int, step_s: float, swing: float, push: float) -> Note:
    """One humanised drum hit on 16th step `step` at loudness `level` (0-9)."""
    late = swing * step_s if step % 4 == 2 else 0.0  # swung 8ths: the off-beat 8th comes late
    start = max(0.0, step * step_s + late + push + rng.normal(0.0, 0.006))
    return DRUM_PITCH[drum], start, start + 0.09, humanised_velocity(rng, 20 + 11 * level, 7)


def _fill(rng: np.random.Generator, bar: int, step_s: float) -> list[Note]:
    """A two-beat tom/snare fill in the second half of `bar`."""
    drums = ("snare", "snare", "tom_high", "tom_high", "tom_mid", "tom_mid", "tom_low", "tom_low")
    steps = [bar * 16 + j for j in range(8, 16) if rng.random() > 0.1]
    return [_hit(rng, drums[(s % 16) - 8], s, 7, step_s, 0.0, 0.0) for s in steps]


def groove_notes(rng: np.random.Generator, style: str, variant: int, bpm: int, fill: bool) -> list[Note]:
    """The drum hits of one 8-bar take in `style` (kick `variant`), humanised; fills end bars 4 and 8."""
    spec = GROOVE_STYLES[style]
    step_s = 60.0 / bpm / 4
    others = [s for s in GROOVE_STYLES if s != style]
    lender = GROOVE_STYLES[others[int(rng.integers(len(others)))]] if rng.random() < GROOVE_BORROW_P else spec
    lines = (("kick", spec.kicks[variant % len(spec.kicks)]), *lender.lines)
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


def generate(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """Groove layout: `groove/info.csv` and `groove/drummerN/<session>/<n>_<style>_<bpm>_<beat_type>_4-4.mid`."""
    from seqpipe.datasets import groove

    root = out_dir / groove.FOLDER
    plan = item_rng(seed, "groove")
    styles = balanced(plan, list(GROOVE_STYLES), n_items)
    splits = assign_splits(plan, styles, (0.8, 0.1, 0.1))
    drummers = plan.integers(1, GROOVE_DRUMMERS + 1, size=n_items)
    sessions = plan.integers(0, len(GROOVE_SESSIONS), size=n_items)
    fills = plan.random(n_items) < GROOVE_FILL_P
    counters: dict[tuple[int, int], int] = {}
    rows = []
    for i in range(n_items):
        rng = item_rng(seed, "groove", i)
        played = styles[i]  # the annotated style; a few takes play another one
        if rng.random() < GROOVE_MISLABEL_P:
            played = [s for s in GROOVE_STYLES if s != styles[i]][int(rng.integers(len(GROOVE_STYLES) - 1))]
        spec = GROOVE_STYLES[played]
        variant = int(rng.integers(len(spec.kicks)))
        bpm = int(rng.integers(spec.tempo[0], spec.tempo[1] + 1))
        beat_type = "fill" if fills[i] else "beat"
        key = (int(drummers[i]), int(sessions[i]))
        counters[key] = number = counters.get(key, 0) + 1
        drummer = f"drummer{key[0]}"
        session = f"{drummer}/{GROOVE_SESSIONS[key[1]]}"
        style = f"{styles[i]}/groove{variant + 1}"
        midi_filename = f"{session}/{number}_{style.replace('/', '-')}_{bpm}_{beat_type}_4-4.mid"
        write_midi(
            root / midi_filename,
            groove_notes(rng, played, variant, bpm, bool(fills[i])),
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
    write_text(root / groove.INDEX_FILE, csv_text(groove.COLUMNS, [row for _, row in rows]))
    return root

