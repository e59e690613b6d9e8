"""Packed training (resources.train.pack > 1): the packs, the pack record, and the DAG that joins a pack's
cells into one group job. The real clusters: tests/test_slurm.py (SLURM) and tests/test_cluster.py (HTCondor)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from seqpipe.config.plan import PACK_RECORD, packs
from seqpipe.training.packing import covered_seconds, pack_record
from tests.test_pipeline import copy_workflow

BIN = Path(sys.executable).parent


def test_packs_cut_the_cells_in_order(monkeypatch):
    """Five cells in packs of two: [2, 2, 1], in the cells' stable order; no packs unpacked."""
    from seqpipe.config import plan
    from seqpipe.config.load import Cell

    five = [Cell("a", "mlp", seed) for seed in range(5)]
    monkeypatch.setattr(plan, "cells", lambda config: five)
    assert packs({"resources": {"train": {"pack": 2}}}) == [five[0:2], five[2:4], five[4:]]
    assert packs({"resources": {"train": {"pack": 1}}}) == []
    assert packs({"resources": {"train": {}}}) == []
    assert PACK_RECORD.format(pack=3) == "results/benchmarks/packs/3.json"


def write_events(run_dir: Path, times: list[float]) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_text("".join(json.dumps({"event": "e", "time": t}) + "\n" for t in times))


def test_pack_record_measures_the_overlap_and_reports_a_cell_without_events(tmp_path):
    write_events(tmp_path / "0", [100.0, 104.0, 110.0])
    write_events(tmp_path / "1", [105.0, 115.0])
    (tmp_path / "2").mkdir()  # no events.jsonl: skipped and said so
    record = pack_record([str(tmp_path / name) for name in ("0", "1", "2")])
    assert [cell["seconds"] for cell in record["cells"]] == [10.0, 10.0]
    assert record["busy_s"] == 20.0 and record["wall_s"] == 15.0 and record["overlap_s"] == 5.0
    assert [item["run"] for item in record["skipped"]] == [str(tmp_path / "2")]
    assert "events.jsonl" in record["skipped"][0]["reason"]
    assert covered_seconds([(0, 1), (2, 3)]) == 2 and covered_seconds([(0, 4), (1, 2)]) == 4


def test_pack_record_command(tmp_path):
    """`seqpipe pack-record` writes the record (one after another: no overlap) and names a skipped cell."""
    write_events(tmp_path / "runs/0", [1.0, 3.0])
    write_events(tmp_path / "runs/1", [3.0, 6.0])
    (tmp_path / "runs/2").mkdir()
    out = tmp_path / "packs/0.json"
    proc = subprocess.run([str(BIN / "seqpipe"), "pack-record", "--runs", *(str(tmp_path / f"runs/{i}/run.json") for i in range(3)),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["overlap_s"] == 0 and record["busy_s"] == 5.0 and len(record["skipped"]) == 1
    assert "runs/2 left out" in proc.stderr


TINY = {
    "demo": {"groove": {"n_items": 20}},
    "features": {"grid": {"dataset": "groove", "kind": "drum_grid", "target": "style"}},
    "tasks": {"style": {"features": "grid", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
    "models": {"mlp": {"arch": "mlp", "hidden": [32]}},
    "training": {"seeds": [0, 1, 2]},
    "resources": {"train": {"pack": 2}},
}


def group_jobs(dry_run: str) -> list[list[str]]:
    """The wildcards of each job of each group job Snakemake's dry run lists."""
    return [re.findall(r"wildcards: (.*)", part.split("\n[")[0]) for part in dry_run.split("] Group job train")[1:]]


def test_each_pack_is_one_group_job_without_group_components(tmp_path):
    """Three cells with `pack: 2`: two pack records, each joining its own cells into one group job (the
    HTCondor profile's dry run lists group jobs; no --group-components), and the local profile's
    `--resources gpu=4` still plans (ints against ints), each cell told it shares its GPU."""
    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    local = subprocess.run([str(BIN / "snakemake"), "--profile", "profiles/local", "-n", "--printshellcmds"], cwd=workdir,
                           env=env, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    assert local.stdout.count("rule train:") == 3 and local.stdout.count("rule train_pack:") == 2, local.stdout[-3000:]
    assert local.stdout.count("--gpu-share 2") == 3, local.stdout[-3000:]  # each cell: 1/2 of its GPU's memory
    condor = subprocess.run([str(BIN / "snakemake"), "--profile", "profiles/condor", "-n"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=600)
    assert condor.returncode == 0, condor.stderr[-3000:]
    cell = "task=style, model=mlp, seed={}".format
    assert sorted(map(sorted, group_jobs(condor.stdout))) == [sorted([cell(0), cell(1), "pack=0"]), sorted([cell(2), "pack=1"])]


def test_group_components_on_top_of_packs_is_refused(tmp_path):
    """`--group-components train=N` would put N packs in one job, each cell still told it shares the GPU
    with pack-1 others: refused in one paragraph that names the flag and the fix."""
    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "--profile", "profiles/condor", "-n", "--group-components", "train=2"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "--group-components train=2" in output and "resources.train.pack" in output, output[-3000:]


def test_a_pack_that_does_not_exist_is_named(tmp_path):
    """Asking for a pack record the config does not make (pack 1: no packs) says which and why, not an IndexError."""
    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump({**TINY, "resources": {"train": {"pack": 1}}}))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "1", "-n", "results/benchmarks/packs/0.json"], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "no such pack" in output and "resources.train.pack is 1" in output, output[-3000:]
    assert "IndexError" not in output
