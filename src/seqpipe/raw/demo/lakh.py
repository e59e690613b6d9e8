"""Lakh MIDI demo: sequenced songs (piano and drums) named by the MD5 of their bytes, a few cut short as in LMD.

The drum tracks play the Groove demo's style patterns the way sequenced MIDI files do: on the grid,
at two fixed velocities, without ghost notes or timing feel. Next to the performed Groove takes they
are a second domain of drum grids (the demo's domain-adversarial task trains on both).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from seqpipe.raw.demo.common import Note, item_rng, write_midi
from seqpipe.raw.demo.groove import DRUM_PITCH, GROOVE_STYLES
from seqpipe.raw.demo.maestro import COMPOSERS, piano_notes
from seqpipe.io import atomic_path

TEMPO = 120.0
CORRUPT_EVERY = 25  # "a few thousand files likely corrupt": every 25th file is cut short


def sequenced_drums(rng: np.random.Generator, duration_s: float, bpm: float = TEMPO) -> list[Note]:
    """A quantised drum track of one Groove style over `duration_s`: loud cells at 100, soft ones at 70."""
    spec = GROOVE_STYLES[list(GROOVE_STYLES)[int(rng.integers(len(GROOVE_STYLES)))]]
    lines = (("kick", spec.kicks[int(rng.integers(len(spec.kicks)))]), *spec.lines)
    step_s = 60.0 / bpm / 4
    notes: list[Note] = []
    for bar in range(int(duration_s / (16 * step_s))):
        for drum, line in lines:
            for j, cell in enumerate(line):
                if cell != ".":
                    start = (bar * 16 + j) * step_s
                    notes.append((DRUM_PITCH[drum], start, start + 0.1, 100 if int(cell) >= 6 else 70))
    return notes


def generate(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """Lakh layout: `lmd_full/<first hex digit>/<md5 of the bytes>.mid`, a few files corrupt as in LMD."""
    from seqpipe.datasets import lakh

    root = out_dir / lakh.FOLDER
    composers = list(COMPOSERS)
    for i in range(n_items):
        rng = item_rng(seed, "lakh", i)
        length = float(rng.uniform(20.0, 40.0))
        notes, _, _ = piano_notes(rng, composers[i % len(composers)], length)
        scratch = out_dir / f".lakh-{i}.mid"
        write_midi(scratch, notes, tempo=TEMPO, resolution=480, is_drum=False, drums=sequenced_drums(rng, length))
        data = scratch.read_bytes()
        scratch.unlink()
        if i % CORRUPT_EVERY == CORRUPT_EVERY - 1:
            data = data[: len(data) // 3]
        md5 = hashlib.md5(data).hexdigest()
        with atomic_path(root / md5[0] / f"{md5}.mid") as tmp:
            tmp.write_bytes(data)
    return root
