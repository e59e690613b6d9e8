"""Offline demo data: real layouts and quirks, loadable by the dataset modules, reproducible, learnable."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from seqpipe.raw import demo
from seqpipe.raw.demo import common as demo_common
from seqpipe.raw.demo import deam as deam_demo_gen
from seqpipe.raw.demo import groove as groove_demo_gen
from seqpipe.raw.demo import maestro as maestro_demo_gen
from seqpipe.datasets import deam, groove, maestro

SEED = 7
DEAM_SECONDS = 16.0


@pytest.fixture(scope="module")
def groove_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.generate("groove", tmp_path_factory.mktemp("groove"), n_items=30, seed=SEED)


@pytest.fixture(scope="module")
def maestro_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.generate("maestro", tmp_path_factory.mktemp("maestro"), n_items=20, seed=SEED)


@pytest.fixture(scope="module")
def deam_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.generate("deam", tmp_path_factory.mktemp("deam"), n_items=6, seed=SEED, duration_s=DEAM_SECONDS)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- groove


def test_groove_layout_matches_the_real_archive(groove_demo: Path) -> None:
    root = groove_demo
    assert root.name == "groove" and (root.parent / "README.txt").is_file()
    lines = (root / "info.csv").read_text(encoding="utf-8").splitlines()
    assert (
        lines[0] == "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split"
    )
    rows = read_rows(root / "info.csv")
    assert len(rows) == 30
    pattern = re.compile(
        r"^(drummer(\d+))/(session\d|eval_session)/(\d+)_([a-z]+)-(groove\d)_(\d+)_(beat|fill)_4-4\.mid$"
    )
    for row in rows:
        match = pattern.match(row["midi_filename"])
        assert match, row["midi_filename"]
        assert 1 <= int(match.group(2)) <= 10 and row["drummer"] == match.group(1)
        assert (
            row["session"] == f"{match.group(1)}/{match.group(3)}" and row["id"] == f"{row['session']}/{match.group(4)}"
        )
        assert row["style"] == f"{match.group(5)}/{match.group(6)}" and row["bpm"] == match.group(7)
        assert row["beat_type"] == match.group(8) and row["time_signature"] == "4-4"
        assert row["audio_filename"] == "" and 80 <= int(row["bpm"]) <= 140
        assert row["split"] in {"train", "validation", "test"}
        assert abs(float(row["duration"]) - 8 * 4 * 60 / int(row["bpm"])) < 1e-9
        assert (root / row["midi_filename"]).is_file()
    styles_per_split = {
        s: {r["style"].split("/")[0] for r in rows if r["split"] == s} for s in ("train", "validation", "test")
    }
    assert all(len(styles) == 5 for styles in styles_per_split.values()), styles_per_split
    assert Counter(r["beat_type"] for r in rows)["beat"] > 15


@pytest.mark.parametrize("dataset,n_items,fractions", [("groove", 50, (0.8, 0.1, 0.1)), ("maestro", 20, (0.7, 0.15, 0.15))])
def test_demo_splits_are_stratified_by_class(dataset: str, n_items: int, fractions: tuple, tmp_path: Path) -> None:
    from seqpipe.datasets import get_dataset

    root = demo.generate(dataset, tmp_path, n_items=n_items, seed=SEED)
    items = get_dataset(dataset).load_items(root)
    label = "style" if dataset == "groove" else "composer"
    per_class = Counter((i.labels[label], i.split) for i in items)
    classes = {i.labels[label] for i in items}
    size = n_items // len(classes)
    expected = dict(zip(("train", "val", "test"), demo_common.stratified_counts(size, fractions)))
    for cls in classes:
        assert {s: per_class[(cls, s)] for s in ("train", "val", "test")} == expected, cls
    assert len({i.item_id for i in items}) == n_items  # each source item sits in one split


def test_groove_midi_is_one_drum_track_at_the_take_tempo(groove_demo: Path) -> None:
    row = read_rows(groove_demo / "info.csv")[0]
    pm = pretty_midi.PrettyMIDI(str(groove_demo / row["midi_filename"]))
    assert len(pm.instruments) == 1 and pm.instruments[0].is_drum and pm.instruments[0].program == 0
    assert pm.get_tempo_changes()[1][0] == pytest.approx(int(row["bpm"]), rel=1e-3)
    pitches = {n.pitch for n in pm.instruments[0].notes}
    assert pitches <= set(groove_demo_gen.DRUM_PITCH.values()) and 36 in pitches
    assert pm.get_end_time() <= float(row["duration"]) + 0.5


def test_groove_demo_loads_back(groove_demo: Path) -> None:
    items = groove.load_items(groove.find_root(groove_demo.parent))
    assert len(items) == 30 and all(i.path.is_file() for i in items)
    assert {i.labels["style"] for i in items} == set(groove_demo_gen.GROOVE_STYLES)
    assert {i.split for i in items} == {"train", "val", "test"}


def onset_histogram(path: Path, bpm: float) -> np.ndarray:
    """Hits per bar-folded 16th step for kick, snare-like and cymbal-like drums (3 x 16)."""
    classes = {36: 0, 38: 1, 37: 1, 42: 2, 44: 2, 46: 2, 51: 2}
    hist = np.zeros((3, 16))
    for note in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes:
        if note.pitch in classes:
            hist[classes[note.pitch], int(round(note.start / (15.0 / bpm))) % 16] += 1
    return (hist / 8).ravel()


def test_groove_style_is_learnable_from_the_rhythm(groove_demo: Path) -> None:
    items = groove.load_items(groove_demo)
    x = np.array([onset_histogram(i.path, i.labels["bpm"]) for i in items])
    y = np.array([i.labels["style"] for i in items])
    train = np.array([i.split == "train" for i in items])
    centroids = {s: x[train & (y == s)].mean(axis=0) for s in set(y)}
    assert np.ptp([c[:16].sum() for c in centroids.values()]) > 0.5  # kicks per bar differ between styles
    predicted = [min(centroids, key=lambda s: np.linalg.norm(v - centroids[s])) for v in x[~train]]
    accuracy = np.mean(np.array(predicted) == y[~train])
    majority = max(Counter(y[~train]).values()) / (~train).sum()
    assert accuracy >= 0.5 > majority + 0.2, (accuracy, majority)
    hiphop, rock = x[y == "hiphop"], x[y == "rock"]
    assert not np.allclose(hiphop[0], hiphop[1])  # takes of a style are not copies


# ----------------------------------------------------------------------------- maestro


def test_maestro_layout_matches_the_real_archive(maestro_demo: Path) -> None:
    root = maestro_demo
    assert root.name == "maestro-v3.0.0" and (root.parent / "README.txt").is_file()
    header = (root / "maestro-v3.0.0.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"
    rows = read_rows(root / "maestro-v3.0.0.csv")
    assert len(rows) == 20
    for row in rows:
        assert re.match(rf"^{row['year']}/MIDI-Unprocessed_[^/]+_wav\.midi$", row["midi_filename"]), row[
            "midi_filename"
        ]
        assert (root / row["midi_filename"]).is_file()
        assert row["audio_filename"] == row["midi_filename"][: -len(".midi")] + ".wav"
        assert not (root / row["audio_filename"]).exists()  # MIDI-only release
        assert int(row["year"]) in maestro_demo_gen.MAESTRO_YEARS and 25.0 <= float(row["duration"]) <= 50.0
    composers = {c.name for c in maestro_demo_gen.COMPOSERS.values()}
    for split in ("train", "validation", "test"):
        assert {r["canonical_composer"] for r in rows if r["split"] == split} == composers, split


def test_maestro_json_is_column_oriented_and_matches_the_csv(maestro_demo: Path) -> None:
    table = json.loads((maestro_demo / "maestro-v3.0.0.json").read_text(encoding="utf-8"))
    assert list(table) == list(maestro.COLUMNS)
    assert all(list(column) == [str(i) for i in range(20)] for column in table.values())
    assert isinstance(table["year"]["0"], int) and isinstance(table["duration"]["0"], float)
    assert maestro.load_metadata_json(maestro_demo / "maestro-v3.0.0.json") == read_rows(
        maestro_demo / "maestro-v3.0.0.csv"
    )


def test_maestro_demo_loads_back_as_piano(maestro_demo: Path) -> None:
    items = maestro.load_items(maestro.find_root(maestro_demo.parent))
    assert len(items) == 20 and all(i.path.suffix == ".midi" and i.path.is_file() for i in items)
    assert all(i.item_id == i.path.relative_to(maestro_demo).with_suffix("").as_posix() for i in items)
    pm = pretty_midi.PrettyMIDI(str(items[0].path))
    assert [(ins.program, ins.is_drum) for ins in pm.instruments] == [(0, False)]


def piano_features(path: Path) -> np.ndarray:
    notes = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    pitch = np.array([n.pitch for n in notes], dtype=float)
    velocity = np.array([n.velocity for n in notes], dtype=float)
    length = np.array([n.end - n.start for n in notes])
    span = max(n.end for n in notes)
    return np.array(
        [pitch.mean(), pitch.std(), len(notes) / span, velocity.mean(), velocity.std(), np.log(length.mean())]
    )


def test_maestro_composer_is_learnable(maestro_demo: Path) -> None:
    items = maestro.load_items(maestro_demo)
    x = np.array([piano_features(i.path) for i in items])
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = np.array([i.labels["composer"] for i in items])
    correct = 0
    for k in range(len(items)):  # leave-one-out nearest centroid
        rest = np.arange(len(items)) != k
        centroids = {c: x[rest & (y == c)].mean(axis=0) for c in set(y)}
        correct += min(centroids, key=lambda c: np.linalg.norm(x[k] - centroids[c])) == y[k]
    assert correct / len(items) >= 0.6, correct


# ----------------------------------------------------------------------------- deam


def test_deam_layout_and_header_quirks(deam_demo: Path) -> None:
    root = deam_demo
    assert (root / "README.txt").is_file()
    names = sorted(p.name for p in (root / "MEMD_audio").iterdir())
    ids = sorted(int(n.removesuffix(".mp3")) for n in names)
    assert all(n.endswith(".mp3") for n in names) and len(ids) == 6
    assert ids[0] == 2 and ids[-1] > 2000 and ids[-2] <= 2000
    first = (root / deam.STATIC_FILES[0]).read_text().splitlines()
    second = (root / deam.STATIC_FILES[1]).read_text().splitlines()
    assert first[0] == "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
    assert second[0].startswith("song_id, valence_mean, valence_std, valence_max_mean,")
    assert "arousal_max_ mean" in second[0] and len(second[0].split(",")) == 13
    assert [int(r.split(",")[0]) for r in first[1:]] == ids[:-1] and [int(r.split(",")[0]) for r in second[1:]] == ids[
        -1:
    ]
    for name in ("valence.csv", "arousal.csv"):
        lines = (root / deam.DYNAMIC_DIR / name).read_text().splitlines()
        assert lines[0].startswith("song_id,sample_15000ms,sample_15500ms,")
        assert {len(line.split(",")) for line in lines} == {len(lines[0].split(","))}  # padded to the header
        assert lines[1].endswith(",,")  # a clip row is shorter than the full song's


def test_deam_audio_quirks(deam_demo: Path) -> None:
    infos = {p.stem: sf.info(str(p)) for p in (deam_demo / "MEMD_audio").glob("*.mp3")}
    assert all(info.format == "MP3" for info in infos.values())
    assert Counter(i.samplerate for i in infos.values()) == {44_100: 5, 48_000: 1}
    assert Counter(i.channels for i in infos.values()) == {2: 5, 1: 1}
    for song, info in infos.items():
        assert info.duration == pytest.approx(DEAM_SECONDS * (1.5 if int(song) > 2000 else 1.0), abs=0.1)


def test_deam_demo_loads_back_with_labels_from_the_generator(deam_demo: Path) -> None:
    items = deam.load_items(deam.find_root(deam_demo))
    assert len(items) == 6
    ids = sorted((int(i.item_id) for i in items))
    for index, song in enumerate(ids):
        f = deam_demo_gen.song_factors(demo_common.item_rng(SEED, "deam", index))
        labels = next(i.labels for i in items if i.item_id == str(song))
        assert labels == pytest.approx({"valence_mean": f.valence_mean, "valence_std": f.valence_std,
                                        "arousal_mean": f.arousal_mean, "arousal_std": f.arousal_std})  # fmt: skip
    dynamic = deam.load_dynamic(deam_demo)
    assert len(dynamic[str(ids[0])]["valence"]) == 2 and len(dynamic[str(ids[-1])]["arousal"]) == 18
    assert all(np.all(np.abs(d["valence"]) <= 1) for d in dynamic.values())


def test_deam_labels_follow_the_generating_factors() -> None:
    rng = np.random.default_rng(0)
    draws = [deam_demo_gen.song_factors(rng) for _ in range(400)]
    corr = lambda a, b: np.corrcoef([getattr(d, a) for d in draws], [float(getattr(d, b)) for d in draws])[
        0, 1
    ]  # noqa: E731
    assert corr("valence_mean", "major") > 0.3 and corr("valence_mean", "brightness") > 0.6
    assert corr("arousal_mean", "tempo") > 0.5 and corr("arousal_mean", "loudness") > 0.5
    assert abs(corr("valence_mean", "tempo")) < 0.2
    assert all(1 <= d.valence_mean <= 9 and 0 < d.valence_std < 2 for d in draws)


def spectral_centroid(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.sum(spectrum * np.fft.rfftfreq(len(audio), 1 / rate)) / np.sum(spectrum))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deam_audio_carries_the_factors(seed: int) -> None:
    """Same song, one factor changed: brightness raises the centroid, loudness the level, tempo the onsets."""
    f = deam_demo_gen.song_factors(np.random.default_rng(seed))

    def render(**change: float) -> np.ndarray:
        return deam_demo_gen.render_song(np.random.default_rng(100 + seed), dataclasses.replace(f, **change), 8.0, 22_050)

    assert spectral_centroid(render(brightness=0.9), 22_050) > 1.15 * spectral_centroid(render(brightness=0.1), 22_050)
    level = {x: 10 * np.log10(np.mean(render(loudness=x) ** 2)) for x in (0.1, 0.9)}
    assert level[0.9] - level[0.1] == pytest.approx(17 * 0.8, abs=0.01)
    onsets = {bpm: np.sum(np.diff(np.abs(render(tempo=bpm)) > 0.02 * 10 ** (-20 / 20 + 17 * f.loudness / 20)) == 1)
              for bpm in (70.0, 150.0)}  # fmt: skip
    assert onsets[150.0] > onsets[70.0]


# ----------------------------------------------------------------------------- reproducibility and entry points

SMALL = {"groove": dict(n_items=6), "maestro": dict(n_items=4), "deam": dict(n_items=4, duration_s=DEAM_SECONDS)}


@pytest.mark.parametrize("dataset", ["groove", "maestro", "deam"])
def test_same_seed_gives_identical_bytes_another_seed_differs(dataset: str, tmp_path: Path) -> None:
    runs = {name: tmp_path / name for name in ("a", "b", "other")}
    for name, folder in runs.items():
        demo.generate(dataset, folder, seed=3 if name != "other" else 4, **SMALL[dataset])
    a, b, other = (tree_digest(folder) for folder in runs.values())
    assert a == b and len(a) >= 4
    data_files = [k for k in a if k.endswith((".mid", ".midi", ".mp3"))]
    assert data_files and any(other.get(k) != a[k] for k in data_files)
    assert a["README.txt"] != other["README.txt"]


def test_deam_parallel_encoding_gives_the_same_bytes(tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    demo.generate("deam", serial, seed=2, workers=1, **SMALL["deam"])
    demo.generate("deam", parallel, seed=2, workers=2, **SMALL["deam"])
    assert tree_digest(serial) == tree_digest(parallel)


def test_main_writes_the_demo_and_its_manifest(tmp_path: Path) -> None:
    out, manifest = tmp_path / "raw" / "groove", tmp_path / "raw" / "groove.manifest.json"
    demo.main(["--dataset", "groove", "--out", str(out), "--n-items", "3", "--seed", "1", "--manifest", str(manifest)])
    assert len(read_rows(out / "groove" / "info.csv")) == 3
    assert "seed 1" in (out / "README.txt").read_text()
    listed = json.loads(manifest.read_text())
    assert listed["dataset"] == "groove" and listed["source"] == "demo" and "info.csv" in listed["files"]
    assert (manifest.parent / listed["root"]).resolve() == (out / "groove").resolve()


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        demo.generate("mnist", tmp_path, n_items=2, seed=0)
    with pytest.raises(ValueError, match="n_items"):
        demo.generate("groove", tmp_path, n_items=0, seed=0)


def test_lakh_demo_is_named_by_md5_with_a_few_corrupt_files(tmp_path: Path) -> None:
    import hashlib

    from seqpipe.datasets import lakh

    root = demo.generate("lakh", tmp_path, n_items=50, seed=0)
    files = sorted(root.glob("*/*.mid"))
    assert len(files) == 50 and root.name == "lmd_full"
    assert all(f.stem == hashlib.md5(f.read_bytes()).hexdigest() and f.parent.name == f.stem[0] for f in files)
    items = lakh.load_items(tmp_path)
    assert {i.split for i in items} == {"train", "val", "test"} and all(i.labels == {} for i in items)
    broken = [f for f in files if not f.read_bytes().endswith(b"\xff/\x00")]  # no end-of-track: cut short
    assert len(broken) == 2
