"""Feature extraction speed against plain baselines timed in the same run, one core.

MIDI (by default on synthetic pieces the size of a MAESTRO performance): seqpipe's extraction of
one file (parse + pretty_midi note pairing + piano roll + pitch distribution + dynamics) against
pretty_midi merely parsing the same file, and against symusic merely parsing it (the limit:
seqpipe parses with symusic). Audio: seqpipe's decode + resample + log-mel against
librosa.load(sr=22050) + librosa.feature.melspectrogram, in seconds of audio per second of wall
time, and against soundfile merely decoding the file (the limit). Candidate and baselines
alternate file by file, so machine noise hits all of them. The last line is the limit:

    limit: MIDI R x symusic parse-only (goal <= 1.5), audio R x soundfile decode-only (goal <= 1.3)

    .venv/bin/python benchmarks/features.py                  # demo-like files made on the fly
    .venv/bin/python benchmarks/features.py --midi-dir D1 --audio-dir D2   # your own files
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: before numpy/torch/numba load
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(files: list[Path], runs: list[Callable[[Path], object]], repeats: int) -> list[float]:
    """Total seconds per pass over `files` (median of `repeats`) of each of `runs`, interleaved file by file."""
    for run in runs:  # warm up: imports, caches, numba compilation
        run(files[0])
    totals = [[0.0] * len(runs) for _ in range(repeats)]
    for r in range(repeats):
        for f in files:
            for i, run in enumerate(runs):
                totals[r][i] += timed(lambda run=run, f=f: run(f))
    return [statistics.median(t[i] for t in totals) for i in range(len(runs))]


def midi_benchmark(files: list[Path], repeats: int) -> float:
    """Print seqpipe against pretty_midi; return seqpipe's time over symusic's parse-only time."""
    import pretty_midi
    import symusic

    from seqpipe.features.midi import dynamics_features, piano_roll, pitch_distribution, read_notes

    def ours(path: Path) -> None:
        notes = read_notes(path)
        piano_roll(notes, 8.0), pitch_distribution(notes), dynamics_features(notes)

    def symusic_parse(path: Path) -> None:
        symusic.Score(str(path))

    runs = [ours, lambda p: pretty_midi.PrettyMIDI(str(p)), symusic_parse, read_notes]
    ours_s, base_s, parse_s, read_s = compare(files, runs, repeats)
    n = len(files)
    print(f"MIDI  {n} files: seqpipe features {n / ours_s:9.1f} files/s | pretty_midi parse only {n / base_s:7.1f} files/s"
          f" | ratio {base_s / ours_s:6.1f}x (goal >= 50x) | symusic parse only {n / parse_s:7.1f} files/s"
          f" | seqpipe read_notes alone {read_s / parse_s:.2f} x symusic parse-only")
    return ours_s / parse_s


def audio_benchmark(files: list[Path], repeats: int) -> float:
    """Print seqpipe against librosa; return seqpipe's time over soundfile's decode-only time."""
    import librosa
    import numpy as np
    import soundfile as sf
    import soxr

    from seqpipe.features.audio import load_audio, log_mel

    def base(path: Path) -> None:
        y, sr = librosa.load(str(path), sr=22050)
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)

    def decode(path: Path) -> None:
        sf.read(str(path), dtype="float32", always_2d=True)

    def resampled(path: Path) -> np.ndarray:
        """Floor, part 1: decode, soxr HQ of one channel to 22,050 Hz (no channel mix, no checks)."""
        y, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return soxr.resample(y[:, 0], rate, 22050, quality="HQ") if rate != 22050 else y[:, 0]

    window = torch.hann_window(2048)

    def spectrum(path: Path) -> None:
        """Floor, part 2: + the bare centered STFT (complex, no power, mel or log), as fast as we know it:
        a block of frames at a time (torch.stft over the whole clip is ~2x slower)."""
        frames = torch.from_numpy(np.pad(resampled(path), 1024)).unfold(0, 2048, 512)
        for start in range(0, len(frames), 256):
            torch.fft.rfft(frames[start : start + 256] * window)

    runs = [lambda p: log_mel(load_audio(p, 22050)), base, decode, resampled, spectrum]
    ours_s, base_s, decode_s, resample_s, spectrum_s = compare(files, runs, repeats)
    seconds = sum(sf.info(str(f)).duration for f in files)
    print(f"Audio {len(files)} files, {seconds:.0f} s: seqpipe {seconds / ours_s:7.0f}x real time | librosa {seconds / base_s:7.0f}x real time"
          f" | ratio {base_s / ours_s:5.2f}x (goal: seqpipe >= 1000x real time per core) | soundfile decode only {seconds / decode_s:7.0f}x real time")
    print(f"Audio floor, steps any decode + resample + log-mel must take: decode + soxr HQ {resample_s / decode_s:.2f}"
          f" x decode-only, + bare STFT {spectrum_s / decode_s:.2f} x decode-only (seqpipe adds the mix, checks, power, mel and log:"
          f" {ours_s / decode_s:.2f} x)")
    return ours_s / decode_s


def maestro_sized_midi(folder: Path, n: int) -> list[Path]:
    """Piano files the size of a MAESTRO performance: ~10 min, ~5,500 notes, sustain-pedal events."""
    import numpy as np
    import pretty_midi

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        pm = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        starts = np.sort(rng.uniform(0, 600, 5500))
        for start, pitch, velocity, length in zip(starts, rng.integers(21, 109, 5500), rng.integers(20, 110, 5500), rng.uniform(0.05, 1.5, 5500)):
            piano.notes.append(pretty_midi.Note(int(velocity), int(pitch), float(start), float(start + length)))
        for t in np.sort(rng.uniform(0, 600, 4000)):
            piano.control_changes.append(pretty_midi.ControlChange(64, int(rng.integers(0, 128)), float(t)))
        pm.instruments.append(piano)
        paths.append(folder / f"piece_{i:03d}.midi")
        pm.write(str(paths[-1]))
    return paths


def demo_files(folder: Path, n_midi: int, n_audio: int) -> tuple[list[Path], list[Path]]:
    from seqpipe.raw.demo import generate

    deam = generate("deam", folder / "deam", n_items=n_audio, seed=0, duration_s=45.0)
    return maestro_sized_midi(folder / "midi", n_midi), sorted((deam / "MEMD_audio").glob("*.mp3"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--midi-dir", type=Path, help="folder searched for *.mid / *.midi (default: MAESTRO-sized synthetic pieces)")
    parser.add_argument("--audio-dir", type=Path, help="folder searched for *.mp3 / *.wav / *.flac (default: demo DEAM clips of 45 s)")
    parser.add_argument("--n", type=int, default=20, help="files per benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        midi, audio = demo_files(Path(tmp), args.n, args.n) if not (args.midi_dir and args.audio_dir) else ([], [])
        if args.midi_dir:
            midi = sorted(p for p in args.midi_dir.rglob("*") if p.suffix.lower() in {".mid", ".midi"})
        if args.audio_dir:
            audio = sorted(p for p in args.audio_dir.rglob("*") if p.suffix.lower() in {".mp3", ".wav", ".flac"})
        midi_limit = midi_benchmark(midi[: args.n], args.repeats)
        audio_limit = audio_benchmark(audio[: args.n], args.repeats)
    print(f"limit: MIDI {midi_limit:.2f} x symusic parse-only (goal <= 1.5), "
          f"audio {audio_limit:.2f} x soundfile decode-only (goal <= 1.3)")


if __name__ == "__main__":
    main()
