"""What a sweep pays per job around its training: N tiny cells through a real `snakemake`.

N seeds of `folder_emotion/mlp` (2 epochs, run cache off) trained and evaluated one job at a time
(`--cores 1`), MLflow logging included (the `track_runs` rule), beside a bare
`python -c "import torch, torch.optim"` process measured in the same run. What a call does once per
task or once per call, not per cell (demo files, features, validation, the task's baseline, the
MLflow store, the code stamps), is built first and not timed; the output says so. The timed call's
time is then split by phase: each rule's jobs (their benchmark files), Snakemake's start and
planning (a `-n` of the same call), and the rest.

"Per job" counts each training job and each evaluation job as one job: the whole `snakemake` call
(its start, planning, every job, the MLflow logging) divided by 2 N, against one bare torch
process (medians of three before and three after). Both wall-clock and CPU time (user + system of
the process and its children) are printed; the last line uses CPU time, which a shared, loaded
machine inflates far less than wall-clock time.

    .venv/bin/python benchmarks/overhead.py [--cells 5]
"""

from __future__ import annotations

import argparse
import json
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
# built before the timed call: the data, the task's baseline, the MLflow store and the code stamps
UNTIMED = ("results/validation/folder_emotion.json", "results/baselines/folder_emotion/metrics.json",
           "results/mlflow/tracking.json", "results/code/seqpipe.training.train.sha256",
           "results/code/seqpipe.evaluation.evaluate.sha256", "results/code/seqpipe.tracking.sync.sha256")


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


def snakemake(folder: Path, *args: str) -> tuple[float, float]:
    return timed([str(BIN / "snakemake"), *args, "--cores", "1", "--quiet", "rules"], cwd=folder)


BARE = "import torch, torch.optim"
# the least a training process does: an optimizer's first use imports torch._dynamo (torch 2.x), ~1 s more
BARE_STEP = BARE + "; m = torch.nn.Linear(4, 1); o = torch.optim.Adam(m.parameters()); m(torch.ones(1, 4)).sum().backward(); o.step()"


def bare_torch(code: str = BARE) -> tuple[float, float]:
    """Median wall and CPU seconds of three bare `python -c CODE` processes."""
    runs = [timed([sys.executable, "-c", code]) for _ in range(3)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def job_seconds(folder: Path, rule: str) -> list[tuple[float, float]]:
    """Wall and CPU seconds of each job of a rule, from its Snakemake benchmark files."""
    found = []
    base = folder / "results/benchmarks"
    for tsv in sorted([*base.glob(f"{rule}.tsv"), *(base / rule).rglob("*.tsv")]):
        row = dict(zip(*(line.split("\t") for line in tsv.read_text().splitlines()[:2])))
        found.append((float(row["s"]), float(row["cpu_time"])))
    return found


def phases(folder: Path, total: float, total_cpu: float, plan: tuple[float, float], jobs: int) -> list[str]:
    """Where the timed call's time goes: each rule's jobs (their benchmark files), and the rest."""
    lines, spent, spent_cpu = [], 0.0, 0.0
    for rule in ("train", "evaluate", "track_runs"):
        times = job_seconds(folder, rule)
        if times:
            wall, cpu = sum(t[0] for t in times), sum(t[1] for t in times)
            spent, spent_cpu = spent + wall, spent_cpu + cpu
            lines.append(f"  {rule}: {len(times)} job(s), {wall / len(times):.2f} s each ({cpu / len(times):.2f} s CPU)")
    lines.append(f"  snakemake's start and planning (a `-n` of the same call, measured apart): {plan[0]:.2f} s ({plan[1]:.2f} s CPU)")
    rest, rest_cpu = total - spent - plan[0], total_cpu - spent_cpu - plan[1]
    lines.append(f"  the rest (job start-up and bookkeeping by snakemake, shells): {rest:.2f} s ({rest_cpu:.2f} s CPU), "
                 f"{rest / jobs:.2f} s per job")
    lines.append("  (a job's CPU time is Snakemake's benchmark sampling, which misses part of a few-second job: the rest's CPU "
                 "is then too high by as much; the total is the process accounting's)")
    return lines


def worker_cpu(folder: Path, wait_s: float = 10.0) -> tuple[int, float]:
    """Jobs served and CPU seconds of the preload worker the last call started (its log's last line). The
    worker outlives Snakemake by a moment and is not Snakemake's waited-for child, so the call's own
    accounting misses its CPU (and that of the forks that ran the jobs): it is added here."""
    from seqpipe.worker import STATS_PREFIX

    log = folder / ".snakemake/log/seqpipe-worker.log"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if line.startswith(STATS_PREFIX)] if log.exists() else []
        if lines:
            stats = json.loads(lines[-1][len(STATS_PREFIX):])
            return int(stats["jobs"]), float(stats["cpu_s"])
        time.sleep(0.2)
    raise SystemExit(f"the preload worker left no figures in {log}")


def timed_cells(folder: Path, preload: bool) -> tuple[float, float, int]:
    """One timed call that trains and evaluates every cell (again: --forcerun train, so what follows reruns too,
    as in a fresh project); wall, CPU, and how many jobs the worker ran."""
    (folder / ".snakemake/log/seqpipe-worker.log").unlink(missing_ok=True)
    wall, cpu = snakemake(folder, "--forcerun", "train", "--config", f"preload={str(preload).lower()}")
    if not preload:
        return wall, cpu, 0
    served, worker = worker_cpu(folder)
    return wall, cpu + worker, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=5, help="seeds of folder_emotion/mlp (default: 5)")
    args = parser.parse_args()
    jobs = 2 * args.cells
    with tempfile.TemporaryDirectory() as tmp:
        folder = workflow_copy(Path(tmp), args.cells)
        snakemake(folder, *UNTIMED)  # once per task or per call, not per job: not timed
        plan = snakemake(folder, "-n")
        bare_before, step_before = bare_torch(), bare_torch(BARE_STEP)
        own_wall, own_cpu, _ = timed_cells(folder, preload=False)
        breakdown = phases(folder, own_wall, own_cpu, plan, jobs)  # each job's own process: its benchmark files
        total, total_cpu, served = timed_cells(folder, preload=True)
        bare_after, step_after = bare_torch(), bare_torch(BARE_STEP)  # before and after: a shared machine's load drifts
        logged = len(list((folder / "results/runs").rglob("metrics.json")))
    if logged != args.cells:
        raise SystemExit(f"expected {args.cells} evaluated runs, found {logged}")
    bare, bare_cpu = (bare_before[0] + bare_after[0]) / 2, (bare_before[1] + bare_after[1]) / 2
    step, step_cpu = (step_before[0] + step_after[0]) / 2, (step_before[1] + step_after[1]) / 2
    print(f"untimed preparation (per task or per call, not per job): {', '.join(UNTIMED)}")
    print(f"bare `python -c 'import torch, torch.optim'`: {bare:.2f} s, {bare_cpu:.2f} s CPU (medians of 3 before and 3 after)")
    print(f"bare torch process with one Adam step (the least a training job does): {step:.2f} s, {step_cpu:.2f} s CPU")
    print(f"snakemake, {args.cells} cells = {jobs} jobs (train and evaluate each count as a job; its start, planning and "
          "the MLflow logging included):")
    print(f"  preload: false (each job its own process): {own_wall:.1f} s, {own_cpu:.1f} s CPU; per job "
          f"{own_wall / jobs:.2f} s, {own_cpu / jobs:.2f} s CPU = {own_cpu / jobs / bare_cpu:.2f} x a bare torch process [CPU]")
    print(f"  preload: true (the default; {served} of the {jobs} jobs forked from the worker, CPU the worker's and its "
          f"forks' included): {total:.1f} s, {total_cpu:.1f} s CPU; per job {total / jobs:.2f} s, {total_cpu / jobs:.2f} s CPU")
    print("where it goes with preload: false:\n" + "\n".join(breakdown))
    print(f"wall clock: {total / jobs / bare:.2f} x a bare torch process per job (preload: false {own_wall / jobs / bare:.2f} x)")
    print(f"overhead: {total_cpu / jobs / bare_cpu:.2f} x a bare torch process per job (goal <= 1.5) [CPU time]")


if __name__ == "__main__":
    main()
