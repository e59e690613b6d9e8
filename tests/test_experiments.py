"""An experiment's first call plans every cell it will run, and its report goes to a folder of its own
(issue 20 items 2 and 3), through a real `snakemake`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from seqpipe.config import plan

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXPERIMENT_CELLS = 8  # experiments/groove_rnns.yaml: gru and lstm, two widths, two seeds, one task


def test_report_paths():
    assert plan.report_files() == plan.report_files({"experiment": None}) == {
        "csv": "results/report/leaderboard.csv", "md": "results/report/leaderboard.md",
        "html": "results/report/leaderboard.html", "figures": "results/report/figures"}
    assert plan.report_files({"experiment": {"name": "groove_rnns"}})["csv"] == "results/report/groove_rnns/leaderboard.csv"
    assert plan.report_dir({"experiment": {"name": "groove_rnns"}}) == "results/report/groove_rnns"


def snakemake(work: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def planned(out: str) -> Counter:
    """Jobs per rule in a dry run's job-stats table, without `total`."""
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
                    if m.group(1) != "total"})


@pytest.fixture(scope="module")
def after_a_run(tmp_path_factory) -> Path:
    """A project whose MLflow store was set up for the default experiment by an earlier call (what a demo
    leaves behind, as far as the tracking set-up is concerned)."""
    tmp_path = tmp_path_factory.mktemp("experiments")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, tmp_path / name)
    for folder in ("workflow", "src", "profiles", "envs", "experiments"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=ignore)
    snakemake(tmp_path, "--cores", "1", plan.TRACKING)
    return tmp_path


@pytest.mark.slow
def test_a_new_experiment_plans_every_cell_on_the_first_call(after_a_run):
    """Before: the first call planned only tracking_setup (exit 0, `-n` showed the same); the cells trained on a
    second call. Snakemake looks at the jobs below a job that reruns only through their edge to it, and the
    training jobs' edge to the MLflow set-up was ancient()."""
    jobs = planned(snakemake(after_a_run, "-n", "--configfile", "experiments/groove_rnns.yaml"))
    assert jobs["tracking_setup"] == 1 and jobs["train"] == jobs["evaluate"] == EXPERIMENT_CELLS, jobs
    assert jobs["report"] == 1, jobs
    jobs = planned(snakemake(after_a_run, "-n", "--config", "set=mlflow.experiment=foo models.gru.hidden_size=32"))
    default_cells = len(plan.cells(plan_config()))
    assert jobs["tracking_setup"] == 1 and jobs["train"] == jobs["evaluate"] == default_cells, jobs


def plan_config() -> dict:
    import yaml

    from seqpipe.config.load import checked_config
    from seqpipe.config.sweep import apply_sweep

    config = checked_config(yaml.safe_load((REPO / "config.yaml").read_text()), {})
    return {**config, **apply_sweep(config)}


@pytest.mark.slow
def test_an_experiment_reports_in_its_own_folder(after_a_run):
    """The experiment's leaderboard goes to results/report/<experiment>/; the main one is not an output of its
    call (before, the experiment's call rewrote results/report/leaderboard.* with its 5 rows)."""
    out = snakemake(after_a_run, "-n", "--configfile", "experiments/groove_rnns.yaml")
    report = out.split("rule report:", 1)[1].split("\n\n", 1)[0]
    outputs = re.search(r"^\s+output: (.*)$", report, flags=re.M).group(1).split(", ")
    assert set(outputs) == {f"results/report/groove_rnns/{name}" for name in
                            ("leaderboard.csv", "leaderboard.md", "leaderboard.html", "figures")}, outputs
