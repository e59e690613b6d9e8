"""How long an up-to-date `snakemake -n` takes on a Lakh-size copy of your own, beside the demo's.

Two copies of the workflow with the same small study (one Lakh feature set, one task, one model,
one epoch) differ only in where Lakh comes from: `source: demo` (60 generated files), or
`source: root` with a tree in the `lmd_full` layout of 176,581 symbolic links to a few real MIDI
files (`limit: 60`, so both train on the same amount of data). Both are run to completion once
(not timed: the index job hashes every file once), then their up-to-date dry runs are timed in
turn, `--repeats` times each, and the medians compared. Goal: the root copy within 1.3x the demo.
The tree also gets an unrelated folder beside the hex-digit folders (a `.git` store with a few
thousand files, as in a git-annex clone): the fingerprint covers what the Lakh module indexes only.

    .venv/bin/python benchmarks/root_dryrun.py [--files 176581] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
sys.path.insert(0, str(REPO / "src"))

from seqpipe.raw.demo import generate  # noqa: E402


def study(lakh: dict) -> dict:
    return {
        "datasets": {"lakh": lakh},
        "demo": {"lakh": {"n_items": 60}},
        "features": {"lakh_roll": {"dataset": "lakh", "kind": "piano_roll", "fps": 8, "window": 64, "hop": 64}},
        "tasks": {"lakh_recon": {"features": "lakh_roll", "paradigm": "self_supervised", "mapping": "seq2seq",
                                 "type": "reconstruction"}},
        "models": {"mlp": {"arch": "mlp", "hidden": [8]}},
        "training": {"epochs": 1, "seeds": [0]},
        "mlflow": {"log_model": False},
    }


def workflow_copy(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", folder / "Snakefile")
    for sub in ("workflow", "src", "profiles", "envs"):
        shutil.copytree(REPO / sub, folder / sub, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def link_tree(folder: Path, files: int) -> Path:
    """`lmd_full/<hex>/<md5>.mid`: `files` links to a few real MIDI files kept outside the tree, and a `.git` beside them."""
    store = generate("lakh", folder / "store", n_items=8, seed=0)
    targets = sorted(store.rglob("*.mid"))
    root = folder / "copy" / "lmd_full"
    for digit in "0123456789abcdef":
        (root / digit).mkdir(parents=True)
    for i in range(files):
        md5 = hashlib.md5(str(i).encode()).hexdigest()
        os.symlink(targets[i % len(targets)], root / md5[0] / f"{md5}.mid")
    for i in range(2000):  # what else lies under the root: not indexed, not fingerprinted
        (root / ".git" / "annex" / f"{i % 40}").mkdir(parents=True, exist_ok=True)
        (root / ".git" / "annex" / f"{i % 40}" / f"k{i}").write_bytes(b"x")
    return root


def snakemake(folder: Path, *args: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(folder / "src")}
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=folder, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit((proc.stdout + proc.stderr)[-3000:])
    if "-n" in args and "Nothing to be done" not in proc.stdout + proc.stderr:
        raise SystemExit(f"{folder.name}: the dry run is not up to date:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=176_581, help="links in the Lakh-size tree")
    parser.add_argument("--repeats", type=int, default=5, help="dry runs timed per project")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seqpipe_root_dryrun_") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        root = link_tree(tmp / "data", args.files)
        print(f"tree of {args.files} links built in {time.perf_counter() - start:.1f} s", flush=True)
        demo = workflow_copy(tmp / "demo", study({"source": "demo"}))
        copy = workflow_copy(tmp / "root", study({"source": "root", "root": str(root), "limit": 60}))
        for folder in (demo, copy):
            print(f"{folder.name}: full run (not timed) {snakemake(folder):.1f} s", flush=True)
        times: dict[str, list[float]] = {"demo": [], "root": []}
        for _ in range(args.repeats):  # in turn, so a busy moment hits both
            for folder in (demo, copy):
                times[folder.name].append(snakemake(folder, "-n", "--quiet", "rules"))
                print(f"{folder.name}: dry run {times[folder.name][-1]:.2f} s", flush=True)
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name}: up-to-date snakemake -n, median {med[name]:.2f} s of {', '.join(f'{v:.2f}' for v in values)}")
    print(f"ratio root/demo {med['root'] / med['demo']:.2f}x (goal: within 1.3x; {args.files} files under the root)")


if __name__ == "__main__":
    main()
