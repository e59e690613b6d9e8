"""Audio features: decode to mono 22,050 Hz, log-mel spectrograms, pooled and averaged vectors.

Decoding uses soundfile (libsndfile: wav, flac, ogg, mp3) and soxr for resampling; the mel
spectrogram is `torch.stft` with librosa's Slaney mel filterbank, which matches
`librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0, amin=1e-10, top_db=None)`
without paying for librosa's numba compilation in every worker process.
A file that cannot be decoded, holds no samples, or is shorter than its header says raises
`AudioReadError` naming the file and the reason, so the feature stage can skip and list it.
"""

from __future__ import annotations

import functools
import os
import re

import librosa
import numpy as np
import scipy.sparse
import soundfile as sf
import soxr
import torch

SAMPLE_RATE = 22050
N_MELS = 128
HOP_LENGTH = 512

# Frames a compressed stream may fall short of its header's count without being called truncated
# (two MP3 frames: encoder delay and padding).
_FRAME_SLACK = 2304
# libsndfile's log says "data : <header size> (should be <real size>)" for a cut-off WAV.
_WAV_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioReadError(ValueError):
    """An audio file could not be decoded, is empty, or is truncated."""


def _truncation(declared: int, decoded: int, log: str) -> str | None:
    """Why a decoded stream looks cut short, or None."""
    if decoded < declared - _FRAME_SLACK:
        return f"truncated: the header declares {declared} frames, only {decoded} could be decoded"
    match = _WAV_SHORT.search(log)
    if match and 0 < int(match.group(2)) < int(match.group(1)) < 0xFFFFFFFF:
        said, has = match.groups()
        return f"truncated: the data chunk declares {said} bytes, the file has {has}"
    return None


def load_audio(path: str | os.PathLike[str], sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to float32 mono at `sr` Hz (channels averaged, soxr HQ resampling)."""
    try:
        with sf.SoundFile(str(path)) as f:
            declared, rate, log = f.frames, f.samplerate, f.extra_info
            y = f.read(dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile / mpg123 errors, missing files
        raise AudioReadError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from exc
    # Channel average as a matrix-vector product: a strided mean over axis 1 costs as much as the decode.
    mono = y @ np.full(y.shape[1], 1.0 / y.shape[1], dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    reason = _truncation(declared, y.shape[0], log)
    if reason is None and y.size == 0:
        reason = "the file holds no audio samples"
    if reason is None and not np.isfinite(mono).all():  # a NaN or Inf in any channel reaches the average
        reason = "the decoded samples contain NaN or infinity"
    if reason is not None:
        raise AudioReadError(f"{path}: {reason}")
    if rate != sr:
        mono = soxr.resample(mono, rate, sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> scipy.sparse.csr_matrix:
    """librosa's (Slaney) mel filterbank [n_mels, 1 + n_fft // 2], float32, sparse.

    Each band is a triangle over a few FFT bins (~2,000 non-zeros of 131,200 for 128 bands at
    n_fft 2048), so the sparse product is ~25x faster than the dense one, with the same sums.
    """
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return scipy.sparse.csr_matrix(basis.astype(np.float32))


def log_mel(
    y: np.ndarray,
    sr: int = SAMPLE_RATE,
    n_fft: int = 2048,
    hop_length: int = HOP_LENGTH,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Log-power mel spectrogram in dB, float32 [n_frames, n_mels], n_frames = 1 + len(y) // hop.

    Centered frames (n_fft // 2 padding each side, `pad_mode` "constant" = zeros as librosa
    >= 0.10 defaults to, or "reflect"), periodic Hann window, |STFT|^2, librosa's Slaney mel
    filterbank, then 10 * log10(max(S, 1e-10)): librosa's melspectrogram(pad_mode=pad_mode) +
    power_to_db(ref=1.0, amin=1e-10, top_db=None), transposed. The padding is done with numpy
    like librosa (so clips shorter than n_fft // 2 work), then `torch.stft(center=False)`.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"need a non-empty 1-D signal, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("the signal contains NaN or infinity")
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    # float32 throughout, 4x faster than librosa's float64 FFT: bands within 80 dB of the clip's
    # peak match librosa to 0.01 dB; only bands further below the peak (far under any real noise
    # floor) differ, by up to ~1 dB.
    padded = np.pad(y, n_fft // 2, mode=pad_mode)
    with torch.no_grad():
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32)
        spec = torch.stft(
            torch.from_numpy(padded), n_fft=n_fft, hop_length=hop_length, win_length=n_fft,
            window=window, center=False, return_complex=True,
        )
        power = (spec.real.square() + spec.imag.square()).numpy()
    mel = _mel_basis(sr, n_fft, n_mels, float(fmin), fmax) @ power
    return np.ascontiguousarray((10.0 * np.log10(np.maximum(mel, 1e-10, dtype=np.float64))).T, dtype=np.float32)


def pool_frames(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over consecutive blocks of `factor` frames (axis 0); an incomplete tail is dropped."""
    if factor < 1:
        raise ValueError(f"need factor >= 1, got {factor}")
    n = x.shape[0] // factor
    return x[: n * factor].reshape(n, factor, *x.shape[1:]).mean(axis=1)


def mel_vector(logmel: np.ndarray) -> np.ndarray:
    """Time-averaged log-mel [n_mels], min-max scaled to [-1, 1] (a constant vector gives zeros)."""
    mean = np.asarray(logmel, dtype=np.float64).mean(axis=0)
    low, high = mean.min(), mean.max()
    if not high > low:
        return np.zeros(mean.shape, dtype=np.float32)
    return (2.0 * (mean - low) / (high - low) - 1.0).astype(np.float32)
