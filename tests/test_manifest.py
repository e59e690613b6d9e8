"""The manifest: a raw tree's fingerprint changes with its files, and a reindex rereads only changed files."""

from __future__ import annotations

import os
from pathlib import Path

from seqpipe.data import demo, manifest
from seqpipe.data.manifest import build_manifest, tree_state


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
