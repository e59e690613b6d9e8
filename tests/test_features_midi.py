"""seqpipe.features.midi against pretty_midi as the reference parser, plus hand-built drum grids
and corrupt files (which must raise MidiReadError quickly and never allocate gigabytes)."""

from __future__ import annotations

import time
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from seqpipe.features.midi import (
    DRUM_CLASSES,
    DRUM_PITCH_TO_CLASS,
    DYNAMICS_NAMES,
    GROOVE_NAMES,
    MidiReadError,
    Notes,
    drum_grid,
    dynamics_features,
    groove_features,
    piano_roll,
    pitch_distribution,
    read_notes,
)

K = len(DRUM_CLASSES)


def _random_midi(path: Path, seed: int = 0, n: int = 300) -> pretty_midi.PrettyMIDI:
    """Piano + strings + drums with random notes (no same-pitch overlaps within an instrument)."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=97.0)
    kinds = ((0, False, (21, 109)), (48, False, (40, 90)), (0, True, (35, 60)))
    for program, is_drum, pitches in kinds:
        inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
        free_at = {}
        for start in np.sort(rng.uniform(0.0, 30.0, n)):
            pitch = int(rng.integers(*pitches))
            if free_at.get(pitch, -1.0) >= start:
                continue
            end = start + float(rng.uniform(0.02, 2.0))
            free_at[pitch] = end + 0.01
            inst.notes.append(pretty_midi.Note(int(rng.integers(1, 128)), pitch, float(start), end))
        pm.instruments.append(inst)
    pm.write(str(path))
    return pretty_midi.PrettyMIDI(str(path))  # the reference view: times as pretty_midi reads them


def _reference_notes(pm: pretty_midi.PrettyMIDI) -> tuple[np.ndarray, ...]:
    rows = [
        (n.start, n.pitch, n.end, n.velocity, inst.is_drum)
        for inst in pm.instruments
        for n in inst.notes
    ]
    rows.sort(key=lambda r: (round(r[0], 6), r[1]))
    start, pitch, end, velocity, drum = (np.array(c) for c in zip(*rows, strict=True))
    return start, end, pitch, velocity, drum.astype(bool)


@pytest.fixture(scope="module")
def random_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pretty_midi.PrettyMIDI]:
    path = tmp_path_factory.mktemp("midi") / "random.mid"
    return path, _random_midi(path)


def test_read_notes_matches_pretty_midi(random_file):
    path, pm = random_file
    notes = read_notes(path)
    start, end, pitch, velocity, drum = _reference_notes(pm)
    assert len(notes) == start.size
    np.testing.assert_allclose(notes.start, start, atol=1e-3)
    np.testing.assert_allclose(notes.end, end, atol=1e-3)
    np.testing.assert_array_equal(notes.pitch, pitch)
    np.testing.assert_array_equal(notes.velocity, velocity)
    np.testing.assert_array_equal(notes.is_drum, drum)
    assert notes.start.dtype == np.float64 and notes.end.dtype == np.float64
    assert notes.pitch.dtype == np.int16 and notes.velocity.dtype == np.int16
    assert notes.is_drum.dtype == bool
    assert np.all(np.diff(notes.start) >= 0)


def test_piano_roll_matches_pretty_midi_notes(random_file):
    path, pm = random_file
    fps = 50.0
    roll = piano_roll(read_notes(path), fps)
    ref = np.zeros((int(np.ceil(pm.get_end_time() * fps)) + 2, 128))
    last = 0
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        for n in inst.notes:
            a = int(np.floor(n.start * fps))
            b = max(int(np.floor(n.end * fps)), a + 1)
            ref[a:b, n.pitch] = np.maximum(ref[a:b, n.pitch], n.velocity / 127)
            last = max(last, b)
    # A note boundary within float32 precision of a frame edge may land one frame either side.
    assert roll.dtype == np.float32 and roll.shape[1] == 128 and abs(roll.shape[0] - last) <= 1
    n = min(roll.shape[0], last)
    mismatch = np.abs(roll[:n] - ref[:n]) > 1e-3
    assert mismatch.mean() < 1e-3
    # The velocity of every sounding note is there, the max over overlaps.
    assert np.isclose(roll.max(), ref.max(), atol=1e-6)


def test_piano_roll_overlaps_take_max_and_short_notes_keep_a_frame():
    notes = Notes(
        start=np.array([0.0, 0.05, 0.30]),
        end=np.array([0.5, 0.2, 0.301]),
        pitch=np.array([60, 60, 62], dtype=np.int16),
        velocity=np.array([50, 100, 127], dtype=np.int16),
        is_drum=np.zeros(3, dtype=bool),
    )
    roll = piano_roll(notes, fps=10.0)
    assert roll.shape == (5, 128)
    np.testing.assert_allclose(roll[:, 60], [100 / 127, 100 / 127, 50 / 127, 50 / 127, 50 / 127])
    np.testing.assert_allclose(roll[:, 62], [0, 0, 0, 1, 0])


def test_pitch_distribution_and_dynamics_match_reference(random_file):
    path, pm = random_file
    notes = read_notes(path)
    dist = pitch_distribution(notes)
    counts = np.zeros(128)
    for inst in pm.instruments:
        if not inst.is_drum:
            for n in inst.notes:
                counts[n.pitch] += 1
    assert dist.dtype == np.float32 and dist.shape == (128,)
    np.testing.assert_allclose(dist, counts / counts.sum(), atol=1e-6)
    assert np.isclose(dist.sum(), 1.0, atol=1e-6)

    start, end, _, velocity, _ = _reference_notes(pm)
    v = velocity / 127
    onsets = np.unique(np.round(start, 6))
    ioi = np.diff(onsets)
    length = end - start
    expected = [
        v.mean(), v.std(), v.max() - v.min(), np.median(v),
        *(np.histogram(velocity, bins=[0, 32, 64, 96, 128])[0] / velocity.size),
        length.mean(), length.std(), np.median(length), ioi.mean(), ioi.std(),
        np.mean(velocity > velocity.mean() + velocity.std()), velocity.size / end.max(), end.max(),
    ]
    dyn = dynamics_features(notes)
    assert dyn.dtype == np.float32 and dyn.shape == (16,) == (len(DYNAMICS_NAMES),)
    np.testing.assert_allclose(dyn, expected, atol=1e-3)


def test_drum_tables():
    assert DRUM_CLASSES == (
        "kick", "snare", "hh_closed", "hh_open", "tom_low", "tom_mid", "tom_high", "crash", "ride"
    )
    assert len(DRUM_PITCH_TO_CLASS) == 24  # the 22 TD-11 pitches + GM 35 and 41
    assert {p: DRUM_PITCH_TO_CLASS[p] for p in (35, 41)} == {35: 0, 41: 4}
    assert len(GROOVE_NAMES) == 32 == len(set(GROOVE_NAMES))
    assert len(DYNAMICS_NAMES) == 16 == len(set(DYNAMICS_NAMES))


# 120 bpm, 480 ticks per beat: a 16th-note step is 0.125 s = 120 ticks; 30 ticks = a quarter step.
STEP = 0.125
DRUM_HITS = [  # (step, offset in steps, pitch, velocity)
    (0, 0.0, 36, 100),  # kick on the downbeat
    (0, 0.25, 42, 60),  # closed hi-hat a quarter step late
    (2, -0.25, 22, 40),  # hi-hat (TD-11 rim pitch 22) a quarter step early
    (4, 0.0, 38, 90),  # snare on beat 2
    (4, 0.25, 38, 120),  # a louder snare on the same step: kept
    (6, 0.0, 26, 70),  # open hi-hat (pitch 26)
    (7, -0.25, 36, 80),  # kick early, off the beat
    (7, 0.0, 39, 127),  # hand clap: unmapped, ignored
    (8, 0.0, 49, 110),  # crash on beat 3
    (9, 0.0, 45, 50), (10, 0.0, 48, 51), (11, 0.0, 50, 52), (12, 0.0, 51, 53),  # toms and ride
]


def _write_drums(path: Path, hits, is_drum: bool = True) -> None:
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=0, is_drum=is_drum)
    for step, offset, pitch, velocity in hits:
        start = (step + offset) * STEP
        inst.notes.append(pretty_midi.Note(velocity, pitch, start, start + 0.05))
    pm.instruments.append(inst)
    pm.write(str(path))


def _expected_grid() -> np.ndarray:
    grid = np.zeros((13, 3 * K), dtype=np.float32)
    for step, offset, pitch, velocity in DRUM_HITS:
        if pitch not in DRUM_PITCH_TO_CLASS or (pitch, velocity) == (38, 90):
            continue
        c = DRUM_PITCH_TO_CLASS[pitch]
        grid[step, c], grid[step, K + c], grid[step, 2 * K + c] = 1.0, velocity / 127, offset
    return grid


@pytest.mark.parametrize("is_drum", [True, False])
def test_drum_grid_hand_built(tmp_path, is_drum):
    path = tmp_path / "drums.mid"
    _write_drums(path, DRUM_HITS, is_drum=is_drum)  # unflagged: every note counts as a drum
    grid = drum_grid(read_notes(path), bpm=120.0)
    expected = _expected_grid()
    assert grid.dtype == np.float32 and grid.shape == expected.shape
    np.testing.assert_array_equal(grid[:, :K], expected[:, :K])
    np.testing.assert_allclose(grid[:, K : 2 * K], expected[:, K : 2 * K], atol=1e-7)
    np.testing.assert_allclose(grid[:, 2 * K :], expected[:, 2 * K :], atol=1e-4)
    assert np.all(grid[:, 2 * K :] >= -0.5) and np.all(grid[:, 2 * K :] < 0.5)


def test_drum_grid_ignores_non_drum_tracks_and_steps_per_beat(tmp_path):
    path = tmp_path / "mixed.mid"
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 36, 0.5, 0.6))
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(100, 38, 3.0, 3.5))  # snare pitch, but a piano note
    pm.instruments += [drums, piano]
    pm.write(str(path))
    notes = read_notes(path)
    grid = drum_grid(notes, bpm=120.0)
    assert grid.shape == (5, 3 * K) and grid[:, :K].sum() == 1 and grid[4, 0] == 1
    assert drum_grid(notes, bpm=120.0, steps_per_beat=2).shape == (3, 3 * K)


def test_groove_features(tmp_path):
    path = tmp_path / "drums.mid"
    _write_drums(path, DRUM_HITS)
    g = groove_features(read_notes(path), bpm=120.0)
    assert g.dtype == np.float32 and g.shape == (32,) and np.isfinite(g).all()
    f = dict(zip(GROOVE_NAMES, g.tolist(), strict=True))
    n_bars = 13 / 16
    hits = [h for h in DRUM_HITS if h[2] in DRUM_PITCH_TO_CLASS]  # 12 mapped hits
    assert f["kick_hits_per_bar"] == pytest.approx(2 / n_bars)
    assert f["snare_hits_per_bar"] == pytest.approx(2 / n_bars)
    assert f["hh_closed_hits_per_bar"] == pytest.approx(2 / n_bars)
    assert f["kick_velocity_mean"] == pytest.approx(90 / 127)
    assert f["kick_velocity_std"] == pytest.approx(10 / 127)
    assert f["kick_syncopation"] == pytest.approx(0.5)
    assert f["snare_syncopation"] == pytest.approx(0.0)
    assert f["hh_closed_syncopation"] == pytest.approx(0.5)
    offsets = np.array([h[1] for h in hits])
    assert f["offset_abs_mean"] == pytest.approx(np.abs(offsets).mean(), abs=1e-4)
    assert f["offset_mean"] == pytest.approx(offsets.mean(), abs=1e-4)
    assert sum(f[f"{c}_fraction"] for c in DRUM_CLASSES) == pytest.approx(1.0)
    assert f["kick_fraction"] == pytest.approx(2 / 12)
    assert f["syncopation"] == pytest.approx(np.mean([h[0] % 4 != 0 for h in hits]))
    assert f["hits_per_bar"] == pytest.approx(12 / n_bars)
    assert f["grid_occupancy"] == pytest.approx(10 / 13)
    # Hits on the off-beat 8th: steps 2, 6, 10.
    assert f["swing_offset"] == pytest.approx(np.mean([-0.25, 0.0, 0.0]), abs=1e-4)
    assert f["ghost_ratio"] == pytest.approx(0.0)


def test_features_on_empty_selections_raise():
    def one_drum(pitch: int) -> Notes:
        return Notes(np.array([0.0]), np.array([0.1]), np.array([pitch], np.int16),
                     np.array([90], np.int16), np.array([True]))

    drums_only = one_drum(36)
    with pytest.raises(MidiReadError):
        pitch_distribution(drums_only)
    with pytest.raises(MidiReadError):
        piano_roll(drums_only, fps=100.0)
    unmapped = one_drum(39)
    with pytest.raises(MidiReadError, match="mapped"):
        drum_grid(unmapped, bpm=100.0)
    with pytest.raises(ValueError):
        drum_grid(drums_only, bpm=0.0)


def _corrupt(tmp_path: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    cases = {
        "zero_length": b"",
        "random_bytes": np.random.default_rng(1).bytes(4096),
        "truncated": data[: len(data) // 2],
        "header_only": data[:14],
        "bad_track_header": data[:14] + b"MTrk\xff\xff\xff\xff" + data[22:60],
    }
    paths = {}
    for name, blob in cases.items():
        paths[name] = tmp_path / f"{name}.mid"
        paths[name].write_bytes(blob)
    return paths


def test_corrupt_files_raise_midi_read_error(tmp_path, random_file):
    for name, path in _corrupt(tmp_path, random_file[0]).items():
        with pytest.raises(MidiReadError, match=str(path.name)):
            read_notes(path)
        assert name  # each case raised
    with pytest.raises(MidiReadError, match="missing.mid"):
        read_notes(tmp_path / "missing.mid")


def test_file_without_notes_raises(tmp_path):
    path = tmp_path / "empty_song.mid"
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.write(str(path))
    with pytest.raises(MidiReadError, match="no notes"):
        read_notes(path)


def test_huge_tick_time_is_bounded(tmp_path):
    """A note at tick 2**30 (~68 days at 120 bpm) parses, but grids and rolls refuse it fast."""
    path = tmp_path / "huge.mid"
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.Message("note_on", note=60, velocity=90, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    delta = 2**30 - 480 - 3 * (2**28 - 1)  # a delta-time holds at most 2**28 - 1 ticks: chain four
    for _ in range(3):
        track.append(mido.MetaMessage("text", text="x", time=2**28 - 1))
    track.append(mido.Message("note_on", note=62, velocity=90, time=delta))
    track.append(mido.Message("note_on", note=36, velocity=90, channel=9, time=0))
    track.append(mido.Message("note_off", note=62, velocity=0, time=480))
    track.append(mido.Message("note_off", note=36, velocity=0, channel=9, time=0))
    mid.tracks.append(track)
    mid.save(str(path))

    t0 = time.perf_counter()
    notes = read_notes(path)
    assert notes.start.max() == pytest.approx(2**30 / 960, rel=1e-6)  # tick 2**30, 120 bpm, 480 tpq
    with pytest.raises(MidiReadError, match="max_seconds"):
        piano_roll(notes, fps=100.0)
    with pytest.raises(MidiReadError, match="max_seconds"):
        drum_grid(notes, bpm=120.0)
    with pytest.raises(MidiReadError, match="max_seconds"):
        groove_features(notes, bpm=120.0)
    assert dynamics_features(notes).shape == (16,)
    assert time.perf_counter() - t0 < 2.0


def test_max_seconds_is_adjustable():
    notes = Notes(np.array([0.0, 10.0]), np.array([1.0, 11.0]), np.array([60, 36], np.int16),
                  np.array([64, 64], np.int16), np.array([False, False]))
    assert piano_roll(notes, fps=10.0).shape == (110, 128)
    with pytest.raises(MidiReadError):
        piano_roll(notes, fps=10.0, max_seconds=5.0)
    with pytest.raises(MidiReadError):
        drum_grid(notes, bpm=120.0, max_seconds=5.0)


# The Groove MIDI paper's mapping (Gillick et al. 2019, Table 2; magenta's ROLAND_DRUM_PITCH_CLASSES):
# every Roland TD-11 pitch and the class it belongs to.
TD11_PUBLISHED = {
    36: "kick",
    38: "snare", 40: "snare", 37: "snare",
    42: "hh_closed", 22: "hh_closed", 44: "hh_closed",
    46: "hh_open", 26: "hh_open",
    43: "tom_low", 58: "tom_low",
    47: "tom_mid", 45: "tom_mid",
    50: "tom_high", 48: "tom_high",
    49: "crash", 55: "crash", 57: "crash", 52: "crash",
    51: "ride", 59: "ride", 53: "ride",
}


@pytest.mark.parametrize("pitch", sorted(TD11_PUBLISHED))
def test_each_td11_pitch_lands_in_its_published_class(tmp_path, pitch):
    path = tmp_path / f"{pitch}.mid"
    _write_drums(path, [(0, 0.0, 36, 100), (1, 0.0, pitch, 77)])
    grid = drum_grid(read_notes(path), bpm=120.0)
    c = DRUM_CLASSES.index(TD11_PUBLISHED[pitch])
    assert DRUM_PITCH_TO_CLASS[pitch] == c
    assert grid[1, c] == 1.0 and np.isclose(grid[1, K + c], 77 / 127)
    assert grid[1, :K].sum() == 1.0


def _mido_file(path: Path, tracks: list[list[tuple]], tempos: list[tuple[int, int]], tpq: int = 480) -> None:
    """Write a type-1 file with mido: `tempos` [(tick, microseconds per quarter)] in track 0, then
    one track per list of (tick, "on"/"off", channel, pitch, velocity) events, in the order given."""
    mid = mido.MidiFile(ticks_per_beat=tpq)
    meta = mido.MidiTrack()
    last = 0
    for tick, mspq in tempos:
        meta.append(mido.MetaMessage("set_tempo", tempo=mspq, time=tick - last))
        last = tick
    mid.tracks.append(meta)
    for events in tracks:
        track, last = mido.MidiTrack(), 0
        for tick, kind, channel, pitch, velocity in events:
            msg = "note_on" if kind == "on" else "note_off"
            track.append(mido.Message(msg, channel=channel, note=pitch, velocity=velocity, time=tick - last))
            last = tick
        mid.tracks.append(track)
    mid.save(str(path))


def _pretty_midi_rows(path: Path) -> np.ndarray:
    pm = pretty_midi.PrettyMIDI(str(path))
    rows = sorted((n.start, n.pitch, n.end, n.velocity, inst.is_drum) for inst in pm.instruments for n in inst.notes)
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def _seqpipe_rows(path: Path) -> np.ndarray:
    n = read_notes(path)
    rows = sorted(zip(n.start, n.pitch, n.end, n.velocity, n.is_drum, strict=True))
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


RESTRUCK = [  # (tick, kind, channel, pitch, velocity) in file order
    (0, "on", 0, 60, 90), (100, "on", 0, 60, 70), (200, "off", 0, 60, 0), (300, "off", 0, 60, 0),  # re-struck
    (400, "on", 0, 62, 80), (400, "off", 0, 62, 0),  # zero-length: pretty_midi drops it
    (500, "on", 0, 64, 60), (600, "off", 0, 64, 0), (600, "on", 0, 64, 61), (700, "off", 0, 64, 0),  # legato
    (800, "on", 0, 65, 50), (850, "on", 0, 65, 51), (900, "on", 0, 65, 52), (1000, "off", 0, 65, 0),
    (1100, "off", 0, 65, 0), (1200, "off", 0, 65, 0),  # three open notes end at the first off
    (1300, "off", 0, 67, 0),  # spurious off
    (1400, "on", 1, 60, 40), (1450, "on", 0, 60, 41), (1500, "off", 1, 60, 0), (1600, "off", 0, 60, 0),  # channels
    (1700, "on", 0, 69, 99),  # never closed: dropped
]


@pytest.mark.parametrize("tempos", [[(0, 500_000)], [(0, 617_283), (960, 400_000), (1455, 731_000)], []])
def test_restruck_pitches_are_paired_as_pretty_midi_pairs_them(tmp_path, tempos):
    path = tmp_path / "restruck.mid"
    drums = [(t, k, 9, p - 24, v) for t, k, _, p, v in RESTRUCK[:16]]
    _mido_file(path, [RESTRUCK, drums], tempos)
    ours, reference = _seqpipe_rows(path), _pretty_midi_rows(path)
    assert ours.shape == reference.shape == (2 * 7 + 2, 5)
    np.testing.assert_array_equal(ours, reference)  # float64 times bit for bit, durations included


def test_random_restruck_files_match_pretty_midi(tmp_path):
    # Random note-ons and note-offs of 4 pitches on 2 channels, many on shared ticks (note-offs first
    # within a tick, as sequencers write legato), every note-on followed by a note-off of its key.
    rng = np.random.default_rng(7)
    for i in range(20):
        events, opened = [], {}
        for _ in range(400):
            key = (int(rng.integers(0, 2)), int(rng.integers(60, 64)))
            kind = "on" if rng.random() < 0.55 else "off"
            opened[key] = opened.get(key, 0) + (1 if kind == "on" else -1)
            events.append((int(rng.integers(0, 1500)), kind, *key, int(rng.integers(1, 128))))
        events.sort(key=lambda e: (e[0], e[1] == "on"))
        events += [(2000, "off", *key, 0) for key, n in opened.items() for _ in range(max(n, 0) + 400)]
        path = tmp_path / f"r{i}.mid"
        _mido_file(path, [events], [(0, int(rng.integers(300_000, 900_000))), (700, 450_000)])
        np.testing.assert_array_equal(_seqpipe_rows(path), _pretty_midi_rows(path))


def test_documented_differences_from_pretty_midi(tmp_path):
    # symusic drops a note-on that never gets a note-off of its own (first in, first out), so a
    # note pretty_midi would end at another note's note-off is lost; documented in docs/features.md.
    path = tmp_path / "unclosed.mid"
    _mido_file(path, [[(0, "on", 0, 60, 90), (10, "on", 0, 60, 91), (20, "off", 0, 60, 0)]], [(0, 500_000)])
    assert _pretty_midi_rows(path)[:, 0].tolist() == [0.0, 10 / 960]
    assert _seqpipe_rows(path)[:, 0].tolist() == [0.0]


def test_quantised_drum_take_has_exactly_zero_micro_timing(tmp_path):
    # 97 bpm, 480 ticks per beat, every hit exactly on a 16th (120 ticks): the offsets must be 0, not
    # float32 rounding noise that standardisation would blow up.
    path = tmp_path / "quantised.mid"
    events = []
    for step in range(64):
        for pitch in (36, 42) if step % 2 == 0 else (38,):
            events += [(step * 120, "on", 9, pitch, 100), (step * 120 + 60, "off", 9, pitch, 0)]
    events.sort(key=lambda e: (e[0], e[1] == "on"))
    _mido_file(path, [events], [(0, round(6e7 / 97))])
    notes = read_notes(path)
    assert notes.start.dtype == np.float64
    np.testing.assert_array_equal(np.sort(notes.start), np.sort(_pretty_midi_rows(path)[:, 0]))
    bpm = 6e7 / round(6e7 / 97)
    grid = drum_grid(notes, bpm=bpm)
    assert grid.shape == (64, 3 * K)
    assert np.all(grid[:, 2 * K :] == 0.0)
    g = groove_features(notes, bpm=bpm)
    assert g[GROOVE_NAMES.index("offset_abs_mean")] == 0.0 and g[GROOVE_NAMES.index("offset_std")] == 0.0


# --- The compiled kernels against plain numpy (bit for bit) ------------------------------------------

from seqpipe.features import midi_kernels  # noqa: E402
from seqpipe.features.midi import _notes_of_tracks, _tempo_map  # noqa: E402


def _numpy_read(path: Path) -> Notes:
    """read_notes through the numpy path only (what every file took before the one-pass kernel)."""
    import symusic

    score = symusic.Score(str(path), ttype="tick")
    tracks = [(t.notes.numpy(), bool(t.is_drum)) for t in score.tracks if len(t.notes)]
    tempos = score.tempos.numpy()
    return _notes_of_tracks(path, tracks, _tempo_map(tempos["time"], tempos["mspq"], score.ticks_per_quarter))


def _one_pass_taken(path: Path) -> bool:
    import symusic

    score = symusic.Score(str(path), ttype="tick")
    tempos = score.tempos.numpy()
    tracks = [t.notes.numpy() for t in score.tracks if len(t.notes)]
    if len(tracks) != 1:
        return False
    a = tracks[0]
    tempo_map = _tempo_map(tempos["time"], tempos["mspq"], score.ticks_per_quarter)
    return bool(midi_kernels.read_one_track(a["time"], a["duration"], a["pitch"], a["velocity"], False, *tempo_map)[0])


def _assert_same_notes(a: Notes, b: Notes) -> None:
    for field in ("start", "end", "pitch", "velocity", "is_drum"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype, field
        np.testing.assert_array_equal(x, y, err_msg=field)


def test_one_pass_and_numpy_paths_read_the_same_notes(tmp_path):
    # One-track files with re-struck pitches and zero-length notes, some with tempo changes. Note-offs
    # written after the note-ons of their tick make symusic's ends of a pitch fall out of step with
    # its starts, which sends a file down the numpy path; the others take the one-pass kernel.
    rng = np.random.default_rng(11)
    taken = []
    for i in range(24):
        events = []
        for _ in range(300):
            pitch, tick = int(rng.integers(60, 66)), int(rng.integers(0, 4000))
            events.append((tick, "on", 0, pitch, int(rng.integers(1, 128))))
            events.append((tick + int(rng.choice([0, 1, 50, int(rng.integers(1, 900))])), "off", 0, pitch, 0))
        offs_first = i % 2 == 0
        events.sort(key=lambda e: (e[0], (e[1] == "on") if offs_first else (e[1] == "off")))
        tempos = [(0, int(rng.integers(300_000, 900_000)))] + ([(1000, 450_000), (2500, 700_000)] if i % 3 else [])
        path = tmp_path / f"one_track_{i}.mid"
        _mido_file(path, [events], tempos)
        _assert_same_notes(read_notes(path), _numpy_read(path))
        taken.append(_one_pass_taken(path))
    assert any(taken) and not all(taken)  # both paths were exercised


def _random_notes(rng: np.random.Generator, n: int, *, ordered: bool = True, quantum: float = 0.0) -> Notes:
    """Hand-made notes: clusters of one pitch overlapping each other, drums, very short notes."""
    start = rng.uniform(0.0, 60.0, n)
    length = rng.choice([0.001, 0.05, 0.5, 3.0], n) * rng.uniform(0.5, 1.5, n)
    if quantum:
        start, length = np.round(start / quantum) * quantum, np.maximum(np.round(length / quantum), 1) * quantum
    order = np.argsort(start, kind="stable") if ordered else rng.permutation(n)
    pitch = rng.choice([60, 61, 62, 36, 100], n).astype(np.int16)  # few pitches: many overlaps
    return Notes(start[order], (start + length)[order], pitch[order], rng.integers(1, 128, n).astype(np.int16)[order],
                 (rng.random(n) < 0.2)[order])


def _reference_roll(notes: Notes, fps: float) -> np.ndarray:
    tonal = notes.select(~notes.is_drum)
    first = (tonal.start * fps).astype(np.int64)
    stop = np.maximum((tonal.end * fps).astype(np.int64), first + 1)
    roll = np.zeros((stop.max(), 128), dtype=np.float32)
    for a, b, p, v in zip(first, stop, tonal.pitch, tonal.velocity, strict=True):
        roll[a:b, p] = np.maximum(roll[a:b, p], np.float32(v) / np.float32(127.0))
    return roll


@pytest.mark.parametrize("ordered", [True, False])
def test_piano_roll_matches_a_plain_reference(ordered):
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 300, 3000):
        notes = _random_notes(rng, n, ordered=ordered)
        if notes.is_drum.all():
            continue
        for fps in (1.0, 8.0, 31.25, 100.0):
            np.testing.assert_array_equal(piano_roll(notes, fps), _reference_roll(notes, fps))


def test_piano_roll_rejects_notes_it_cannot_place():
    def one(start: float, pitch: int) -> Notes:
        return Notes(np.array([start]), np.array([start + 1.0]), np.array([pitch], np.int16),
                     np.array([64], np.int16), np.array([False]))

    for bad in (one(-1.0, 60), one(0.0, 128), one(0.0, -1), one(np.nan, 60)):
        with pytest.raises(ValueError, match="0..127"):
            piano_roll(bad, fps=10.0)


def _reference_dynamics(notes: Notes) -> np.ndarray:
    """The numpy formulation of dynamics_features (velocity statistics from the histogram)."""
    n = len(notes)
    counts = np.bincount(np.clip(notes.velocity, 0, 127), minlength=128).astype(np.float64)
    values = np.arange(128, dtype=np.float64)
    mean = counts @ values / n
    std = np.sqrt(max(counts @ np.square(values - mean) / n, 0.0))
    used = np.flatnonzero(counts)
    cumulative = np.cumsum(counts)
    low, high = np.searchsorted(cumulative, [(n - 1) // 2 + 1, n // 2 + 1])
    length = notes.end - notes.start
    ioi = np.diff(np.unique(notes.start))
    duration = notes.end.max()
    return np.asarray([
        mean / 127.0, std / 127.0, (used[-1] - used[0]) / 127.0, (low + high) / 2.0 / 127.0,
        *(counts.reshape(4, 32).sum(axis=1) / n),
        length.mean(), length.std(), np.median(length),
        ioi.mean() if ioi.size else 0.0, ioi.std() if ioi.size else 0.0,
        counts[values > mean + std].sum() / n if std > 0 else 0.0, n / duration if duration > 0 else 0.0, duration,
    ], dtype=np.float32)


@pytest.mark.parametrize("ordered", [True, False])
def test_dynamics_and_pitch_distribution_match_numpy_bit_for_bit(ordered):
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 8, 127, 128, 129, 1000, 5500, 20_001):
        for quantum in (0.0, 0.125):  # quantised: many equal lengths and shared onsets
            notes = _random_notes(rng, n, ordered=ordered, quantum=quantum)
            np.testing.assert_array_equal(dynamics_features(notes), _reference_dynamics(notes))
            if not notes.is_drum.all():
                counts = np.bincount(notes.pitch[~notes.is_drum], minlength=128)
                np.testing.assert_array_equal(pitch_distribution(notes), (counts / counts.sum()).astype(np.float32))


def test_summation_and_median_kernels_match_numpy():
    rng = np.random.default_rng(9)
    for n in (*range(0, 300), 1000, 4097, 8192, 8193, 65_537):
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3) + rng.uniform(-5, 5)
        assert midi_kernels._pairwise_sum(x) == np.add.reduce(x)
        assert midi_kernels._mean_std(x) == ((x.mean(), x.std()) if n else (0.0, 0.0))
        if n:
            for values in (x, np.round(x), -np.abs(x), np.full(n, 0.25)):  # signs, ties, all equal
                assert midi_kernels._median(values) == np.median(values)
    x = rng.standard_normal(1000)
    ordered = x.copy()
    midi_kernels._heapsort(ordered)
    np.testing.assert_array_equal(ordered, np.sort(x))
