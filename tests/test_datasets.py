"""Dataset modules on small hand-written copies of the real layouts (quirks included)."""

from __future__ import annotations

import json
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
    with pytest.warns(UserWarning, match=r"1 file\(s\).*missing"):
        items = groove.load_items(root)
    assert [i.item_id for i in items] == ["drummer1/eval_session/1", "drummer1/eval_session/10"]


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


def test_maestro_row_oriented_json_is_rejected_clearly(tmp_path: Path) -> None:
    path = tmp_path / "maestro-v3.0.0.json"
    path.write_text(json.dumps([dict(zip(MAESTRO_COLUMNS, rec)) for rec in MAESTRO_RECORDS]))
    with pytest.raises(ValueError, match="column-oriented"):
        maestro.load_metadata_json(path)


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
    with pytest.warns(UserWarning, match=r"3 song\(s\).*no audio.*3, 5, 2002"):
        items = deam.load_items(root)
    assert [i.item_id for i in items] == ["2", "2001"]


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
    with pytest.raises(FileNotFoundError, match=r"MEMD_audio/ and annotations/.*datasets\.deam\.root"):
        deam.find_root(tmp_path / "DEAM" / "MEMD_audio")
