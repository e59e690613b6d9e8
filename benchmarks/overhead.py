"""What a sweep pays per job around its training: N tiny cells through a real `snakemake`.

N seeds of `folder_emotion/mlp` (2 epochs, run cache off) trained and evaluated one job at a time
(`--cores 1`), MLflow logging included (the `track_runs` rule), beside a bare
`python -c "import torch, torch.optim"` process measured in the same run. The data (demo files,
features, validation, the MLflow store) are built first and not timed.

"Per job" counts each training job and each evaluation job as one job: the whole `snakemake` call
(its start, planning, every job, the MLflow logging) divided by 2 N, against one bare torch
process (medians of three before and three after). Both wall-clock and CPU time (user + system of
the process and its children) are printed; the last line uses CPU time, which a shared, loaded
machine inflates far less than wall-clock time.

    .venv/bin/python benchmarks/overhead.py [--cells 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def workflow_copy(folder: Path, cells: int) -> Path:
    """A copy of the workflow whose only task is folder_emotion/mlp with `cells` seeds, 2 epochs, cache off."""
    shutil.copy2(REPO / "Snakefile", folder / "Snakefile")
    for sub in ("workflow", "src", "envs"):
        shutil.copytree(REPO / sub, folder / sub, ignore=shutil.ignore_patterns("__pycache__"))
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    config = {**base, "datasets": {"folder": base["datasets"]["folder"]}, "demo": {"folder": base["demo"]["folder"]},
              "features": {"folder_summary": base["features"]["folder_summary"]},
              "tasks": {"folder_emotion": {**base["tasks"]["folder_emotion"], "models": ["mlp"]}},
              "models": {"mlp": base["models"]["mlp"]}, "cache": {"enabled": False},
              "training": {**base.get("training", {}), "epochs": 2, "seeds": list(range(cells))}}
    config.pop("sweep", None)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def timed(args: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, the command and its children) of one command (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def snakemake(folder: Path, *targets: str) -> tuple[float, float]:
    return timed([str(BIN / "snakemake"), *targets, "--cores", "1", "--quiet", "rules"], cwd=folder)


def bare_torch() -> tuple[float, float]:
    """Median wall and CPU seconds of three bare `import torch, torch.optim` processes."""
    runs = [timed([sys.executable, "-c", "import torch, torch.optim"]) for _ in range(3)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=5, help="seeds of folder_emotion/mlp (default: 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = workflow_copy(Path(tmp), args.cells)
        snakemake(folder, "results/validation/folder_emotion.json", "results/mlflow/tracking.json")  # data, not timed
        bare_before = bare_torch()
        total, total_cpu = snakemake(folder)
        bare_after = bare_torch()  # before and after: a shared machine's load drifts
        logged = len(list((folder / "results/runs").rglob("metrics.json")))
    jobs = 2 * args.cells
    if logged != args.cells:
        raise SystemExit(f"expected {args.cells} evaluated runs, found {logged}")
    bare, bare_cpu = (bare_before[0] + bare_after[0]) / 2, (bare_before[1] + bare_after[1]) / 2
    print(f"bare `python -c 'import torch, torch.optim'`: {bare:.2f} s, {bare_cpu:.2f} s CPU (medians of 3 before and 3 after)")
    print(f"snakemake, {args.cells} cells = {jobs} jobs (train and evaluate each count as a job; its start, planning and "
          f"the MLflow logging included): {total:.1f} s, {total_cpu:.1f} s CPU; per job {total / jobs:.2f} s, {total_cpu / jobs:.2f} s CPU")
    print(f"wall clock: {total / jobs / bare:.2f} x a bare torch process per job")
    print(f"overhead: {total_cpu / jobs / bare_cpu:.2f} x a bare torch process per job (goal <= 1.5) [CPU time]")

if __name__ == "__main__":
    main()
