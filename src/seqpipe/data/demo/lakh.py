"""Lakh MIDI demo: piano pieces named by the MD5 of their bytes, a few files cut short as in LMD."""

from __future__ import annotations

from pathlib import Path

from seqpipe.data.demo.common import item_rng, write_midi
from seqpipe.data.demo.maestro import COMPOSERS, piano_notes
from seqpipe.io import atomic_path


def generate(out_dir: Path, n_items: int, seed: int, duration_s: float) -> Path:
    """Lakh layout: `lmd_full/<first hex digit>/<md5 of the bytes>.mid`, a few files corrupt as in LMD."""
    import hashlib

    from seqpipe.datasets import lakh

    root = out_dir / lakh.FOLDER
    composers = list(COMPOSERS)
    for i in range(n_items):
        rng = item_rng(seed, "lakh", i)
        notes, _, _ = piano_notes(rng, composers[i % len(composers)], float(rng.uniform(20.0, 40.0)))
        scratch = out_dir / f".lakh-{i}.mid"
        write_midi(scratch, notes, tempo=120.0, resolution=480, is_drum=False)
        data = scratch.read_bytes()
        scratch.unlink()
        if i % 25 == 24:  # "a few thousand files likely corrupt": cut every 25th file short
            data = data[: len(data) // 3]
        md5 = hashlib.md5(data).hexdigest()
        with atomic_path(root / md5[0] / f"{md5}.mid") as tmp:
            tmp.write_bytes(data)
    return root

