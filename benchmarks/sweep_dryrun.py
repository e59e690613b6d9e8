"""How long `snakemake -n` takes on 1,000- and 10,000-cell sweeps, beside a single-cell configuration.

4 tasks x gru x (5 hidden sizes x 5 learning rates) x 10 seeds = 1,000 training jobs, and x 100 seeds
= 10,000 (each with its evaluation: 20,000 jobs and more), planned from a copy of the workflow with no
results yet, in the same run as the one-cell plan. Goal: 10,000 cells in <= 20 s (issue 25).

Beside each size, the floor: a bare Snakefile with the same jobs (a train and an evaluate rule with
one input and one output each, a `shell:` line, nothing else) planned by the same Snakemake, so a
reader sees how much of the plan is Snakemake's own per-job work and how much is the workflow's.

With `--ablation`, the largest size is planned once more with the train and evaluate rules cut down to
their data inputs (the task file; evaluate also best.pt), two outputs each, and no log, benchmark,
params or resources (`cut_down`): what is left of the plan when the jobs' shape is taken away.

    .venv/bin/python benchmarks/sweep_dryrun.py [--sizes 1000 10000] [--ablation]
"""

from __future__ import annotations

import argparse
import os
import resource
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


BARE = """\
CELLS = [(t, s) for t in range({tasks}) for s in range({per_task})]


rule all:
    input:
        [f"runs/{{t}}/{{s}}/metrics.json" for t, s in CELLS],


rule train:
    input:
        "data/{{task}}.h5",
    output:
        "runs/{{task}}/{{seed}}/best.pt",
    shell:
        "touch {{output}}"


rule evaluate:
    input:
        "runs/{{task}}/{{seed}}/best.pt",
    output:
        "runs/{{task}}/{{seed}}/metrics.json",
    shell:
        "touch {{output}}"
"""


def bare_copy(folder: Path, cells: int) -> Path:
    """A bare Snakefile planning `cells` train and evaluate jobs over 4 task files (the floor)."""
    (folder / "Snakefile").write_text(BARE.format(tasks=len(TASKS), per_task=cells // len(TASKS)))
    (folder / "data").mkdir()
    for t in range(len(TASKS)):
        (folder / f"data/{t}.h5").touch()
    return folder


def _cut(text: str, start: str, end: str, replacement: str, after: str) -> str:
    """`text` with the span from `start` up to `end` (both searched after `after`) replaced."""
    i = text.index(start, text.index(after))
    j = text.index(end, i + len(start))
    return text[:i] + replacement + text[j:]


def cut_down(folder: Path) -> Path:
    """The ablation: the workflow copy's train rule cut down to the task file as its input and best.pt and run.json
    as outputs, evaluate to the task file and best.pt in, metrics.json and predictions.h5 out, and `shell: "true"`; no
    log, benchmark, params, resources or conda. Everything else as it is (the report's and track_runs' inputs)."""
    for name in ("train", "evaluate"):
        path = folder / f"workflow/rules/{name}.smk"
        text = _cut(path.read_text(), "    log:\n", "    shell:\n", "", f"rule {name}:")
        text = _cut(text, "    shell:\n", "\n\n", '    shell:\n        "true"', f"rule {name}:")
        text = _cut(text, "        validation=" if name == "train" else "        run=", "    output:", "", f"rule {name}:")
        if name == "train":
            text = _cut(text, "        last=", "        run=", "", "rule train:")
        path.write_text(text)
    return folder


def dry_run(folder: Path) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds (user + system of snakemake and its children) of `snakemake -n`, and the
    training jobs it plans. CPU time is the figure to read on a shared, loaded machine."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--quiet", "rules"], cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    trains = next((int(line.split()[-1]) for line in proc.stdout.splitlines() if line.startswith("train ")), 0)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, trains


TASKS = ("groove_style", "maestro_composer", "deam_emotion", "groove_reconstruction")
GRID = {"hidden_size": [16, 32, 64, 128, 256], "training.optimizer.lr": [0.0003, 0.001, 0.002, 0.003, 0.01]}


def sweep_config(base: dict, cells: int) -> dict:
    """4 tasks x gru x the 5x5 grid x (cells / 100) seeds."""
    seeds = list(range(cells // (len(TASKS) * 25)))
    return {**base, "tasks": {t: {**base["tasks"][t], "models": ["gru"]} for t in TASKS}, "models": {"gru": base["models"]["gru"]},
            "training": {**base.get("training", {}), "seeds": seeds}, "sweep": {"models": ["gru"], "grid": GRID}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="sweep sizes in cells (multiples of 100)")
    parser.add_argument("--ablation", action="store_true",
                        help="also plan the largest size with train and evaluate cut down to their data inputs (cut_down)")
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    single = {**base, "tasks": {"groove_style": {**base["tasks"]["groove_style"], "models": ["gru"]}},
              "models": {"gru": base["models"]["gru"]}, "training": {**base.get("training", {}), "seeds": [0]}}
    results, floors = [], []
    for config in [single, *(sweep_config(base, n) for n in args.sizes)]:  # one after another, in this run
        with tempfile.TemporaryDirectory() as tmp:
            results.append(dry_run(workflow_copy(Path(tmp), config)))
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            floors.append(dry_run(bare_copy(Path(tmp), n)))
    if args.ablation:
        with tempfile.TemporaryDirectory() as tmp:
            cut = dry_run(cut_down(workflow_copy(Path(tmp), sweep_config(base, args.sizes[-1]))))
    one_s, one_cpu, one_n = results[0]
    print(f"snakemake -n: {one_n} training job in {one_s:.1f} s ({one_cpu:.1f} s CPU)")
    for (seconds, cpu, n), (floor_s, floor_cpu, floor_n), size in zip(results[1:], floors, args.sizes):
        if n != size or floor_n != size:
            raise SystemExit(f"expected {size} training jobs, planned {n} (bare Snakefile: {floor_n})")
        print(f"snakemake -n: {n} training jobs in {seconds:.1f} s ({cpu:.1f} s CPU); {seconds / one_s:.1f}x the one-cell "
              f"plan's time ({cpu / one_cpu:.1f}x its CPU), {(cpu - one_cpu) / n * 1000:.2f} ms CPU per cell beyond it")
        print(f"  floor, a bare Snakefile with the same {2 * n} train and evaluate jobs: {floor_s:.1f} s ({floor_cpu:.1f} s CPU); "
              f"seqpipe's plan is {cpu / floor_cpu:.1f}x its CPU")
        if args.ablation and size == args.sizes[-1]:
            print(f"  ablation, this workflow with train and evaluate cut down to their data inputs (cut_down): {cut[0]:.1f} s "
                  f"({cut[1]:.1f} s CPU) for {cut[2]} training jobs")
        if n == 10000:
            print(f"10,000 cells planned in {seconds:.1f} s wall, {cpu:.1f} s CPU (goal <= 20 s; a bare Snakefile: "
                  f"{floor_s:.1f} s, {floor_cpu:.1f} s CPU)")

if __name__ == "__main__":
    main()
