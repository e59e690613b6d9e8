"""How long `snakemake -n` takes on a 1,000-cell sweep, beside a single-cell configuration.

4 tasks x (2 models x 5 learning rates x 5 hidden sizes) x 5 seeds = 1,000 training jobs (and
as many evaluations), planned from a copy of the workflow with no results yet. Goal: < 10 s.

    .venv/bin/python benchmarks/sweep_dryrun.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def workflow_copy(folder: Path, config: dict) -> Path:
    shutil.copy2(REPO / "Snakefile", folder / "Snakefile")
    for sub in ("workflow", "src"):
        shutil.copytree(REPO / sub, folder / sub, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def dry_run(folder: Path) -> tuple[float, int]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--quiet", "rules"], cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    trains = next((int(line.split()[-1]) for line in proc.stdout.splitlines() if line.startswith("train ")), 0)
    return elapsed, trains


def main() -> None:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    single = {**base, "tasks": {"groove_style": base["tasks"]["groove_style"]}, "models": {"gru": base["models"]["gru"]}}
    sweep = {**base, "training": {**base.get("training", {}), "seeds": [0, 1, 2, 3, 4]},
             "sweep": {"grid": {"hidden_size": [16, 32, 64, 128, 256], "training.optimizer.lr": [0.0003, 0.001, 0.002, 0.003, 0.01]}}}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        one_s, one_n = dry_run(workflow_copy(Path(a), single))
        many_s, many_n = dry_run(workflow_copy(Path(b), sweep))
    print(f"snakemake -n: {one_n} training job in {one_s:.1f} s | {many_n} training jobs in {many_s:.1f} s"
          f" | ratio {many_s / one_s:.1f}x (goal: the sweep under 10 s)")


if __name__ == "__main__":
    main()
