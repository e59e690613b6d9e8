"""The features stage: windows, labels, skipped-file reports, per-file timeouts, failure threshold."""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from seqpipe.raw import demo
from seqpipe.taskfile.hdf5 import read_attrs
from seqpipe.raw.manifest import build_manifest, write_manifest
from seqpipe.datasets import Item
from seqpipe.features.build import build, encode_targets, extract_all, windows
from seqpipe.io import read_json
from taskfiles import load_splits

SPEC = {"name": "groove_grid", "dataset": "groove", "kind": "drum_grid", "target": "style", "window": 32, "hop": 16,
        "steps_per_beat": 4, "max_failed_fraction": 0.2, "timeout_s": 30, "limit": None}


@pytest.fixture()
def groove(tmp_path: Path) -> tuple[Path, Path]:
    root = demo.generate("groove", tmp_path / "raw", n_items=40, seed=0)
    return root, tmp_path


def manifest_for(root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "groove.manifest.json"
    write_manifest(build_manifest("groove", root, "demo"), path)
    return path


def test_windows_pad_short_items_and_step_by_hop():
    data, starts = windows(np.ones((10, 2), np.float32), window=4, hop=3)
    assert data.shape == (3, 4, 2) and starts.tolist() == [0, 3, 6]
    data, starts = windows(np.ones((2, 2), np.float32), window=4, hop=3)
    assert data.shape == (1, 4, 2) and data[0, 2:].sum() == 0


def test_encode_targets_classes_and_vectors():
    items = [Item("a", Path("a"), "train", {"s": "rock", "v": 1.0, "w": 2.0}), Item("b", Path("b"), "test", {"s": "funk", "v": 3.0, "w": 4.0})]
    labels, attrs = encode_targets(items, "s")
    assert attrs == {"class_names": ["funk", "rock"]} and labels["a"] == 1
    labels, attrs = encode_targets(items, ["v", "w"])
    assert attrs == {"target_names": ["v", "w"]} and labels["b"].tolist() == [3.0, 4.0]
    with pytest.raises(KeyError, match="item a: no label 'x'"):
        encode_targets(items, "x")


def test_corrupt_files_are_skipped_and_reported(groove):
    root, tmp_path = groove
    midis = sorted(root.rglob("*.mid"))
    midis[0].write_bytes(b"")  # zero length
    midis[1].write_bytes(os.urandom(300))  # random bytes
    midis[2].write_bytes(midis[3].read_bytes()[:40])  # truncated
    report = build(manifest_for(root, tmp_path), SPEC, tmp_path / "g.h5", tmp_path / "g.skipped.json", workers=2)
    assert report["items"] == 40 and report["extracted"] == 37
    saved = read_json(tmp_path / "g.skipped.json")
    assert {Path(s["path"]).name for s in saved["skipped"]} == {m.name for m in midis[:3]}
    assert all(s["reason"] for s in saved["skipped"])
    splits = load_splits(tmp_path / "g.h5")
    assert splits["train"].data.shape[1:] == (32, 27) and splits["test"].labels.dtype == np.int64
    assert read_attrs(tmp_path / "g.h5")["feature_names"][0] == "kick_hit"


def test_too_many_failures_fail_the_stage_and_keep_the_report(groove):
    root, tmp_path = groove
    for midi in sorted(root.rglob("*.mid"))[:10]:
        midi.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match=r"10 of 40 items failed, more than max_failed_fraction=0.2; see .*g.skipped.json"):
        build(manifest_for(root, tmp_path), SPEC, tmp_path / "g.h5", tmp_path / "g.skipped.json")
    assert not (tmp_path / "g.h5").exists()
    assert len(read_json(tmp_path / "g.skipped.json")["skipped"]) == 10


@pytest.fixture()
def misbehaving_kind(monkeypatch):
    """A feature kind whose extractor hangs on item 'hang' and kills its worker on item 'crash'."""
    module = types.ModuleType("seqpipe.features.kinds.misbehaving")

    def extract(item, spec):
        if item.item_id == "hang":
            time.sleep(60)
        if item.item_id == "crash":
            os._exit(3)
        return np.ones((4, 2), np.float32)

    module.extract = extract
    monkeypatch.setitem(sys.modules, module.__name__, module)  # inherited by the forked workers
    return {"name": "m", "kind": "misbehaving"}


def test_hanging_and_crashing_files_are_cut_off(misbehaving_kind):
    items = [Item(i, Path(i), "train", {}) for i in ("ok1", "hang", "crash", "ok2")]
    start = time.perf_counter()
    results = extract_all(items, misbehaving_kind, workers=2, timeout=2)
    assert time.perf_counter() - start < 30
    assert [r.item.item_id for r in results] == ["ok1", "hang", "crash", "ok2"]
    assert results[0].features is not None and results[3].features is not None
    assert "timed out after 2 s" in results[1].reason
    assert "worker process died" in results[2].reason


@pytest.mark.parametrize(
    ("dataset", "kind", "dim"),
    [("groove", "drum_grid", 27), ("groove", "groove_summary", 32), ("maestro", "piano_roll", 128),
     ("maestro", "midi_summary", 144), ("deam", "logmel", 128), ("deam", "mel_vector", 128)],
)
def test_every_kind_extracts_a_demo_item(tmp_path, dataset, kind, dim):
    from seqpipe.datasets import get_dataset
    from seqpipe.features.build import kind_module

    root = demo.generate(dataset, tmp_path, n_items=10 if dataset != "deam" else 2, seed=1, duration_s=6.0)
    item = get_dataset(dataset).load_items(root)[0]
    spec = {"steps_per_beat": 4, "fps": 8, "sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "pool": 21}
    module = kind_module(kind)
    features = module.extract(item, spec)
    assert features.dtype == np.float32 and features.ndim == 2 and features.shape[1] == dim
    assert len(module.feature_names(spec)) == dim and np.isfinite(features).all()
    if kind.endswith(("summary", "vector")):
        assert features.shape[0] == 1
