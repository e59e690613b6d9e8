"""A dataset copy of your own (`source: root`) through a real `snakemake`: asked for by file, given
relative to the project, moved, mistyped, and broken while the last good manifest is kept."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqpipe.raw.demo import generate

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RECON = {"paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"}


def project(path: Path, datasets: dict, features: dict) -> Path:
    """A copy of the workflow in `path` with a config of the given datasets and feature sets (one task each)."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copy2(REPO / "Snakefile", path / "Snakefile")
    for folder in ("workflow", "src", "profiles", "envs"):
        shutil.copytree(REPO / folder, path / folder, ignore=ignore)
    config = {"datasets": datasets, "features": features,
              "tasks": {f"{name}_recon": {"features": name, **RECON} for name in features},
              "models": {"mlp": {"arch": "mlp", "hidden": [8]}}, "training": {"epochs": 1, "seeds": [0]},
              "mlflow": {"log_model": False}}
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(workdir / "src")}
    return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900)


def planned(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs per rule of a dry run (`total` left out); the dry run must succeed."""
    proc = snakemake(workdir, *args, "-n", "--quiet", "rules")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return {m[1]: int(m[2]) for line in proc.stdout.splitlines()
            if (m := re.match(r"^(\w+)\s+(\d+)$", line.strip())) and m[1] != "total"}


@pytest.fixture(scope="module")
def lakh_copy(tmp_path_factory) -> Path:
    return generate("lakh", tmp_path_factory.mktemp("copies") / "lakh", n_items=30, seed=1)


@pytest.mark.parametrize("shards, expected", [("auto", {}), (2, {"features_shard": 2})])
def test_a_lakh_copy_asked_for_by_file_plans_its_shards_of_the_copy(tmp_path, lakh_copy, shards, expected):
    """The features rule's wildcards match configured names only (not a shard's part file), and
    `shards: auto` counts the 30-file copy, not Lakh's published 176,581 files."""
    roll = {"dataset": "lakh", "kind": "piano_roll", "fps": 8, "window": 64, "hop": 64, "shards": shards}
    workdir = project(tmp_path / "p", {"lakh": {"source": "root", "root": str(lakh_copy)}}, {"lakh_roll": roll})
    proc = snakemake(workdir, "results/features/lakh/lakh_roll.h5", "-n", "--quiet", "rules",
                     "--strict-dag-evaluation", "functions")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "InputFunctionException" not in output and "KeyError" not in output, output[-4000:]
    jobs = {m[1]: int(m[2]) for line in proc.stdout.splitlines() if (m := re.match(r"^(\w+)\s+(\d+)$", line.strip()))}
    assert {k: v for k, v in jobs.items() if k in ("features", "features_shard")} == {"features": 1, **expected}


def test_a_missing_root_is_refused_up_front_naming_the_key(tmp_path):
    (tmp_path / "p" / "mydata" / "groove").mkdir(parents=True)
    grid = {"dataset": "groove", "kind": "drum_grid", "target": "style"}
    workdir = project(tmp_path / "p", {"groove": {"source": "root", "root": "mydata/grove"}}, {"grid": grid})
    proc = snakemake(workdir, "-n")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in output
    assert "datasets.groove.root: the folder mydata/grove does not exist" in output, output[-3000:]


@pytest.mark.slow
def test_a_relative_root_is_read_from_the_project_and_survives_a_move_and_a_failed_index(tmp_path):
    workdir = tmp_path / "study"
    generate("groove", workdir / "mydata" / "groove", n_items=40, seed=3)
    grid = {"dataset": "groove", "kind": "drum_grid", "target": "style"}
    project(workdir, {"groove": {"source": "root", "root": "mydata/groove"}}, {"grid": grid})
    target = "results/features/groove/grid.h5"
    proc = snakemake(workdir, target)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    manifest = workdir / "resources/raw/groove.manifest.json"
    assert json.loads(manifest.read_text())["root"] == "../../mydata/groove/groove"  # relative: the project can move

    moved = tmp_path / "moved"
    workdir.rename(moved)
    assert planned(moved, target) == {}

    # a copy the index cannot read (an id listed twice): the job fails, the last good manifest stays
    info = moved / "mydata/groove/groove/info.csv"
    good = info.read_text()
    lines = good.splitlines()
    info.write_text("\n".join([*lines, lines[1]]) + "\n")
    before = (moved / "resources/raw/groove.manifest.json").read_bytes()
    proc = snakemake(moved, "resources/raw/groove.manifest.json")
    assert proc.returncode != 0 and "listed twice" in (moved / "logs/index_root/groove.log").read_text()
    assert (moved / "resources/raw/groove.manifest.json").read_bytes() == before
