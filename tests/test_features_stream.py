"""Bounded-memory and sharded feature extraction, accounting for every raw item, provenance of the bytes.

Each test here fails on the feature builder that held every item in memory and wrote in one go.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from seqpipe.raw import demo
from seqpipe.taskfile.hdf5 import read_attrs
from seqpipe.raw.manifest import build_manifest, read_manifest, write_manifest
from seqpipe.datasets import Item
from seqpipe.features.build import build, build_part
from seqpipe.features.extract import extract_stream
from seqpipe.features.shards import shard_count, shard_slice
from seqpipe.io import read_json

REPO = Path(__file__).resolve().parents[1]
SPEC = {"name": "groove_grid", "dataset": "groove", "kind": "drum_grid", "target": "style", "window": 32, "hop": 16,
        "steps_per_beat": 4, "max_failed_fraction": 0.2, "timeout_s": 30, "limit": None}


@pytest.fixture(scope="module")
def groove(tmp_path_factory) -> Path:
    return demo.generate("groove", tmp_path_factory.mktemp("raw"), n_items=30, seed=0)


def fresh_copy(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the demo tree and its manifest (tests that damage files)."""
    import shutil

    copy = tmp_path / "raw" / root.name
    shutil.copytree(root, copy)
    manifest = tmp_path / "groove.manifest.json"
    write_manifest(build_manifest("groove", copy, "demo"), manifest)
    return copy, manifest


def manifest_of(root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "groove.manifest.json"
    write_manifest(build_manifest("groove", root, "demo"), path)
    return path


def test_shards_merge_to_the_same_bytes_as_one_job(groove, tmp_path):
    manifest = manifest_of(groove, tmp_path)
    build(manifest, SPEC, tmp_path / "one" / "g.h5", tmp_path / "one" / "g.skipped.json", workers=2)
    parts = [tmp_path / f"part{i}.h5" for i in range(3)]
    for i, part in enumerate(parts):
        build_part(read_manifest(manifest), SPEC, part, (i, 3), workers=1)
    build(manifest, SPEC, tmp_path / "three" / "g.h5", tmp_path / "three" / "g.skipped.json", parts=parts)
    one, three = (tmp_path / "one" / "g.h5").read_bytes(), (tmp_path / "three" / "g.h5").read_bytes()
    assert one == three
    with h5py.File(tmp_path / "one" / "g.h5") as fh:
        assert sum(fh[s]["data"].shape[0] for s in ("train", "val", "test")) > 30
        assert fh["train"]["data"].shape[1:] == (32, 27)


def test_extraction_keeps_few_items_in_flight_and_yields_in_order():
    """Results stream back while later items are not yet read: memory holds the in-flight items only."""
    consumed = itertools.count()

    def items():
        for i in range(50):
            next(consumed)
            yield Item(f"{i:03d}", Path("/nonexistent") / f"{i}.mid", "train", {})

    stream = extract_stream(items(), {"name": "m", "kind": "drum_grid", "steps_per_beat": 4}, workers=2)
    first = next(stream)
    assert first.item.item_id == "000" and first.features is None
    assert next(consumed) <= 2 * 2 + 1  # only the in-flight items were taken from the iterator
    assert [r.item.item_id for r in stream] == [f"{i:03d}" for i in range(1, 50)]


def test_manifest_skipped_entries_are_reported_and_counted(groove, tmp_path):
    manifest_path = manifest_of(groove, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["skipped"] = [{"id": f"odd{i}", "path": f"drummer1/odd{i}.txt", "reason": "not named as the dataset names its files"}
                           for i in range(2)]
    manifest_path.write_text(json.dumps(manifest))
    report = build(manifest_path, SPEC, tmp_path / "g.h5", tmp_path / "g.skipped.json")
    saved = read_json(tmp_path / "g.skipped.json")
    assert report["items"] == 32 and report["extracted"] == 30
    assert [s["path"] for s in saved["skipped"]] == ["drummer1/odd0.txt", "drummer1/odd1.txt"]
    manifest["skipped"] *= 5  # 10 of 40 > 20 %
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match=r"10 of 40 items failed.*g\.skipped\.json"):
        build(manifest_path, SPEC, tmp_path / "g.h5", tmp_path / "g.skipped.json")


def test_deleted_raw_files_count_as_failures_and_the_previous_file_is_kept(groove, tmp_path):
    root, manifest = fresh_copy(groove, tmp_path)
    out = tmp_path / "results" / "features" / "groove" / "g.h5"
    previous = tmp_path / "results" / "features" / ".previous" / "groove" / "g.h5"
    build(manifest, SPEC, out, out.with_suffix(".skipped.json"), previous=previous)
    good = out.read_bytes()
    midis = sorted(root.rglob("*.mid"))
    for midi in midis[::2]:
        midi.unlink()
    out.unlink()  # as Snakemake does before it reruns the job
    with pytest.raises(RuntimeError, match=r"15 of 30 items failed.*g\.skipped\.json.*; the previous good file is kept at .*\.previous/groove/g\.h5"):
        build(manifest, SPEC, out, out.with_suffix(".skipped.json"), previous=previous)
    saved = read_json(out.with_suffix(".skipped.json"))
    assert len(saved["skipped"]) == 15 and all("missing from the dataset folder" in s["reason"] for s in saved["skipped"])
    assert {Path(s["path"]).name for s in saved["skipped"]} == {m.name for m in midis[::2]}
    assert previous.read_bytes() == good


def test_raw_sha256_hashes_the_bytes_read(groove, tmp_path):
    root, manifest = fresh_copy(groove, tmp_path)
    build(manifest, SPEC, tmp_path / "a.h5", tmp_path / "a.skipped.json")
    midis = sorted(root.rglob("*.mid"))
    midis[0].write_bytes(midis[1].read_bytes())  # a valid file with other content; the manifest is stale
    build(manifest, SPEC, tmp_path / "b.h5", tmp_path / "b.skipped.json")
    before, after = (read_attrs(tmp_path / f"{n}.h5")["provenance"] for n in "ab")
    assert json.loads(before)["raw_sha256"] != json.loads(after)["raw_sha256"]


def test_summary_kinds_store_one_step_per_item(groove, tmp_path):
    spec = {**SPEC, "name": "groove_summary", "kind": "groove_summary", "window": 32}
    build(manifest_of(groove, tmp_path), spec, tmp_path / "s.h5", tmp_path / "s.skipped.json")
    with h5py.File(tmp_path / "s.h5") as fh:
        shapes = [fh[s]["data"].shape for s in ("train", "val", "test")]
        assert sum(n for n, _, _ in shapes) == 30
        assert all(shape[1:] == (1, 32) for shape in shapes)
        assert np.abs(fh["train"]["data"][()]).sum(axis=-1).min() > 0  # no rows of padding zeros


def test_shard_count_follows_the_config_alone(config):
    config["features"]["lakh_roll"] = {"dataset": "lakh", "kind": "piano_roll", "shards": "auto"}
    config["datasets"]["lakh"] = {"source": "root", "root": "/x", "limit": None}
    assert shard_count(config, "lakh_roll") == 89
    config["datasets"]["lakh"]["limit"] = 4000
    assert shard_count(config, "lakh_roll") == 2
    config["features"]["groove_grid"]["shards"] = 4
    assert shard_count(config, "groove_grid") == 4
    assert shard_count(config, "maestro_roll") == 1
    slices = [shard_slice(list(range(10)), i, 3) for i in range(3)]
    assert sum(slices, []) == list(range(10)) and [len(s) for s in slices] == [3, 3, 4]


def test_snakemake_plans_one_job_per_shard_and_one_merge(tmp_path):
    extra = tmp_path / "shards.yaml"
    extra.write_text("features:\n  groove_grid: {dataset: groove, kind: drum_grid, target: style, shards: 3}\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "results/features/groove/groove_grid.h5",
                           "--configfile", "config.yaml", str(extra)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = dict(line.split()[:2] for line in proc.stdout.splitlines() if line.startswith("features"))
    assert counts == {"features_shard": "3", "features": "1"}
    assert "results/features/groove/groove_grid.skipped.json" in proc.stdout.split("rule features:")[-1]


@pytest.mark.slow
def test_workflow_reruns_on_a_changed_raw_file_and_a_failed_job_keeps_report_and_previous_file(groove, tmp_path):
    """Through Snakemake, on a user's copy (`source: root`) built in 2 shards."""
    import shutil

    import yaml

    root = tmp_path / "copy" / "groove"
    shutil.copytree(groove, root)
    work = tmp_path / "work"
    work.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    for folder in ("workflow", "src", "envs"):
        shutil.copytree(REPO / folder, work / folder, ignore=ignore)
    config = {"datasets": {"groove": {"source": "root", "root": str(root)}},
              "features": {"grid": {"dataset": "groove", "kind": "drum_grid", "target": "style", "shards": 2}},
              "tasks": {"style": {"features": "grid", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
              "models": {"mlp": {"arch": "mlp", "hidden": [8]}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def snakemake(*args):
        return subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "results/features/groove/grid.h5", *args],
                              cwd=work, env=env, capture_output=True, text=True, timeout=600)

    assert snakemake().returncode == 0
    good = (work / "results/features/groove/grid.h5").read_bytes()
    assert "Nothing to be done" in snakemake("-n").stdout
    midis = sorted(root.rglob("*.mid"))
    midis[0].write_bytes(midis[1].read_bytes())
    plan = snakemake("-n").stdout
    assert "rule index_root:" in plan and "rule features:" in plan
    for midi in midis[:10]:
        midi.write_bytes(b"junk")
    proc = snakemake()
    assert proc.returncode != 0
    log = (work / "logs/features/groove/grid.log").read_text()
    assert "10 of 30 items failed" in log and "results/features/groove/grid.skipped.json" in log and ".previous/groove/grid.h5" in log
    assert len(read_json(work / "results/features/groove/grid.skipped.json")["skipped"]) == 10
    assert not (work / "results/features/groove/grid.h5").exists()
    assert (work / "results/features/.previous/groove/grid.h5").read_bytes() == good
    config["features"]["grid"]["max_failed_fraction"] = 0.5  # the user accepts the losses: only the merge reruns
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    plan = snakemake("-n").stdout
    assert "rule features:" in plan and "rule features_shard:" not in plan, plan


def test_one_job_build_leaves_no_part_file_behind(groove, tmp_path):
    out = tmp_path / "out" / "g.h5"
    build(manifest_of(groove, tmp_path), {**SPEC, "limit": 12}, out, tmp_path / "out" / "g.skipped.json")
    assert sorted(p.name for p in out.parent.iterdir()) == ["g.h5", "g.skipped.json"]


def test_domains_are_stored_per_sample_with_their_names(groove, tmp_path):
    from seqpipe.datasets import get_dataset

    out = tmp_path / "d.h5"
    build(manifest_of(groove, tmp_path), {**SPEC, "domain": "drummer"}, out, tmp_path / "d.skipped.json")
    drummer = {it.item_id: it.labels["drummer"] for it in get_dataset("groove").load_items(groove)}
    names = read_attrs(out)["domain_names"]
    assert names == sorted(set(drummer.values())) and len(names) > 1
    with h5py.File(out) as fh:
        for split in ("train", "val", "test"):
            domains, ids = fh[split]["domains"][()], fh[split]["item_ids"][()]
            assert domains.dtype == np.int64 and len(domains) == fh[split]["data"].shape[0]
            assert [names[d] for d in domains] == [drummer[i.decode()] for i in ids]


def test_with_a_limit_dataset_wide_entries_are_listed_not_counted(groove, tmp_path):
    manifest_path = manifest_of(groove, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["skipped"] = [{"id": f"odd{i}", "path": f"odd{i}.txt", "reason": "not a MIDI file"} for i in range(5)]
    manifest_path.write_text(json.dumps(manifest))
    report = build(manifest_path, {**SPEC, "limit": 20}, tmp_path / "g.h5", tmp_path / "g.skipped.json")
    assert report["items"] == 20 and report["listed_not_counted"] == 5
    assert len(read_json(tmp_path / "g.skipped.json")["skipped"]) == 5


def test_shard_count_of_a_root_copy_counts_the_copy(config, tmp_path):
    from seqpipe.raw import demo

    root = demo.generate("lakh", tmp_path / "lakh", n_items=30, seed=0)
    config["features"]["lakh_roll"] = {"dataset": "lakh", "kind": "piano_roll", "shards": "auto"}
    config["datasets"]["lakh"] = {"source": "root", "root": str(root), "limit": None}
    assert shard_count(config, "lakh_roll") == 1  # 30 files, not Lakh's published 176,581
