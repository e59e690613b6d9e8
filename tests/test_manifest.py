"""The manifest: a raw tree's fingerprint changes with its files, and a reindex rereads only changed files."""

from __future__ import annotations

import os
from pathlib import Path

from seqpipe.raw import demo, manifest
from seqpipe.raw.manifest import build_manifest, tree_state


def test_tree_state_follows_content_additions_and_removals(tmp_path):
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.mid").write_bytes(b"one")
    first = tree_state(root)
    assert tree_state(root) == first
    (root / "a" / "x.mid").write_bytes(b"two!")
    second = tree_state(root)
    assert second != first
    (root / "a" / "y.mid").write_bytes(b"new")
    assert tree_state(root) != second
    (root / "a" / "y.mid").unlink()
    assert tree_state(root) == second
    assert tree_state(tmp_path / "nowhere") == "missing"


def test_reindex_reads_only_changed_files(tmp_path, monkeypatch):
    root = demo.generate("lakh", tmp_path / "raw", n_items=12, seed=0)
    cache = tmp_path / ".lakh.manifest.json.hashes.json"
    first = build_manifest("lakh", root, "root", cache=cache)
    read: list[str] = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda p: read.append(Path(p).name) or real(p))
    assert build_manifest("lakh", root, "root", cache=cache) == first and read == []
    changed = next(root.rglob("*.mid"))
    changed.write_bytes(changed.read_bytes() + b"\0")
    os.utime(changed, ns=(1, 1))
    again = build_manifest("lakh", root, "root", cache=cache)
    assert read == [changed.name]
    rel = changed.relative_to(root).as_posix()
    assert again["files"][rel]["sha256"] != first["files"][rel]["sha256"]


def test_lakh_fingerprint_covers_what_the_module_indexes_at_a_few_stats(tmp_path, monkeypatch):
    root = demo.generate("lakh", tmp_path / "raw", n_items=12, seed=0)
    (root / ".git" / "annex").mkdir(parents=True)
    (root / "README").write_text("not indexed")
    first = tree_state(root, "lakh")
    (root / ".git" / "annex" / "object").write_bytes(b"x")  # whatever else lies under the root
    (root / "README").write_text("edited")
    assert tree_state(root, "lakh") == first
    assert sorted(build_manifest("lakh", root, "root")["files"]) == sorted(
        p.relative_to(root).as_posix() for p in root.glob("[0-9a-f]/*.mid"))
    stats: list[str] = []
    real = os.stat
    monkeypatch.setattr(manifest.os, "stat", lambda p, *a, **k: stats.append(str(p)) or real(p, *a, **k))
    assert tree_state(root, "lakh") == first
    assert stats and not [p for p in stats if p.endswith(".mid")]  # the root and its hex-digit folders, no file
    monkeypatch.undo()
    one = next(root.rglob("*.mid"))
    added = one.parent / ("0" * 31 + one.parent.name + ".mid")
    added.symlink_to(one)  # a file added (or re-linked) in a hex-digit folder
    second = tree_state(root, "lakh")
    assert second != first
    added.unlink()
    assert tree_state(root, "lakh") not in (second, "missing", "no layout")
    assert tree_state(tmp_path, "lakh") == "no layout" and tree_state(tmp_path / "nowhere", "lakh") == "missing"


def test_a_relative_root_is_stored_relative_to_the_manifest_and_links_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = demo.generate("lakh", tmp_path / "store" / "lakh", n_items=4, seed=0)
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "lakh").symlink_to(data, target_is_directory=True)  # a linked copy: never resolved
    out = tmp_path / "resources" / "raw" / "lakh.manifest.json"
    manifest.write_manifest(build_manifest("lakh", "mydata/lakh", "root"), out)
    assert manifest.read_json(out)["root"] == "../../mydata/lakh"
    assert manifest.read_manifest(out)["root"] == str(tmp_path / "mydata" / "lakh")


def test_deam_manifest_and_fingerprint_leave_out_what_deam_does_not_read(tmp_path):
    root = demo.generate("deam", tmp_path / "raw", n_items=3, seed=0, duration_s=2.0)
    first, listed = tree_state(root, "deam"), build_manifest("deam", root, "root")["files"]
    (root / "features").mkdir()
    (root / "features" / "2.csv").write_text("frameTime;F0final_sma_amean\n0.0;1.0\n")  # DEAM_features.zip, extracted beside
    assert tree_state(root, "deam") == first and build_manifest("deam", root, "root")["files"] == listed
    assert any(name.endswith(".csv") for name in listed) and any(name.endswith(".mp3") for name in listed)
