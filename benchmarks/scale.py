"""Peak memory and throughput of every stage at 1x and 10x the data, and the speed-up of shards.

Builds, in a scratch folder:
- a corpus in Lakh MIDI's layout (`lmd_full/<hex>/<md5>.mid`, piano pieces) at 1x and 10x: the
  same number of items, each piece `--factor` times longer (or, with `--scale items`, `--factor`
  times as many pieces of the same length);
- a `data_path` file in the seqpipe layout (train/val/test groups, float32 [N, 64, 128], int64
  labels of 4 classes) at 1x and 10x N, written block by block.
Then runs each stage through the `seqpipe` command in a subprocess, exactly as a Snakemake job
would (so it measures whatever code is installed): `features` on the corpus; `validate`,
`baseline`, `train` (one epoch, `memory_budget_mb: 64`), `evaluate` and `predict` (the trained run on the
whole data file, streamed in batches) on the data file. For each
it prints the wall time, the peak RSS of the stage's largest process (`ru_maxrss` from `wait4`:
the largest of the process and its waited-for children, e.g. feature workers) at both sizes,
their ratio and the 10x throughput; then the speed-up of N feature shards (N = the cores here,
one job each, run side by side as a cluster would) over one job, with a check that both give the
same bytes. The last line reads:

    scale: peak RSS 10x/1x: features R, validate R, baseline R, train R, evaluate R, predict R (goal <= 1.3)

    .venv/bin/python benchmarks/scale.py                         # everything (several minutes)
    .venv/bin/python benchmarks/scale.py --stages features       # the feature stage only
    .venv/bin/python benchmarks/scale.py --pieces 100 --seconds 30 --n 4000 --factor 10 --keep /tmp/scale
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

STAGES = ("features", "validate", "baseline", "train", "evaluate", "predict")
COMPOSERS = ("bach", "mozart", "chopin", "debussy")


def lakh_corpus(out: Path, pieces: int, seconds: float, seed: int = 0) -> Path:
    """`pieces` piano pieces of `seconds` each, in Lakh's layout (named by the MD5 of their bytes)."""
    import pretty_midi

    from seqpipe.raw.demo.maestro import piano_notes

    root = out / "lmd_full"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(pieces):
        rng = np.random.default_rng([seed, i])
        notes, _, _ = piano_notes(rng, COMPOSERS[i % len(COMPOSERS)], seconds)
        midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
        piano = pretty_midi.Instrument(program=0)
        piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in notes]
        midi.instruments.append(piano)
        scratch = out / f".piece-{i}.mid"
        midi.write(str(scratch))
        md5 = hashlib.md5(scratch.read_bytes()).hexdigest()
        (root / md5[0]).mkdir(parents=True, exist_ok=True)
        scratch.rename(root / md5[0] / f"{md5}.mid")
    return root


def data_file(path: Path, n: int, seed: int = 0, block: int = 1024) -> Path:
    """A pre-split classification file, float32 [N, 64, 128], written in blocks (flat memory)."""
    sizes = {"train": int(n * 0.7), "val": int(n * 0.15)}
    sizes["test"] = n - sizes["train"] - sizes["val"]
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as fh:
        for split, size in sizes.items():
            data = fh.create_dataset(f"{split}/data", shape=(size, 64, 128), dtype=np.float32)
            labels = fh.create_dataset(f"{split}/labels", shape=(size,), dtype=np.int64)
            for start in range(0, size, block):
                stop = min(size, start + block)
                y = rng.integers(0, 4, stop - start)
                x = rng.normal(0.0, 1.0, (stop - start, 64, 128)).astype(np.float32)
                x[:, :, :4] += np.eye(4, dtype=np.float32)[y][:, None, :]  # learnable from 4 channels
                data[start:stop], labels[start:stop] = x, y
    return path


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """Run a command; (seconds, peak RSS in MB of its largest process, exit code).

    The stage is started by GNU time when it is there: Linux folds the spawning process's peak RSS
    into a child's `ru_maxrss` at exec (Python spawns with vfork), so a child of this benchmark,
    which holds the generated data, would report at least this process's size. GNU time is small,
    and it reports the stage's own peak (and that of the stage's workers).
    """
    start = time.perf_counter()
    peak_file = log.with_suffix(".maxrss")
    if GNU_TIME:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(peak_file), *cmd]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = usage.ru_maxrss
    if GNU_TIME and peak_file.exists():
        peak_kb = int(peak_file.read_text().split()[-1])
    return time.perf_counter() - start, peak_kb / 1024, proc.returncode


def seqpipe(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqpipe", *args]


def feature_spec(window: int = 64) -> dict:
    from seqpipe.config.load import validate_config

    config = validate_config({
        "datasets": {"lakh": {"source": "root", "root": "/unused"}},
        "features": {"roll": {"dataset": "lakh", "kind": "piano_roll", "fps": 8, "window": window, "hop": window}},
        "tasks": {"t": {"features": "roll", "paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"}},
        "models": {"mlp": {"arch": "mlp"}},
    })
    settings = {k: v for k, v in config["features"]["roll"].items() if k != "shards"}
    return {"name": "roll", **settings, "limit": None}


def task_and_job(data: Path) -> tuple[dict, dict, dict]:
    from seqpipe.config.load import task_config, train_job, validate_config

    config = validate_config({
        "tasks": {"scale": {"data_path": str(data), "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
        "models": {"mlp": {"arch": "mlp", "hidden": [32]}},
        "training": {"epochs": 1, "memory_budget_mb": 64, "batch_size": 256, "progress": False},
        "mlflow": {"log_model": False},
    })
    return config, task_config(config, "scale"), train_job(config, "scale", "mlp", 0)


def features_stage(work: Path, size: str, pieces: int, seconds: float) -> dict:
    raw = work / f"lakh_{size}"
    if not raw.exists():
        lakh_corpus(raw, pieces, seconds)
    manifest = work / f"lakh_{size}.manifest.json"
    if not manifest.exists():
        subprocess.run(seqpipe("manifest", "--dataset", "lakh", "--root", str(raw), "--out", str(manifest)), check=True)
    out = work / f"features_{size}.h5"
    seconds_, peak, rc = run(seqpipe("features", "--manifest", str(manifest), "--spec", json.dumps(feature_spec()),
                                     "--out", str(out), "--skipped", str(work / f"features_{size}.skipped.json"),
                                     "--workers", str(os.cpu_count() or 1)), work / f"features_{size}.log")
    return {"seconds": seconds_, "peak_mb": peak, "rc": rc, "units": pieces, "unit": "items"}


def shard_speedup(work: Path, size: str) -> str:
    """N shard jobs side by side (1 worker each) + merge, against one job with 1 worker."""
    n = os.cpu_count() or 1
    manifest, spec = work / f"lakh_{size}.manifest.json", json.dumps(feature_spec())
    one = work / "one_job.h5"
    single, _, rc1 = run(seqpipe("features", "--manifest", str(manifest), "--spec", spec, "--out", str(one),
                                 "--skipped", str(work / "one_job.skipped.json"), "--workers", "1"), work / "one_job.log")
    start = time.perf_counter()
    parts = [work / f"part{i}-of-{n}.h5" for i in range(n)]
    procs = [subprocess.Popen(seqpipe("features", "--manifest", str(manifest), "--spec", spec, "--shard", f"{i}/{n}",
                                      "--part", str(p), "--workers", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
             for i, p in enumerate(parts)]
    rcs = [p.wait() for p in procs]
    extracted = time.perf_counter() - start
    merged = work / "sharded.h5"
    merge_s, _, rc2 = run(seqpipe("features", "--manifest", str(manifest), "--spec", spec, "--out", str(merged),
                                  "--skipped", str(work / "sharded.skipped.json"), "--parts", *map(str, parts)), work / "merge.log")
    if rc1 or rc2 or any(rcs):
        return f"shards: failed (logs in {work})"
    same = one.read_bytes() == merged.read_bytes()
    total = extracted + merge_s
    return (f"shards: {n} jobs x 1 worker {total:.1f} s (merge {merge_s:.1f} s) vs 1 job x 1 worker {single:.1f} s: "
            f"speed-up {single / total:.2f}x on {n} cores; same bytes: {same}")


@functools.lru_cache(maxsize=None)
def takes_budget(stage: str) -> bool:
    """Whether the installed `seqpipe <stage>` takes --memory-budget-mb (the streaming readers do)."""
    help_text = subprocess.run(seqpipe(stage, "--help"), capture_output=True, text=True).stdout
    return "--memory-budget-mb" in help_text


def data_stages(work: Path, size: str, n: int, stages: list[str]) -> dict[str, dict]:
    if not set(stages) - {"features"}:
        return {}
    data = work / f"data_{size}.h5"
    if not data.exists():
        data_file(data, n)
    _, task, job = task_and_job(data)
    results: dict[str, dict] = {}
    tracking = work / "mlflow" / "tracking.json"
    if not tracking.exists() and {"train", "evaluate", "predict"} & set(stages):
        subprocess.run(seqpipe("tracking-setup", "--out", str(tracking), "--no-log-model"), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    run_dir = work / "runs" / size
    budget = ["--memory-budget-mb", str(job["training"]["memory_budget_mb"])]
    flags = {stage: budget if takes_budget(stage) else [] for stage in ("validate", "baseline", "evaluate")}
    commands = {
        "validate": seqpipe("validate", "--data", str(data), "--task", json.dumps(task), "--out", str(work / f"validate_{size}.json"),
                            *flags["validate"]),
        "baseline": seqpipe("baseline", "--data", str(data), "--task", json.dumps(task), "--out", str(work / f"baseline_{size}.json"),
                            *flags["baseline"]),
        "train": seqpipe("train", "--data", str(data), "--job", json.dumps(job), "--tracking", str(tracking), "--threads", "1",
                         "--out-dir", str(run_dir), "--resume-dir", str(work / "resume" / size)),
        "evaluate": seqpipe("evaluate", "--data", str(data), "--task", json.dumps(task), "--checkpoint", str(run_dir / "best.pt"),
                            "--run", str(run_dir / "run.json"), "--tracking", str(tracking), "--seed", "0",
                            "--out", str(work / f"evaluate_{size}.json"), *flags["evaluate"]),
        "predict": seqpipe("predict", "--run", str(run_dir), "--out", str(work / f"predict_{size}.csv"), str(data)),
    }
    for stage in (s for s in STAGES if s in stages and s in commands):
        seconds_, peak, rc = run(commands[stage], work / f"{stage}_{size}.log")
        results[stage] = {"seconds": seconds_, "peak_mb": peak, "rc": rc, "units": n, "unit": "samples"}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    parser.add_argument("--pieces", type=int, default=100, help="Lakh-layout pieces at 1x")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per piece at 1x")
    parser.add_argument("--scale", choices=("length", "items"), default="length", help="10x by piece length or by item count")
    parser.add_argument("--n", type=int, default=4000, help="samples of the data_path file at 1x (float32 [N, 64, 128]: 4000 = 131 MB)")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--no-shards", action="store_true", help="skip the shard speed-up run")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder, removed)")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="seqpipe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {s: {} for s in STAGES}
    try:
        for size, k in (("1x", 1), (f"{args.factor}x", args.factor)):
            if "features" in stages:
                pieces, seconds = (args.pieces * k, args.seconds) if args.scale == "items" else (args.pieces, args.seconds * k)
                results["features"][size] = features_stage(work, size, pieces, seconds)
            for stage, result in data_stages(work, size, args.n * k, stages).items():
                results[stage][size] = result
        ratios = {}
        big = f"{args.factor}x"
        for stage in STAGES:
            small, large = results[stage].get("1x"), results[stage].get(big)
            if not small or not large:
                ratios[stage] = "n/a"
                continue
            if small["rc"] or large["rc"]:
                ratios[stage] = "failed"
                print(f"{stage:<9} failed (exit {small['rc']}/{large['rc']}); logs in {work}")
                continue
            ratio = large["peak_mb"] / small["peak_mb"]
            ratios[stage] = f"{ratio:.2f}"
            print(f"{stage:<9} 1x: {small['seconds']:6.1f} s {small['peak_mb']:7.0f} MB | {big}: {large['seconds']:6.1f} s "
                  f"{large['peak_mb']:7.0f} MB | peak RSS {big}/1x {ratio:.2f} | {big} throughput "
                  f"{large['units'] / large['seconds']:.1f} {large['unit']}/s")
        if "features" in stages and not args.no_shards and results["features"].get(big, {}).get("rc") == 0:
            print(shard_speedup(work, big))
        print("scale: peak RSS 10x/1x: " + ", ".join(f"{s} {ratios[s]}" for s in STAGES) + " (goal <= 1.3)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
