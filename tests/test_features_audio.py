"""seqpipe.features.audio: decoding any rate/channel count/format to one mono 22,050 Hz signal,
log-mel against librosa, and broken files raising AudioReadError."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from seqpipe.features.audio import AudioReadError, load_audio, log_mel, mel_vector, pool_frames

SR = 22050
SECONDS = 1.5
TONES = ((220.0, 0.3), (1234.5, 0.2), (3000.0, 0.1))  # all well below 11,025 Hz


def _signal(rate: int) -> np.ndarray:
    """The same band-limited test signal sampled at `rate`."""
    t = np.arange(int(SECONDS * rate)) / rate
    return sum(a * np.sin(2 * np.pi * f * t) for f, a in TONES)


def _interior(y: np.ndarray) -> slice:
    edge = int(0.1 * SR)  # resampler filters settle within a few ms; stay clear of both ends
    return slice(edge, y.size - edge)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    s44 = _signal(44100)
    side = 0.05 * np.sin(2 * np.pi * 500 * np.arange(s44.size) / 44100)
    stereo = np.stack([s44 + side, s44 - side], axis=1)  # the channel mean is the signal itself
    paths = {
        "wav": folder / "stereo44k.wav",
        "flac": folder / "mono48k.flac",
        "mp3": folder / "stereo44k.mp3",
        "wav22": folder / "mono22k.wav",
    }
    sf.write(paths["wav"], stereo, 44100, subtype="PCM_24")
    sf.write(paths["flac"], _signal(48000), 48000, subtype="PCM_24")
    sf.write(paths["mp3"], stereo, 44100, format="MP3")
    sf.write(paths["wav22"], _signal(SR).astype(np.float32), SR, subtype="FLOAT")
    return paths


@pytest.mark.parametrize("kind", ["wav", "flac", "wav22"])
def test_lossless_files_load_to_the_same_mono_signal(files, kind):
    y = load_audio(files[kind])
    expected = _signal(SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - expected.size) <= 1
    n = min(y.size, expected.size)
    inner = _interior(expected[:n])
    np.testing.assert_allclose(y[:n][inner], expected[:n][inner], atol=2e-3)


def test_same_rate_is_not_resampled(files):
    y = load_audio(files["wav22"])
    np.testing.assert_array_equal(y, _signal(SR).astype(np.float32))


def test_mp3_loads_close_to_the_signal(files):
    y = load_audio(files["mp3"])
    expected = _signal(SR)
    assert abs(y.size - expected.size) <= 1152  # at most one MP3 frame of padding either way
    n = min(y.size, expected.size)
    inner = _interior(expected[:n])
    error = y[:n][inner] - expected[:n][inner]
    assert np.sqrt(np.mean(error**2)) < 0.02 * np.sqrt(np.mean(expected**2)) + 5e-3
    assert np.corrcoef(y[:n][inner], expected[:n][inner])[0, 1] > 0.99


def test_other_target_rate(files):
    y = load_audio(files["flac"], sr=16000)
    assert abs(y.size - int(SECONDS * 16000)) <= 1


def _broken(folder: Path, files: dict[str, Path]) -> dict[str, Path]:
    cases = {
        "zero.wav": b"",
        "random.mp3": np.random.default_rng(0).bytes(5000),
        "header.wav": files["wav"].read_bytes()[:30],
    }
    for kind in ("wav", "flac", "mp3"):
        data = files[kind].read_bytes()
        cases[f"truncated.{kind}"] = data[: len(data) // 2]
    paths = {}
    for name, blob in cases.items():
        paths[name] = folder / name
        paths[name].write_bytes(blob)
    return paths


def test_broken_files_raise_audio_read_error(tmp_path, files):
    for name, path in _broken(tmp_path, files).items():
        with pytest.raises(AudioReadError, match=name.replace(".", r"\.")):
            load_audio(path)
    with pytest.raises(AudioReadError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")


def test_file_without_samples_raises(tmp_path):
    path = tmp_path / "silent_empty.wav"
    sf.write(path, np.zeros((0, 2), dtype=np.float32), 44100)
    with pytest.raises(AudioReadError, match="no audio samples"):
        load_audio(path)


def _librosa_log_mel(y: np.ndarray, **kwargs) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=y, sr=SR, **kwargs)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T


def assert_matches_librosa(ours: np.ndarray, ref: np.ndarray, below_peak_db: float = 80.0) -> None:
    """Within 0.01 dB wherever librosa's band is within `below_peak_db` of the clip's peak."""
    assert ours.shape == ref.shape and np.isfinite(ours).all()
    audible = ref >= ref.max() - below_peak_db
    np.testing.assert_allclose(ours[audible], ref[audible], atol=1e-2)
    assert np.abs(ours - ref).max() < 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_fft": 2048, "hop_length": 512, "n_mels": 128},
        {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "fmin": 30.0, "fmax": 8000.0},
        {"n_fft": 2048, "hop_length": 512, "n_mels": 128, "pad_mode": "reflect"},
    ],
)
def test_log_mel_matches_librosa(kwargs):
    rng = np.random.default_rng(0)
    y = (_signal(SR) + 0.01 * rng.standard_normal(int(SECONDS * SR))).astype(np.float32)
    ours = log_mel(y, sr=SR, **kwargs)
    ref = _librosa_log_mel(y, **kwargs)
    n_frames = 1 + y.size // kwargs["hop_length"]
    assert ours.dtype == np.float32 and ours.shape == ref.shape == (n_frames, kwargs["n_mels"])
    assert_matches_librosa(ours, ref)


def test_clips_longer_than_one_block_match(tmp_path):
    """Decoding and log-mel work a block at a time: several blocks each, the last one partial."""
    from seqpipe.features import audio

    stereo = (0.1 * np.random.default_rng(1).standard_normal((2 * audio._DECODE_BLOCK + 777, 2))).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, stereo, SR, subtype="FLOAT")
    y = load_audio(path)
    np.testing.assert_allclose(y, stereo.mean(axis=1), rtol=1e-6, atol=1e-9)
    assert 2 * audio._STFT_BLOCK < 1 + y.size // 512 < 3 * audio._STFT_BLOCK
    assert_matches_librosa(log_mel(y), _librosa_log_mel(y))


@pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")  # librosa, short clips
@pytest.mark.parametrize("n", [1, 700, 1024, 5000])
def test_log_mel_pure_tone_silence_and_short_clips(n):
    tone = np.sin(2 * np.pi * 440 * np.arange(n) / SR).astype(np.float32)
    assert_matches_librosa(log_mel(tone), _librosa_log_mel(tone))
    silence = np.zeros(n, dtype=np.float32)
    expected = np.full((1 + n // 512, 128), -100.0, dtype=np.float32)
    np.testing.assert_array_equal(log_mel(silence), expected)


def test_log_mel_rejects_bad_input():
    for bad in (np.zeros(0, np.float32), np.zeros((2, 100), np.float32), np.array([0.0, np.nan])):
        with pytest.raises(ValueError):
            log_mel(bad)


def test_pool_frames():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    pooled = pool_frames(x, 3)
    assert pooled.shape == (3, 3) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled[0], x[:3].mean(axis=0))
    np.testing.assert_allclose(pooled[2], x[6:9].mean(axis=0))
    assert pool_frames(x, 1).shape == (10, 3)
    assert pool_frames(x, 11).shape == (0, 3)
    assert pool_frames(np.zeros((8, 2, 5)), 4).shape == (2, 2, 5)
    with pytest.raises(ValueError):
        pool_frames(x, 0)


def test_mel_vector():
    rng = np.random.default_rng(0)
    v = mel_vector(rng.normal(-40, 10, size=(50, 128)).astype(np.float32))
    assert v.shape == (128,) and v.dtype == np.float32
    assert v.min() == -1.0 and v.max() == 1.0
    constant = np.full((7, 128), -100.0, np.float32)
    np.testing.assert_array_equal(mel_vector(constant), np.zeros(128, np.float32))
    ramp = np.tile(np.arange(128, dtype=np.float32), (3, 1))
    np.testing.assert_allclose(mel_vector(ramp), np.linspace(-1, 1, 128), atol=1e-6)


def _strip_vbr_header(data: bytes) -> bytes:
    """An mp3 without its first frame, the one carrying the Xing/Info header (libsndfile writes no ID3)."""
    header = int.from_bytes(data[:4], "big")
    assert header >> 21 == 0x7FF and (header >> 19) & 3 == 3 and (header >> 17) & 3 == 1  # MPEG-1 Layer III
    kbps = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[(header >> 12) & 15]
    rate = (44100, 48000, 32000)[(header >> 10) & 3]
    size = 144 * kbps * 1000 // rate + ((header >> 9) & 1)
    assert b"Xing" in data[:size] or b"Info" in data[:size]
    return data[size:]


@pytest.fixture(scope="module")
def vbr_mp3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 45 s VBR mp3 (loud noise for 2 s, then a quiet tone) with its Xing header, and a copy without it."""
    folder = tmp_path_factory.mktemp("vbr")
    rate = 44100
    t = np.arange(45 * rate) / rate
    noise = np.random.default_rng(0).standard_normal(t.size)
    y = np.where(t < 2.0, 0.5 * noise, 0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with_header = folder / "with_header.mp3"
    with sf.SoundFile(with_header, "w", rate, 2, format="MP3", subtype="MPEG_LAYER_III") as f:
        f.write(np.stack([y, y], axis=1))
    without = folder / "no_xing.mp3"
    without.write_bytes(_strip_vbr_header(with_header.read_bytes()))
    return with_header, without


def test_vbr_mp3_without_a_xing_header_is_not_read_short(vbr_mp3):
    with_header, without = vbr_mp3
    assert abs(load_audio(with_header).size / SR - 45.0) < 0.1
    # libsndfile guesses the length from the first (loud, high-bitrate) frame and stops there.
    with sf.SoundFile(without) as f:
        assert f.frames / f.samplerate < 40.0
    with pytest.raises(AudioReadError, match=r"no_xing\.mp3: decoding stopped early.*\(45\.0 s\).*Xing/Info header"):
        load_audio(without)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.mp3", b"", r"the file is empty \(0 bytes\)"),
        ("notes.mp3", b"these are my notes, not audio\n" * 40, r"not an audio file libsndfile can decode"),
        ("folder.wav", None, r"is a folder"),
        ("absent.wav", "absent", r"does not exist"),
    ],
)
def test_unopenable_files_get_a_clear_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(AudioReadError, match=rf"{name}: {reason}") as info:
        load_audio(path)
    assert "possibly a pipe" not in str(info.value)


def test_a_clip_shorter_than_one_pooled_step_is_skipped_with_its_reason(tmp_path):
    from seqpipe.datasets import Item
    from seqpipe.features.kinds import logmel

    spec = {"sample_rate": SR, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "pool": 21}
    short, enough = tmp_path / "short.wav", tmp_path / "enough.wav"
    sf.write(short, _signal(SR)[: int(0.3 * SR)], SR)  # 13 frames of 512 samples < 21
    sf.write(enough, _signal(SR)[: int(0.6 * SR)], SR)
    assert logmel.extract(Item("e", enough, "train"), spec).shape == (1, 128)
    with pytest.raises(AudioReadError, match=r"short\.wav: the clip is 0\.30 s long, shorter than one pooled step \(0\.49 s"):
        logmel.extract(Item("s", short, "train"), spec)


@pytest.mark.slow
def test_benchmark_ends_with_the_limit_line(tmp_path, files):
    """benchmarks/features.py times seqpipe against symusic's parse and soundfile's decode in one run."""
    import re
    import subprocess
    import sys

    import pretty_midi

    midi_dir, audio_dir = tmp_path / "midi", tmp_path / "audio"
    midi_dir.mkdir()
    audio_dir.mkdir()
    for i in range(2):
        pm = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        piano.notes += [pretty_midi.Note(80, 60 + (k % 12), k * 0.25, k * 0.25 + 0.5) for k in range(40)]
        pm.instruments.append(piano)
        pm.write(str(midi_dir / f"{i}.mid"))
        (audio_dir / f"{i}.wav").write_bytes(files["wav"].read_bytes())
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "features.py"), "--midi-dir", str(midi_dir),
         "--audio-dir", str(audio_dir), "--n", "2", "--repeats", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    pattern = r"limit: MIDI \d+\.\d+ x symusic parse-only \(goal <= 1\.5\), audio \d+\.\d+ x soundfile decode-only \(goal <= 1\.3\)"
    assert re.fullmatch(pattern, last), last
