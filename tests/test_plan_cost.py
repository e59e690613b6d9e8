"""Issue 25 item 2: what a large plan pays per cell. track_runs declares each run's files (run.json, scalars.csv,
best.pt, model.pt) only where a job sees nothing but its declared inputs (no shared file system for inputs and
outputs); on a shared file system it waits for each run through its metrics.json, and those 4 more lookups per
cell were a tenth of a 1,000-cell plan. A real `snakemake -n` prints each job's inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.projects import copy_workflow

BIN = Path(sys.executable).parent


def track_runs_inputs(folder: Path, *args: str) -> str:
    """The input line of the track_runs job in a dry run's listing."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "results/mlflow/logged.json", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    block = proc.stdout.split("rule track_runs:", 1)[1].split("\n\n", 1)[0]
    return next(line for line in block.splitlines() if line.strip().startswith("input:"))


@pytest.mark.slow
def test_track_runs_declares_the_run_files_only_where_inputs_are_staged(tmp_path):
    folder = copy_workflow(tmp_path)
    shared = track_runs_inputs(folder)
    assert "metrics.json" in shared and "run.json" not in shared and "best.pt" not in shared
    staged = track_runs_inputs(folder, "--shared-fs-usage", "persistence", "software-deployment", "sources",
                               "source-cache")  # no input-output: each job gets its declared inputs only
    assert all(name in staged for name in ("metrics.json", "run.json", "scalars.csv", "best.pt", "model.pt"))
