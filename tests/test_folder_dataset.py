"""Folder datasets: a researcher's own audio or MIDI files with an optional labels table, in seed 004's layouts."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from seqpipe.config.load import validate_config
from seqpipe.raw import demo
from seqpipe.raw.demo.common import write_midi
from seqpipe.raw.manifest import build_manifest, write_manifest
from seqpipe.datasets import folder, get_dataset
from seqpipe.features.build import build
from seqpipe.features.kinds import drum_grid


def wav(path: Path, seconds: float = 1.0) -> Path:
    rate = 8000
    sf.write(str(path), (0.1 * np.sin(np.arange(int(rate * seconds)) * 0.2)).astype(np.float32), rate)
    return path


def midi(path: Path, drums: bool = False) -> Path:
    notes = [(36 if drums else 60 + k % 12, k * 0.25, k * 0.25 + 0.1, 90) for k in range(16)]
    write_midi(path, notes, tempo=100.0, resolution=480, is_drum=drums)
    return path


@pytest.mark.parametrize("header", ["filename,valence,arousal", "filename,valence_mean,arousal_mean"])
def test_audio_folder_with_labels_csv(tmp_path, header):
    for name in ("audio_001.wav", "audio_002.wav"):
        wav(tmp_path / name)
    (tmp_path / "labels.csv").write_text(f"{header}\naudio_001.wav,0.8,0.9\naudio_002.wav,-0.6,0.3\n")
    items = folder.load_items(tmp_path)
    columns = header.split(",")[1:]
    assert [i.item_id for i in items] == ["audio_001.wav", "audio_002.wav"]
    assert items[1].labels == {columns[0]: -0.6, columns[1]: 0.3}
    assert all(i.split in ("train", "val", "test") for i in items)


def test_midi_folder_with_emotion_labels_json_and_text_classes(tmp_path):
    midi(tmp_path / "melody_001.mid")
    (tmp_path / "sub").mkdir()
    midi(tmp_path / "sub" / "melody_002.mid")
    labels = {"melody_001.mid": {"valence": 0.7, "arousal": 0.6}, "sub/melody_002.mid": {"valence": -0.4, "arousal": 0.5, "mood": "sad"}}
    (tmp_path / "emotion_labels.json").write_text(json.dumps(labels))
    items = {i.item_id: i for i in folder.load_items(tmp_path)}
    assert items["melody_001.mid"].labels == {"valence": 0.7, "arousal": 0.6}
    assert items["sub/melody_002.mid"].labels["mood"] == "sad"
    assert folder.label_names(tmp_path) == ["arousal", "mood", "valence"]


def test_drums_folder_without_labels_gives_drum_grids_at_the_file_tempo(tmp_path):
    midi(tmp_path / "groove_001.mid", drums=True)
    (item,) = folder.load_items(tmp_path)
    assert item.labels == {}
    grid = drum_grid.extract(item, {"steps_per_beat": 4})
    assert grid.shape[1] == 27 and grid[:, 0].sum() == 16  # 16 kicks, one per 16th at the file's 100 bpm
    (tmp_path / "drum_labels.json").write_text(json.dumps({"groove_001.mid": {"valence": 0.6, "arousal": 0.7}}))
    assert folder.load_items(tmp_path)[0].labels == {"valence": 0.6, "arousal": 0.7}


def test_files_the_table_does_not_list_are_skipped_and_reported(tmp_path):
    midi(tmp_path / "a.mid")
    midi(tmp_path / "b.mid")
    (tmp_path / "labels.csv").write_text("filename,valence\na.mid,0.1\nghost.mid,0.2\n")
    with pytest.warns(UserWarning) as caught:
        items = folder.load_items(tmp_path)
    assert [i.item_id for i in items] == ["a.mid"]
    messages = " ".join(str(w.message) for w in caught)
    assert "ghost.mid" in messages and "b.mid" in messages
    with pytest.warns(UserWarning, match="ghost.mid"):
        skipped = folder.skipped_entries(tmp_path)
    assert skipped == [{"id": "b.mid", "path": "b.mid", "reason": "not listed in labels.csv: no labels"}]
    with pytest.warns(UserWarning):
        assert build_manifest("folder", tmp_path, "root")["skipped"] == skipped  # the manifest lists them


def test_bad_tables_name_the_file_and_the_fix(tmp_path):
    midi(tmp_path / "a.mid")
    (tmp_path / "labels.csv").write_text("name,valence\na.mid,0.1\n")
    with pytest.raises(ValueError, match=r"labels\.csv: no `filename` column"):
        folder.load_items(tmp_path)
    (tmp_path / "labels.csv").unlink()
    (tmp_path / "emotion_labels.json").write_text('["a.mid"]')
    with pytest.raises(ValueError, match=r"emotion_labels\.json: expected an object keyed by file name"):
        folder.load_items(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no audio"):
        folder.find_root(tmp_path / "empty")


def test_any_dataset_named_folder_something_is_a_folder():
    assert get_dataset("folder") is folder and get_dataset("folder_drums") is folder
    config = validate_config({"datasets": {"folder_drums": {"source": "root", "root": "/data/drums"}},
                              "features": {"d": {"dataset": "folder_drums", "kind": "drum_grid"}},
                              "tasks": {"t": {"features": "d", "paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"}},
                              "models": {"m": {"arch": "gru"}}})
    assert config["datasets"]["folder_drums"]["root"] == "/data/drums"


def test_demo_folder_builds_a_labelled_feature_set(tmp_path):
    root = demo.generate("folder", tmp_path / "raw", n_items=30, seed=0)
    assert (root / "emotion_labels.json").is_file() and len(list(root.glob("melody_*.mid"))) == 30
    manifest = tmp_path / "folder.manifest.json"
    write_manifest(build_manifest("folder", root, "demo"), manifest)
    spec = {"name": "folder_roll", "dataset": "folder", "kind": "piano_roll", "target": ["valence", "arousal"], "fps": 8,
            "window": 32, "hop": 32, "timeout_s": 60, "max_failed_fraction": 0.0, "limit": None}
    build(manifest, spec, tmp_path / "f.h5", tmp_path / "f.skipped.json")
    with h5py.File(tmp_path / "f.h5", "r") as fh:
        n = sum(len(fh[s]["data"]) for s in ("train", "val", "test"))
        assert n >= 30 and fh["train/labels"].shape[1:] == (2,)
        assert list(fh.attrs["target_names"]) == ["valence", "arousal"]


@pytest.mark.parametrize("table", [
    "\ufefffilename;valence;arousal;mood\r\na.mid;0,5;-1,25;calm\r\nb.mid;0,75;2;happy\r\n",  # a European spreadsheet
    "filename;valence;arousal;mood\na.mid;0.5;-1.25;calm\nb.mid;0.75;2;happy\n",
    "filename\tvalence\tarousal\tmood\na.mid\t0.5\t-1.25\tcalm\nb.mid\t0.75\t2\thappy\n",
])
def test_labels_csv_in_any_spreadsheet_dialect(tmp_path, table):
    midi(tmp_path / "a.mid")
    midi(tmp_path / "b.mid")
    (tmp_path / "labels.csv").write_bytes(table.encode("utf-8"))
    labels = {item.item_id: item.labels for item in folder.load_items(tmp_path)}
    assert labels == {"a.mid": {"valence": 0.5, "arousal": -1.25, "mood": "calm"},
                      "b.mid": {"valence": 0.75, "arousal": 2.0, "mood": "happy"}}


def test_labels_csv_row_with_more_cells_than_the_header_names_the_separator(tmp_path):
    midi(tmp_path / "a.mid")
    (tmp_path / "labels.csv").write_text("filename,valence\na.mid,0,5\n")
    with pytest.raises(ValueError) as err:
        folder.load_items(tmp_path)
    message = str(err.value)
    assert "labels.csv, line 2" in message and "3 cells" in message and "separator ','" in message
    assert "re-save" in message and "\n" not in message
