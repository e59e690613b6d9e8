"""DEAM dynamic: 2 Hz features aligned with the per-second annotations, per-step labels windowed within songs,
demo annotations that follow the audio, and the MediaEval protocol (per-song RMSE and r averaged over songs)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from seqpipe.config.load import validate_config
from seqpipe.raw import demo
from seqpipe.raw.manifest import build_manifest, write_manifest
from seqpipe.datasets import deam
from seqpipe.evaluation.baseline import run_baseline
from seqpipe.evaluation.per_song import per_song_metrics, song_frames
from seqpipe.features.build import build
from seqpipe.features.kinds.deam_dynamic import aligned_steps
from seqpipe.config.types import Task
from taskfiles import load_task_data

SECONDS = 26.0  # 22 annotation frames from 15 s (ids above 2000: 1.5x as long)
WINDOW, HOP = 8, 4


def spec() -> dict:
    config = validate_config({"tasks": {"t": {"features": "deam_dyn", "paradigm": "supervised", "mapping": "seq2seq", "type": "regression"}},
                              "models": {"m": {"arch": "gru"}},
                              "features": {"deam_dyn": {"dataset": "deam", "kind": "deam_dynamic", "window": WINDOW, "hop": HOP}}})
    return {"name": "deam_dyn", **config["features"]["deam_dyn"], "limit": None}


@pytest.fixture(scope="module")
def dynamic_h5(tmp_path_factory):
    root = tmp_path_factory.mktemp("deam")
    data = demo.generate("deam", root / "raw", n_items=10, seed=3, duration_s=SECONDS)
    manifest = root / "deam.manifest.json"
    write_manifest(build_manifest("deam", data, "demo"), manifest)
    out = root / "deam_dyn.h5"
    build(manifest, spec(), out, root / "deam_dyn.skipped.json", workers=1)
    assert json.loads((root / "deam_dyn.skipped.json").read_text())["skipped"] == []  # build returns the report's header
    return data, out


def test_steps_pool_the_half_second_around_each_annotation():
    rate, hop = 100, 1  # one mel frame per 10 ms whose value is its own time
    mel = np.repeat((np.arange(2600) / rate)[:, None], 2, axis=1)
    steps = aligned_steps(mel, rate, hop, n_steps=30)
    assert len(steps) == 22  # the audio covers 15.0 .. 25.5 s: annotations at 15.0, 15.5, ..., 25.5
    assert np.allclose(steps[:, 0], 15.0 + np.arange(22) / 2.0 - 0.005, atol=1e-6)


def test_feature_set_has_per_step_labels_windowed_within_songs(dynamic_h5):
    data, out = dynamic_h5
    series = deam.load_dynamic(data)
    with h5py.File(out, "r") as fh:
        assert fh.attrs["frame_rate"] == 2.0 and list(fh.attrs["target_names"]) == ["valence", "arousal"]
        for split in ("train", "val", "test"):
            group = fh[split]
            assert group["data"].shape[1:] == (WINDOW, 128) and group["labels"].shape[1:] == (WINDOW, 2)
            ids = [v.decode() for v in group["item_ids"][()]]
            for k, (song, start) in enumerate(zip(ids, group["window_start"][()])):
                arousal = series[song]["arousal"]
                assert start + WINDOW <= len(arousal)  # no window runs past its song (or into the next one)
                assert np.allclose(group["labels"][k, :, 1], arousal[start : start + WINDOW], atol=1e-6)


def test_demo_arousal_follows_the_loudness_within_songs(dynamic_h5):
    _, out = dynamic_h5
    with h5py.File(out, "r") as fh:
        x, y = fh["train/data"][()], fh["train/labels"][()]
        ids, starts = fh["train/item_ids"][()], fh["train/window_start"][()]
    r = []
    for song in set(ids.tolist()):  # over each whole song: mean log-mel per step against its arousal
        rows = ids == song
        loudness = song_frames(x[rows].mean(axis=2, keepdims=True), starts[rows])[:, 0]
        arousal = song_frames(y[rows][:, :, 1:], starts[rows])[:, 0]
        r.append(np.corrcoef(loudness, arousal)[0, 1])
    assert np.median(r) > 0.6, np.round(r, 2)


def test_per_song_metrics_follow_the_mediaeval_protocol():
    t = np.linspace(0, 1, 6)
    y = np.stack([np.stack([t, -t], 1), np.stack([t + 1, t], 1)])  # two songs, one window each
    perfect = per_song_metrics(y, y.copy(), ["a", "b"], ["valence", "arousal"])
    assert perfect["metrics"]["song_rmse"] == 0 and perfect["metrics"]["song_pearson"] == pytest.approx(1.0)
    shifted = per_song_metrics(y, y + 0.5, ["a", "b"], ["valence", "arousal"])  # right shape, wrong level
    assert shifted["metrics"]["song_rmse"] == pytest.approx(0.5) and shifted["metrics"]["song_pearson"] == pytest.approx(1.0)
    flat = per_song_metrics(y, np.zeros_like(y), ["a", "b"], ["valence", "arousal"])
    assert flat["metrics"]["song_pearson"] == 0.0 and flat["n_songs"] == 2
    # overlapping windows of one song: shared frames count once
    frames = song_frames(np.arange(12, dtype=float).reshape(2, 3, 2), np.array([0, 2]))
    assert frames.shape == (5, 2) and frames[2].tolist() == [(4 + 6) / 2, (5 + 7) / 2]


def test_baseline_reports_per_song_metrics_beside_pooled_ones(dynamic_h5):
    _, out = dynamic_h5
    task = {"name": "deam_dynamic", "paradigm": "supervised", "mapping": "seq2seq", "type": "regression", "target_seq_len": WINDOW}
    result = run_baseline(load_task_data(out, task), Task.from_dict(task))
    assert {"rmse", "pearson", "song_rmse", "song_pearson"} <= set(result["metrics"])
    assert result["per_song"]["n_songs"] >= 1 and len(result["per_step"]) == WINDOW


def annex_copy(data, tmp_path):
    """A git-annex-like copy of a DEAM folder: every file a relative symbolic link into a content
    store elsewhere (`.git/annex/objects/<key>/<key>`), whose folders hold no annotation CSVs."""
    import hashlib
    import os
    import shutil

    copy, store = tmp_path / "copy" / "DEAM", tmp_path / "repo" / ".git" / "annex" / "objects"
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        key = "SHA256E-s%d--%s%s" % (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest(), path.suffix)
        target = store / key[-6:-4] / key / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        link = copy / path.relative_to(data)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(target, link.parent))
    return copy


def test_dynamic_features_read_a_symlinked_annex_copy(dynamic_h5, tmp_path):
    data, reference = dynamic_h5
    copy = annex_copy(data, tmp_path)
    audio = next(p for p in copy.rglob("*.mp3"))
    assert audio.is_symlink() and deam.annotations_root(audio) in audio.parents  # the copy's folder, not the store's
    manifest = tmp_path / "deam.manifest.json"
    write_manifest(build_manifest("deam", copy, "root"), manifest)
    out = tmp_path / "deam_dyn.h5"
    build(manifest, spec(), out, tmp_path / "deam_dyn.skipped.json", workers=1)
    assert json.loads((tmp_path / "deam_dyn.skipped.json").read_text())["skipped"] == []
    with h5py.File(out, "r") as fh, h5py.File(reference, "r") as ref:
        for split in ("train", "val", "test"):
            assert np.array_equal(fh[split]["data"][()], ref[split]["data"][()])
