"""DEAM demo: songs whose valence follows mode and timbre brightness and whose arousal follows tempo and loudness.

Each song's loudness swells slowly (a 3-8 dB sine of 8-20 s); its dynamic (2 Hz) arousal follows
that swell, so per-frame arousal is learnable from the audio, as DEAM's dynamic task asks.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqpipe.raw.demo.common import MAJOR, csv_text, item_rng, scale_pitches, triad
from seqpipe.io import atomic_path, write_text

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


@dataclass(frozen=True)
class Contour:
    """A song's slow loudness swell: `depth_db` * sin(2 pi t / period_s + phase), in dB around its level."""

    depth_db: float
    period_s: float
    phase: float

    def db(self, t: np.ndarray) -> np.ndarray:
        """The swell (dB, mean about 0) at times `t` (s)."""
        return self.depth_db * np.sin(2 * np.pi * np.asarray(t) / self.period_s + self.phase)


def loudness_contour(rng: np.random.Generator) -> Contour:
    """Draw one song's swell: 3-8 dB deep, 8-20 s long."""
    return Contour(float(rng.uniform(3.0, 8.0)), float(rng.uniform(8.0, 20.0)), float(rng.uniform(0, 2 * np.pi)))


SWELL_HEADROOM_DB = 8.0  # a swelling song sits this much lower, so its loudest passage stays below full scale


def render_song(
    rng: np.random.Generator, f: SongFactors, duration_s: float, rate: int, contour: Contour | None = None
) -> np.ndarray:
    """Mono float32 audio of one song: chords, bass, melody and hi-hat on a tempo grid, its loudness
    swelling along `contour` (if given: around the song's level less SWELL_HEADROOM_DB, so its mean level
    still follows `f.loudness` and nothing clips)."""
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
    melody = scale_pitches(f.root, scale, 67, 86)
    current = len(melody) // 2
    for k in range(int(duration_s / beat) + 1):
        at = int(k * beat * rate)
        chord = triad(f.root, scale, progression[(k // 4) % 4], 55)
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
    if contour is not None:
        gain_db = contour.db(np.arange(n) / rate) - SWELL_HEADROOM_DB
        out *= (10 ** (gain_db / 20)).astype(np.float32)
    return out


AROUSAL_PER_DB = 0.04  # how far (on [-1, 1]) the dynamic arousal rises per dB of the loudness swell


def _dynamic_series(
    rng: np.random.Generator, mean_1_9: float, duration_s: float, contour: Contour | None = None
) -> np.ndarray:
    """Per-0.5 s annotations on [-1, 1] from 15 s to the end: the static value, plus the loudness swell
    (`contour`, for arousal: listeners feel louder passages as more aroused), plus a slow drift."""
    from seqpipe.datasets import deam

    n = max(0, int(np.ceil((duration_s - deam.DYNAMIC_START_S) * deam.DYNAMIC_RATE_HZ - 1e-9)))
    drift = np.zeros(n)
    for k in range(1, n):
        drift[k] = 0.9 * drift[k - 1] + rng.normal(0, 0.03)
    follows = 0.0 if contour is None else AROUSAL_PER_DB * contour.db(deam.DYNAMIC_START_S + np.arange(n) / deam.DYNAMIC_RATE_HZ)
    return np.clip((mean_1_9 - 5.0) / 4.0 + follows + drift + rng.normal(0, 0.01, size=n), -1.0, 1.0)


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
    return csv_text(header, rows)


def _deam_song(job: tuple) -> tuple[int, list[str], np.ndarray, np.ndarray]:
    """Render and encode one DEAM clip (its own RNG: the bytes do not depend on the worker count)."""
    import soundfile as sf  # imported here: only DEAM needs audio

    from seqpipe.datasets import deam

    out_dir, seed, i, song, duration_s, is_48k, is_mono = job
    rng = item_rng(seed, "deam", i)
    f = song_factors(rng)
    length = duration_s * (1.5 if song > 2000 else 1.0)  # ids above 2000 are the longer "full songs"
    rate = 48_000 if is_48k else DEAM_RATE
    contour = loudness_contour(rng)
    audio = render_song(rng, f, length, rate, contour)
    noise = rng.standard_normal((len(audio), 2)).astype(np.float32) * np.float32(0.002)
    data = audio[:, None] + noise[:, :1] if is_mono else np.stack([audio, 0.85 * audio], axis=1) + noise
    with atomic_path(out_dir / deam.AUDIO_DIR / f"{song}.mp3") as tmp:
        sf.write(str(tmp), np.clip(data, -1.0, 1.0), rate, format="MP3", subtype="MPEG_LAYER_III", **MP3_OPTIONS)
    row = _static_rows(rng, song, f, wide=song > 2000)
    return song, row, _dynamic_series(rng, f.valence_mean, length), _dynamic_series(rng, f.arousal_mean, length, contour)


def generate(out_dir: Path, n_items: int, seed: int, duration_s: float, workers: int = 1) -> Path:
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

