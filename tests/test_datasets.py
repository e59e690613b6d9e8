"""Dataset modules on small hand-written copies of the real layouts (quirks included)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from seqpipe.datasets import SPLITS, dataset_names, get_dataset
from seqpipe.datasets import deam, groove, maestro

# ----------------------------------------------------------------------------- helpers

GROOVE_HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split"


def write_groove(parent: Path, rows: list[str], *, header: str = GROOVE_HEADER, touch: bool = True) -> Path:
    """A `groove/` folder with `info.csv` holding `rows`, and (empty) MIDI files for them."""
    root = parent / "groove"
    root.mkdir(parents=True)
    (root / "info.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    if touch:
        for row in rows:
            midi = root / row.split(",")[7]
            midi.parent.mkdir(parents=True, exist_ok=True)
            midi.write_bytes(b"")
    return root


GROOVE_ROWS = [
    "drummer1,drummer1/eval_session,drummer1/eval_session/1,funk/groove1,138,beat,4-4,"
    "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid,drummer1/eval_session/1_funk-groove1_138_beat_4-4.wav,"
    "27.872308249999998,test",
    "drummer1,drummer1/eval_session,drummer1/eval_session/10,soul/groove10,102,beat,4-4,"
    "drummer1/eval_session/10_soul-groove10_102_beat_4-4.mid,,37.6,validation",
    "drummer10,drummer10/session1,drummer10/session1/2,rock,120,fill,4-4,"
    "drummer10/session1/2_rock_120_fill_4-4.mid,,2.0,train",
]

MAESTRO_COLUMNS = [
    "canonical_composer",
    "canonical_title",
    "split",
    "year",
    "midi_filename",
    "audio_filename",
    "duration",
]
MAESTRO_RECORDS = [
    ["Frédéric Chopin", "Ballade No. 1 in G Minor, Op. 23", "train", 2004,
     "2004/MIDI-Unprocessed_XP_04_R1_2004_01-02_ORIG_MID--AUDIO_04_R1_2004_02_Track02_wav.midi",
     "2004/MIDI-Unprocessed_XP_04_R1_2004_01-02_ORIG_MID--AUDIO_04_R1_2004_02_Track02_wav.wav", 545.6],
    ["Alban Berg", "Sonata Op. 1", "validation", 2018,
     "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.midi",
     "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.wav", 698.66],
    ["Johann Sebastian Bach", 'Prelude and Fugue in C Major, WTC I, BWV 846 "48"', "test", 2011,
     "2011/MIDI-Unprocessed_01_R1_2011_MID--AUDIO_R1-D1_02_Track02_wav.midi",
     "2011/MIDI-Unprocessed_01_R1_2011_MID--AUDIO_R1-D1_02_Track02_wav.wav", 220.0],
]  # fmt: skip


def write_maestro(parent: Path, *, csv_file: bool = True, json_file: bool = True) -> Path:
    """A `maestro-v3.0.0/` folder with the metadata files and empty `.midi` files."""
    import csv

    root = parent / "maestro-v3.0.0"
    root.mkdir(parents=True)
    if csv_file:
        with open(root / "maestro-v3.0.0.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(MAESTRO_COLUMNS)
            writer.writerows(MAESTRO_RECORDS)
    if json_file:
        # column-oriented, rows deliberately not in numeric key order
        table = {
            c: {str(i): rec[k] for i, rec in reversed(list(enumerate(MAESTRO_RECORDS)))}
            for k, c in enumerate(MAESTRO_COLUMNS)
        }
        (root / "maestro-v3.0.0.json").write_text(json.dumps(table), encoding="utf-8")
    for rec in MAESTRO_RECORDS:
        (root / rec[4]).parent.mkdir(parents=True, exist_ok=True)
        (root / rec[4]).write_bytes(b"")
    return root


STATIC_1 = (
    "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n"
    "2,3.1,0.94,3,0.63\n3,3.5,1.75,3.3,1.62\n5,5.7,1.42,5.5,1.63\n"
)
STATIC_2 = (
    "song_id, valence_mean, valence_std, valence_max_mean, valence_max_std, valence_min_mean, valence_min_std, "
    "arousal_mean, arousal_std, arousal_max_ mean, arousal_max_std, arousal_min_mean, arousal_min_std\n"
    "2001, 5.4, 1.1, 6.2, 0.9, 4.1, 0.8, 6.6, 1.2, 7.3, 0.7, 5.2, 0.9\n"
    "2002,3.2,0.7,4.4,0.6,2.0,0.5,2.8,0.9,3.9,0.8,1.9,0.6\n"
)
VALENCE = "song_id,sample_15000ms,sample_15500ms,sample_16000ms\n2,-0.1,0.2,0.3\n3,0.5,,\n2001,0.1,0.2,\n"
AROUSAL = "song_id,sample_15000ms,sample_15500ms,sample_16000ms\n2,0.4,0.4,0.5\n2001,-0.2,NaN,\n"


def write_deam(parent: Path, audio: dict[int, str]) -> Path:
    """A DEAM root: the quirky static pair, dynamic files, and audio files `{song_id: extension}`."""
    song_level = parent / "annotations" / "annotations averaged per song" / "song_level"
    dynamic = parent / "annotations" / "annotations averaged per song" / "dynamic (per second annotations)"
    song_level.mkdir(parents=True)
    dynamic.mkdir(parents=True)
    (song_level / "static_annotations_averaged_songs_1_2000.csv").write_text(STATIC_1)
    (song_level / "static_annotations_averaged_songs_2000_2058.csv").write_text(STATIC_2)
    (dynamic / "valence.csv").write_text(VALENCE)
    (dynamic / "arousal.csv").write_text(AROUSAL)
    (parent / "MEMD_audio").mkdir()
    for song, ext in audio.items():
        (parent / "MEMD_audio" / f"{song}{ext}").write_bytes(b"")
    return parent


# ----------------------------------------------------------------------------- registry and constants


@pytest.mark.parametrize("name", ["groove", "maestro", "deam"])
def test_every_dataset_module_has_the_common_surface(name: str) -> None:
    module = get_dataset(name)
    assert name in dataset_names() and module.NAME == name
    assert module.HOME.startswith("https://") and module.LICENSE_INFO
    for remote in module.REMOTES.values():
        assert remote["url"].startswith("https://") and remote["url"].endswith(remote["filename"])
        assert isinstance(remote["bytes"], int) and remote["bytes"] > 0 and len(remote["sha256"]) == 64
    assert callable(module.find_root) and callable(module.load_items)


def test_remotes_hold_the_verified_sizes_and_checksums() -> None:
    assert groove.REMOTES["midi"]["bytes"] == 3_260_318
    assert groove.REMOTES["midi"]["sha256"].startswith("651cbc52")
    assert maestro.REMOTES["midi"]["bytes"] == 58_416_533
    assert maestro.REMOTES["midi"]["sha256"].startswith("70470ee2")
    assert [deam.REMOTES[k]["bytes"] for k in ("audio", "annotations", "metadata")] == [
        1_343_203_527,
        4_735_283,
        344_760,
    ]


# ----------------------------------------------------------------------------- groove


def test_groove_items_labels_and_split_mapping(tmp_path: Path) -> None:
    root = write_groove(tmp_path, GROOVE_ROWS)
    items = groove.load_items(root)
    assert [i.item_id for i in items] == sorted(i.item_id for i in items) == [
        "drummer1/eval_session/1", "drummer1/eval_session/10", "drummer10/session1/2"]  # fmt: skip
    first, second, third = items
    assert first.labels == {
        "style": "funk",
        "bpm": 138.0,
        "beat_type": "beat",
        "drummer": "drummer1",
        "time_signature": "4-4",
    }
    assert isinstance(first.labels["bpm"], float)
    assert (first.split, second.split, third.split) == ("test", "val", "train")
    assert second.labels["style"] == "soul" and third.labels["style"] == "rock"  # no secondary style
    assert third.path == root / "drummer10/session1/2_rock_120_fill_4-4.mid"
    assert third.labels["beat_type"] == "fill"


def test_groove_empty_audio_filename_is_kept_as_empty(tmp_path: Path) -> None:
    root = write_groove(tmp_path, GROOVE_ROWS)
    rows = groove.load_metadata(root)
    assert [r["audio_filename"] for r in rows][1:] == ["", ""]
    assert len(groove.load_items(root)) == 3


def test_groove_find_root_accepts_the_folder_or_its_parent(tmp_path: Path) -> None:
    root = write_groove(tmp_path, GROOVE_ROWS)
    assert groove.find_root(tmp_path) == root
    assert groove.find_root(root) == root
    with pytest.raises(FileNotFoundError, match=r"info\.csv.*datasets\.groove\.root"):
        groove.find_root(tmp_path / "elsewhere")


def test_groove_missing_column_is_named(tmp_path: Path) -> None:
    header = GROOVE_HEADER.replace(",split", "")
    root = write_groove(tmp_path, [r.rsplit(",", 1)[0] for r in GROOVE_ROWS], header=header)
    with pytest.raises(ValueError, match=r"info\.csv: missing column\(s\) \['split'\]"):
        groove.load_items(root)


def test_groove_bad_bpm_names_file_row_and_column(tmp_path: Path) -> None:
    root = write_groove(tmp_path, [GROOVE_ROWS[0].replace(",138,", ",fast,")])
    with pytest.raises(ValueError, match=r"info\.csv, line 2 .*'bpm' = 'fast'"):
        groove.load_items(root)


def test_groove_unknown_split_is_rejected(tmp_path: Path) -> None:
    root = write_groove(tmp_path, [GROOVE_ROWS[0].replace(",test", ",holdout")])
    with pytest.raises(ValueError, match="holdout"):
        groove.load_items(root)


def test_groove_missing_midi_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = write_groove(tmp_path, GROOVE_ROWS)
    (root / "drummer10/session1/2_rock_120_fill_4-4.mid").unlink()
    with pytest.warns(UserWarning, match=r"1 listed item\(s\) skipped.*missing"):
        items = groove.load_items(root)
    assert [i.item_id for i in items] == ["drummer1/eval_session/1", "drummer1/eval_session/10"]


def test_groove_every_unusable_listed_file_is_in_the_skipped_list(tmp_path: Path) -> None:
    rows = GROOVE_ROWS + [GROOVE_ROWS[2].replace("session1/2", "session1/3").replace("4-4.mid", "4-4.txt")]
    root = write_groove(tmp_path, rows)
    (root / "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid").unlink()  # missing
    (root / "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid").mkdir()  # ... a folder in its place
    (root / "drummer1/eval_session/10_soul-groove10_102_beat_4-4.mid").unlink()  # missing
    index = groove.index(root)
    assert [i.item_id for i in index.items] == ["drummer10/session1/2"]
    by_id = {e["id"]: e for e in index.skipped}
    assert set(by_id) == {"drummer1/eval_session/1", "drummer1/eval_session/10", "drummer10/session1/3"}
    assert all(set(e) == {"id", "path", "reason"} for e in index.skipped)
    assert by_id["drummer1/eval_session/1"]["path"] == "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid"
    assert "a folder where a file is expected" in by_id["drummer1/eval_session/1"]["reason"]
    assert "missing" in by_id["drummer1/eval_session/10"]["reason"]
    assert "not named as Groove MIDI names its files" in by_id["drummer10/session1/3"]["reason"]


def test_manifest_lists_the_skipped_items(tmp_path: Path) -> None:
    from seqpipe.raw.manifest import build_manifest

    root = write_groove(tmp_path, GROOVE_ROWS)
    (root / "drummer10/session1/2_rock_120_fill_4-4.mid").unlink()
    manifest = build_manifest("groove", tmp_path, "root")
    assert manifest["skipped"] == [
        {"id": "drummer10/session1/2", "path": "drummer10/session1/2_rock_120_fill_4-4.mid",
         "reason": "listed in the dataset's metadata but missing; re-extract the archive to get it back"},
    ]  # fmt: skip


def test_groove_duplicate_id_is_an_error(tmp_path: Path) -> None:
    root = write_groove(tmp_path, [GROOVE_ROWS[0], GROOVE_ROWS[0]])
    with pytest.raises(ValueError, match=r"info.csv, line 3 .*is listed twice; ids must be unique"):
        groove.load_items(root)


# ----------------------------------------------------------------------------- maestro


def test_maestro_items_from_the_csv(tmp_path: Path) -> None:
    root = write_maestro(tmp_path)
    items = maestro.load_items(root)
    assert [i.item_id for i in items] == [
        "2004/MIDI-Unprocessed_XP_04_R1_2004_01-02_ORIG_MID--AUDIO_04_R1_2004_02_Track02_wav",
        "2011/MIDI-Unprocessed_01_R1_2011_MID--AUDIO_R1-D1_02_Track02_wav",
        "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1",
    ]
    chopin, bach, berg = items
    assert chopin.labels == {"composer": "Frédéric Chopin", "title": "Ballade No. 1 in G Minor, Op. 23", "year": 2004}
    assert bach.labels["title"] == 'Prelude and Fugue in C Major, WTC I, BWV 846 "48"'
    assert (chopin.split, berg.split, bach.split) == ("train", "val", "test")
    assert chopin.path.suffix == ".midi" and chopin.path.parent.name == "2004"


def test_maestro_column_oriented_json_gives_the_same_records(tmp_path: Path) -> None:
    root = write_maestro(tmp_path)
    from_json = maestro.load_metadata_json(root / "maestro-v3.0.0.json")
    from_csv = maestro.load_metadata_csv(root / "maestro-v3.0.0.csv")
    assert from_json == from_csv
    assert [r["midi_filename"] for r in from_json] == [rec[4] for rec in MAESTRO_RECORDS]  # numeric key order


def test_maestro_falls_back_to_the_json(tmp_path: Path) -> None:
    with_csv = maestro.load_items(write_maestro(tmp_path / "a"))
    json_only_root = write_maestro(tmp_path / "b", csv_file=False)
    assert maestro.find_root(tmp_path / "b") == json_only_root
    json_only = maestro.load_items(json_only_root)
    assert [(i.item_id, i.split, i.labels) for i in json_only] == [(i.item_id, i.split, i.labels) for i in with_csv]


def test_maestro_non_tabular_json_is_rejected_clearly(tmp_path: Path) -> None:
    path = tmp_path / "maestro-v3.0.0.json"
    path.write_text(json.dumps({"midi_filename": ["a.midi"]}))
    with pytest.raises(ValueError, match="column-oriented.*list of row objects"):
        maestro.load_metadata_json(path)


def write_maestro_release(parent: Path, version: str, *, csv_file: bool = True) -> Path:
    """A MAESTRO v1.0.0/v2.0.0 folder: `maestro-<version>.csv` and the row-oriented JSON they shipped."""
    root = write_maestro(parent, csv_file=csv_file, json_file=False)
    renamed = root.with_name(f"maestro-{version}")
    root.rename(renamed)
    if csv_file:
        (renamed / "maestro-v3.0.0.csv").rename(renamed / f"maestro-{version}.csv")
    rows = [dict(zip(MAESTRO_COLUMNS, rec, strict=True)) for rec in MAESTRO_RECORDS]
    (renamed / f"maestro-{version}.json").write_text(json.dumps(rows), encoding="utf-8")
    return renamed


@pytest.mark.parametrize("version", ["v2.0.0", "v1.0.0"])
@pytest.mark.parametrize("csv_file", [True, False])
def test_maestro_v1_and_v2_layouts_are_read(tmp_path: Path, version: str, csv_file: bool) -> None:
    v3 = maestro.load_items(write_maestro(tmp_path / "v3"))
    root = write_maestro_release(tmp_path / "old", version, csv_file=csv_file)
    assert maestro.find_root(tmp_path / "old") == root == maestro.find_root(root)
    index = maestro.index(tmp_path / "old")
    assert index.skipped == []
    assert [(i.item_id, i.split, i.labels) for i in index.items] == [(i.item_id, i.split, i.labels) for i in v3]
    assert all(i.path.is_file() and root in i.path.parents for i in index.items)


def test_maestro_newest_release_wins_in_a_shared_folder(tmp_path: Path) -> None:
    root = write_maestro_release(tmp_path, "v2.0.0")
    (root / "maestro-v3.0.0.csv").write_text(",".join(MAESTRO_COLUMNS) + "\n")  # v3 metadata, no rows
    assert maestro.metadata_source(root).name == "maestro-v3.0.0.csv"
    assert maestro.load_items(root) == []


def test_maestro_find_root_and_its_error(tmp_path: Path) -> None:
    root = write_maestro(tmp_path)
    assert maestro.find_root(tmp_path) == root == maestro.find_root(root)
    with pytest.raises(FileNotFoundError, match=r"maestro-v3\.0\.0\.csv.*datasets\.maestro\.root"):
        maestro.find_root(tmp_path / "nothing")


def test_maestro_item_id_strips_only_the_extension() -> None:
    assert maestro.item_id_of("2004/a.b_c.midi") == "2004/a.b_c"
    assert maestro.item_id_of("2004/noext") == "2004/noext"


# ----------------------------------------------------------------------------- deam


def test_deam_static_files_with_header_quirks_are_merged(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3", 3: ".mp3", 5: ".mp3", 2001: ".mp3", 2002: ".mp3"})
    static = deam.load_static(root)
    assert sorted(static, key=int) == ["2", "3", "5", "2001", "2002"]
    assert static["2"] == {"valence_mean": 3.1, "valence_std": 0.94, "arousal_mean": 3.0, "arousal_std": 0.63}
    assert static["2001"] == {"valence_mean": 5.4, "valence_std": 1.1, "arousal_mean": 6.6, "arousal_std": 1.2}
    assert deam.normalise_header(" arousal_max_ mean") == "arousal_max_mean"


def test_deam_items_labels_paths_and_audio_fallbacks(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3", 3: ".wav", 5: ".flac", 2001: ".mp3", 2002: ".mp3"})
    items = deam.load_items(root)
    assert [i.item_id for i in items] == sorted(["2", "3", "5", "2001", "2002"])
    by_id = {i.item_id: i for i in items}
    assert by_id["3"].path == root / "MEMD_audio" / "3.wav"
    assert by_id["5"].path.suffix == ".flac"
    assert by_id["2002"].labels["arousal_mean"] == 2.8
    assert set(by_id["2"].labels) == {"valence_mean", "valence_std", "arousal_mean", "arousal_std"}
    assert all(i.split in SPLITS and i.split == deam.split_of(i.item_id) for i in items)


def test_deam_songs_without_audio_are_skipped_and_counted(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3", 2001: ".mp3"})
    with pytest.warns(UserWarning, match=r"3 listed item\(s\) skipped.*no audio"):
        items = deam.load_items(root)
    assert [i.item_id for i in items] == ["2", "2001"]
    assert sorted(e["id"] for e in deam.index(root).skipped) == ["2002", "3", "5"]


def test_deam_split_is_a_pure_function_of_the_song_id() -> None:
    splits = {str(s): deam.split_of(str(s)) for s in range(1, 6001)}
    fractions = {k: v / len(splits) for k, v in Counter(splits.values()).items()}
    assert abs(fractions["train"] - 0.70) < 0.03 and abs(fractions["val"] - 0.15) < 0.03
    assert abs(fractions["test"] - 0.15) < 0.03
    assert all(deam.split_of(s) == split for s, split in list(splits.items())[:50])  # stable on repeat


def test_deam_split_does_not_depend_on_the_other_songs(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="no audio"):
        few = {i.item_id: i.split for i in deam.load_items(write_deam(tmp_path / "a", {2: ".mp3", 2001: ".mp3"}))}
    all_ = {
        i.item_id: i.split
        for i in deam.load_items(
            write_deam(tmp_path / "b", {2: ".mp3", 3: ".mp3", 5: ".mp3", 2001: ".mp3", 2002: ".mp3"})
        )
    }
    assert few == {k: all_[k] for k in few}


def test_deam_dynamic_rows_of_varying_length(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3"})
    dynamic = deam.load_dynamic(root)
    assert list(dynamic) == ["2", "3", "2001"]
    np.testing.assert_allclose(dynamic["2"]["valence"], [-0.1, 0.2, 0.3])
    np.testing.assert_allclose(dynamic["3"]["valence"], [0.5])  # empty trailing cells dropped
    np.testing.assert_allclose(dynamic["2001"]["arousal"], [-0.2])  # NaN tail dropped
    assert dynamic["3"]["arousal"].size == 0  # absent from arousal.csv


def test_deam_missing_static_column_names_file_and_column(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3"})
    path = root / deam.STATIC_FILES[0]
    path.write_text(STATIC_1.replace(" arousal_std", " arousal_sd"))
    with pytest.raises(
        ValueError, match=r"static_annotations_averaged_songs_1_2000\.csv: missing column\(s\) \['arousal_std'\]"
    ):
        deam.load_items(root)


def test_deam_bad_value_names_the_line(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3"})
    (root / deam.STATIC_FILES[1]).write_text(STATIC_2.replace("2002,3.2", "2002,high"))
    with pytest.raises(ValueError, match=r"2000_2058\.csv, line 3 \(song 2002\): column 'valence_mean' = 'high'"):
        deam.load_items(root)


def test_deam_find_root_accepts_the_folder_or_its_parent(tmp_path: Path) -> None:
    root = write_deam(tmp_path / "DEAM", {2: ".mp3"})
    assert deam.find_root(tmp_path) == root == deam.find_root(root)
    with pytest.raises(FileNotFoundError, match=r"MEMD_audio/.*annotations/.*datasets\.deam\.root"):
        deam.find_root(tmp_path / "DEAM" / "MEMD_audio")


def test_deam_unpacked_mirror_layouts_are_found(tmp_path: Path) -> None:
    # DEAM_Annotations.zip and DEAM_audio.zip each extracted into a folder of their own name.
    flat = write_deam(tmp_path / "flat", {2: ".mp3", 3: ".mp3"})
    root = tmp_path / "mirror"
    (root / "DEAM_Annotations").mkdir(parents=True)
    (root / "DEAM_audio").mkdir()
    (flat / "annotations").rename(root / "DEAM_Annotations" / "annotations")
    (flat / "MEMD_audio").rename(root / "DEAM_audio" / "MEMD_audio")
    assert deam.find_root(root) == root
    index = deam.index(root)
    assert [i.item_id for i in index.items] == ["2", "3"]
    assert index.items[0].path == root / "DEAM_audio" / "MEMD_audio" / "2.mp3"
    assert {e["id"]: e["path"] for e in index.skipped} == {
        "5": "DEAM_audio/MEMD_audio/5.mp3", "2001": "DEAM_audio/MEMD_audio/2001.mp3", "2002": "DEAM_audio/MEMD_audio/2002.mp3",
    }  # fmt: skip
    assert list(deam.load_dynamic(root)) == ["2", "3", "2001"]


def test_deam_audio_files_that_are_not_items_are_skipped_with_a_reason(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".mp3", 3: ".mp3", 5: ".mp3", 2001: ".mp3", 2002: ".mp3"})
    (root / "MEMD_audio" / "3.mp3").unlink()
    (root / "MEMD_audio" / "3.mp3").mkdir()  # a folder in a file's place
    (root / "MEMD_audio" / "99.mp3").write_bytes(b"")  # no labels
    (root / "MEMD_audio" / "notes.txt").write_bytes(b"")  # not a DEAM name
    (root / "MEMD_audio" / ".DS_Store").write_bytes(b"")  # hidden: ignored
    index = deam.index(root)
    assert [i.item_id for i in index.items] == ["2", "2001", "2002", "5"]
    reasons = {e["path"]: e["reason"] for e in index.skipped}
    assert set(reasons) == {"MEMD_audio/3.mp3", "MEMD_audio/99.mp3", "MEMD_audio/notes.txt"}
    assert "folder" in reasons["MEMD_audio/3.mp3"] and "no static labels" in reasons["MEMD_audio/99.mp3"]
    assert "not named as DEAM names its audio" in reasons["MEMD_audio/notes.txt"]


# ----------------------------------------------------------------------------- lakh and symbolic links


def _lakh_annex(tmp_path: Path) -> tuple[Path, Path]:
    """A git-annex-like Lakh copy: every file a symbolic link into a store outside the tree, one
    hex folder itself a link (DVC), the root reached through a link; plus a dangling link and an odd name."""
    import hashlib

    from seqpipe.raw import demo

    real = demo.generate("lakh", tmp_path / "real", n_items=12, seed=0)
    store, tree = tmp_path / "annex" / "objects", tmp_path / "checkout" / "lmd_full"
    store.mkdir(parents=True)
    for path in sorted(real.glob("*/*.mid")):
        target = store / hashlib.sha256(path.read_bytes()).hexdigest()
        target.write_bytes(path.read_bytes())
        link = tree / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)  # absolute, as the moved folder below must still reach it
    first = sorted(p for p in tree.iterdir())[0]
    moved = tmp_path / "dvc-cache" / first.name
    moved.parent.mkdir()
    first.rename(moved)
    first.symlink_to(moved, target_is_directory=True)
    (tree / "f").mkdir(exist_ok=True)
    (tree / "f" / ("f" * 32 + ".mid")).symlink_to(store / "not-fetched")
    (tree / "f" / "README.txt").write_text("odd")
    link_root = tmp_path / "lakh-link"
    link_root.symlink_to(tree.parent, target_is_directory=True)
    return link_root, real


def test_lakh_symlinked_tree_is_read_through_its_links(tmp_path: Path) -> None:
    from seqpipe.raw.manifest import build_manifest
    from seqpipe.datasets import lakh

    link_root, real = _lakh_annex(tmp_path)
    root = lakh.find_root(link_root)
    assert root == link_root / "lmd_full"
    index = lakh.index(link_root)
    assert sorted(i.item_id for i in index.items) == sorted(p.stem for p in real.glob("*/*.mid"))
    assert all(i.path.parent.parent == root for i in index.items)  # never resolved out of the root
    skipped = {e["path"]: e["reason"] for e in index.skipped}
    assert set(skipped) == {"f/" + "f" * 32 + ".mid", "f/README.txt"}
    assert "symbolic link" in skipped["f/" + "f" * 32 + ".mid"] and "not named" in skipped["f/README.txt"]
    manifest = build_manifest("lakh", link_root, "root")
    assert sorted(manifest["files"]) == sorted([p.relative_to(real).as_posix() for p in real.glob("*/*.mid")] + ["f/README.txt"])
    assert manifest["skipped"] == index.skipped


def test_features_build_on_a_symlinked_lakh_tree(tmp_path: Path) -> None:
    from seqpipe.raw.manifest import build_manifest, write_manifest
    from seqpipe.features.build import build

    link_root, _ = _lakh_annex(tmp_path)
    manifest = tmp_path / "lakh.manifest.json"
    write_manifest(build_manifest("lakh", link_root, "root"), manifest)
    spec = {"name": "lakh_roll", "dataset": "lakh", "kind": "piano_roll", "fps": 8, "target": None, "window": 8,
            "hop": 8, "max_failed_fraction": 0.5, "timeout_s": 30, "limit": None}  # fmt: skip
    report = build(manifest, spec, tmp_path / "l.h5", tmp_path / "l.skipped.json", workers=1)
    skipped = json.loads((tmp_path / "l.skipped.json").read_text())["skipped"]
    assert report["extracted"] == 12 and skipped and all(not e["path"].startswith("..") for e in skipped)


@pytest.mark.parametrize("dataset", ["groove", "maestro", "deam", "lakh"])
def test_a_wrong_root_ends_in_one_paragraph_not_a_traceback(tmp_path: Path, dataset: str) -> None:
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "absent"):
        done = subprocess.run(
            [sys.executable, "-m", "seqpipe", "manifest", "--dataset", dataset, "--root", str(root),
             "--out", str(tmp_path / "m.json")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert str(root) in done.stderr and "looked for" in done.stderr.lower() or "no " in done.stderr
        assert f"datasets.{dataset}.root" in done.stderr


def test_deam_a_readable_file_wins_over_an_unusable_one_and_duplicates_are_reported(tmp_path: Path) -> None:
    root = write_deam(tmp_path, {2: ".wav", 3: ".mp3", 5: ".mp3", 2001: ".mp3", 2002: ".mp3"})
    (root / "MEMD_audio" / "2.mp3").mkdir()  # a folder under the preferred name; 2.wav is fine
    (root / "MEMD_audio" / "3.flac").write_bytes(b"")  # a second file for song 3
    index = deam.index(root)
    assert {i.item_id: i.path.name for i in index.items}["2"] == "2.wav"
    reasons = {e["path"]: e["reason"] for e in index.skipped}
    assert set(reasons) == {"MEMD_audio/2.mp3", "MEMD_audio/3.flac"}
    assert "another audio file (3.mp3)" in reasons["MEMD_audio/3.flac"]


@pytest.mark.parametrize("name", ["groove", "deam", "folder"])
def test_a_dataset_modules_code_stamp_holds_no_other_dataset(name: str) -> None:
    """The registry loads a dataset module by name when it is asked for, so the code a job runs (its code stamp:
    the module's import closure) holds that dataset's module only, and editing one dataset reruns only its stages."""
    from seqpipe.codedeps import source_files

    src = Path(__file__).resolve().parents[1] / "src"
    files = {Path(f).relative_to(src).as_posix() for f in source_files((f"seqpipe.datasets.{name}",), str(src))}
    datasets = {f for f in files if f.startswith("seqpipe/datasets/")}
    assert datasets == {"seqpipe/datasets/__init__.py", "seqpipe/datasets/base.py", "seqpipe/datasets/registry.py",
                        f"seqpipe/datasets/{name}.py"}
